"""edgeplex.partitioner"""
