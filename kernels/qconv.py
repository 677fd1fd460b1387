"""qconv kernels (in progress)."""
