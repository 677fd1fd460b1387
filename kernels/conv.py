"""conv kernels (in progress)."""
