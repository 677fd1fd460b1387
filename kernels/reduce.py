"""reduce kernels (in progress)."""
