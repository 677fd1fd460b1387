"""pooling kernels (in progress)."""
