"""edgeplex.hwlab"""
