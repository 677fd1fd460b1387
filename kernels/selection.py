"""selection kernels (in progress)."""
