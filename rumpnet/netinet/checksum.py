"""The Internet checksum (RFC 1071), BSD's in_cksum.

The ones'-complement sum of 16-bit words equals the number the bytes spell,
taken modulo 0xffff (2**16 is 1 modulo 0xffff), so one big-integer remainder in
C replaces a Python loop over the words.
"""


def ones_sum(data):
    """The ones'-complement sum of data as 16-bit big-endian words (odd length padded)."""
    if len(data) & 1:
        data = bytes(data) + b"\0"
    value = int.from_bytes(data, "big")
    if value == 0:
        return 0
    folded = value % 0xFFFF
    return folded or 0xFFFF


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
    if len(data) & 1:
        value <<= 8
    total = value + initial
    return total != 0 and total % 0xFFFF == 0


def pseudo_header_sum(src, dst, proto, length):
    """The ones'-complement sum of the IPv4 pseudo-header that UDP and TCP checksum over.

    Each 4-byte address, read as a number, is its two 16-bit words modulo
    0xffff, so the sum needs no pseudo-header built in bytes.
    """
    value = int.from_bytes(src, "big") + int.from_bytes(dst, "big") + proto + length
    return value % 0xFFFF or (0xFFFF if value else 0)
