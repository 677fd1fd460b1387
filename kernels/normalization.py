"""normalization kernels (in progress)."""
