"""The Internet checksum (RFC 1071), BSD's in_cksum.

The ones'-complement sum of 16-bit words equals the number the bytes spell,
taken modulo 0xffff (2**16 is 1 modulo 0xffff), so one big-integer remainder in
C replaces a Python loop over the words.
"""


def _fold(value):
    """A sum of 16-bit words, as a number, folded to 16 bits: 0 only for 0, 0xffff for a multiple of it."""
    return value % 0xFFFF or (0xFFFF if value else 0)


def ones_sum(data):
    """The ones'-complement sum of data as 16-bit big-endian words (odd length padded with a zero byte)."""
    value = int.from_bytes(data, "big")
    return _fold(value << 8 if len(data) & 1 else value)


def in_cksum(data, initial=0):
    """The checksum to store in a header whose checksum field is zero in data."""
    total = ones_sum(data) + initial
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def verifies(data, initial=0):
    """True when data, its checksum field filled in, and initial (a pseudo-header's sum) add up to all
    ones: what `in_cksum(data, initial) == 0` says, in one remainder and without the folding."""
    value = int.from_bytes(data, "big")
    total = (value << 8 if len(data) & 1 else value) + initial
    return total != 0 and total % 0xFFFF == 0


def pseudo_header_sum(src, dst, proto, length):
    """The ones'-complement sum of the IPv4 pseudo-header that UDP and TCP checksum over.

    Each 4-byte address, read as a number, is its two 16-bit words modulo
    0xffff, so the sum needs no pseudo-header built in bytes.
    """
    return _fold(int.from_bytes(src, "big") + int.from_bytes(dst, "big") + proto + length)
