"""sequence kernels (in progress)."""
