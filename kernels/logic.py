"""logic kernels (in progress)."""
