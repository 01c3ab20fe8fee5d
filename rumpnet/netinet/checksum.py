"""The Internet checksum (RFC 1071), BSD's in_cksum.

The ones'-complement sum of 16-bit words equals the number the bytes spell,
taken modulo 0xffff (2**16 is 1 modulo 0xffff), so one big-integer remainder in
C replaces a Python loop over the words.
"""

# A frame-sized number is folded before its remainder is taken, as RFC 1071
# folds a sum's carries, only wider: its high part is added to its low part at
# each shift, which keeps the remainder (2**shift is 1 modulo 0xffff) and about
# halves the number. Python divides a big number one 30-bit digit at a time,
# each step a hardware division; a shift, a mask and an addition cost a
# fraction of that, cheapest at whole digits (the shifts are multiples of 240
# bits: whole digits and whole 16-bit words). A 1400-byte datagram's sum takes
# a quarter less time so.
_FOLDS = tuple((shift, (1 << shift) - 1) for shift in (7680, 3840, 1920, 960))
FOLDED = range(700, 1921)  # bytes: below, the remainder alone is quicker; above, the folds no longer halve


def _folded(value):
    """A smaller number with value's remainder modulo 0xffff, zero only when value is."""
    for shift, mask in _FOLDS:
        value = (value >> shift) + (value & mask)
    return value


def in_cksum(data, initial=0):
    """The checksum to store in a header whose checksum field is zero in data.

    initial is what else the sum covers, as a number: a pseudo-header's sum,
    or header words the caller adds up instead of packing them first. It need
    not be folded: the last remainder folds everything at once. The data's big
    number is divided first, before anything is added to or shifted in it,
    so that no second big number is made (a tenth of a 1400-byte sum).
    """
    value = int.from_bytes(data, "big")
    if len(data) in FOLDED:
        value = _folded(value)
    total = (value % 0xFFFF << 8 if len(data) & 1 else value % 0xFFFF) + initial  # odd: padded with a zero byte
    total = total % 0xFFFF or (0xFFFF if value or initial else 0)  # ones' complement: 0 only for 0
    return ~total & 0xFFFF


def verifies(data, initial=0):
    """True when data, its checksum field filled in, and initial (a pseudo-header's sum) add up to all
    ones: what `in_cksum(data, initial) == 0` says, without the folding."""
    value = int.from_bytes(data, "big")
    if len(data) in FOLDED:
        value = _folded(value)
    total = (value % 0xFFFF << 8 if len(data) & 1 else value % 0xFFFF) + initial
    return (value or initial) != 0 and total % 0xFFFF == 0


def pseudo_header_sum(src, dst, proto, length):
    """The sum of the IPv4 pseudo-header that UDP and TCP checksum over, unfolded.

    Each 4-byte address, read as a number, counts as its two 16-bit words
    (modulo 0xffff), so the sum needs no pseudo-header built in bytes.
    """
    return int.from_bytes(src, "big") + int.from_bytes(dst, "big") + proto + length


def ttl_decremented(checksum):
    """The header sum of a packet whose sum verified, once its TTL is one less: what in_cksum would
    sum anew (RFC 1624's update: the TTL's word drops by 0x100, so the sum's field rises by as
    much; taken modulo 0xffff it is never 0xffff, which in_cksum never gives for a header either)."""
    return (checksum + 0x100) % 0xFFFF
