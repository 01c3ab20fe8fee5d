"""Xen's split network driver between nodes: the XenStore stand-in, the xenbus states, the toolstack."""
