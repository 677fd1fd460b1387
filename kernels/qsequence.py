"""qsequence kernels (in progress)."""
