"""qelementwise kernels (in progress)."""
