"""Sequence numbers: arithmetic modulo 2**32 (RFC 9293 section 3.4; BSD's netinet/tcp_seq.h).

A comparison asks which way the signed 32-bit difference points, so it stays
right when the numbers wrap past 2**32 - 1.
"""

MOD = 1 << 32


def seq_diff(a, b):
    """a - b as a signed 32-bit number."""
    d = (a - b) & 0xFFFFFFFF
    return d - MOD if d & 0x80000000 else d


def seq_lt(a, b):
    return seq_diff(a, b) < 0


def seq_leq(a, b):
    return seq_diff(a, b) <= 0


def seq_gt(a, b):
    return seq_diff(a, b) > 0


def seq_geq(a, b):
    return seq_diff(a, b) >= 0


def seq_add(a, n):
    return (a + n) & 0xFFFFFFFF


def seq_max(a, b):
    return a if seq_gt(a, b) else b
