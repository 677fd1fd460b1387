"""edgeplex.delegates"""
