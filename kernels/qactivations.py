"""qactivations kernels (in progress)."""
