"""movement kernels (in progress)."""
