"""hybrid kernels (in progress)."""
