"""variables kernels (in progress)."""
