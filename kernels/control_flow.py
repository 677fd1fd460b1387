"""control_flow kernels (in progress)."""
