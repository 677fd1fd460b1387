"""sparse kernels (in progress)."""
