"""activations kernels (in progress)."""
