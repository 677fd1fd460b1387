"""The model format, the IR, the interpreter and its execution plan."""
