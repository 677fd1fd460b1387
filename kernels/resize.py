"""resize kernels (in progress)."""
