"""gather kernels (in progress)."""
