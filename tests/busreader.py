"""An independent reader of shmif bus files, written from the format description alone.

    header (32 bytes, host byte order): u32 magic 0xca11d054, u32 version 3,
    u64 generation, u32 first, u32 last, u32 lock, u32 spare; then the ring.
    record: u32 len, u32 sec, u32 usec, 4 bytes padding, u64 sender, len bytes.
    Records may wrap around the end of the ring. A fresh bus has first = the
    ring size and an empty record at offset 0.
"""

import struct

SIZE = 1024 * 1024
RING = SIZE - 32


def read_header(raw):
    magic, version, generation, first, last, lock, spare = struct.unpack("=IIQIIII", raw[:32])
    return dict(magic=magic, version=version, generation=generation, first=first, last=last, lock=lock,
                spare=spare)


def ring_bytes(ring, offset, length):
    out = b""
    while length:
        chunk = min(length, RING - offset)
        out += ring[offset:offset + chunk]
        length -= chunk
        offset = (offset + chunk) % RING
    return out, offset


def walk(raw):
    """Every record from `first` through `last`: (offset, len, sec, usec, sender, frame)."""
    header = read_header(raw)
    ring = raw[32:SIZE]
    offset = 0 if header["first"] == RING else header["first"]
    records = []
    while True:
        head, after = ring_bytes(ring, offset, 24)
        length, sec, usec, sender = struct.unpack("=III4xQ", head)
        assert length < RING // 2, f"impossible record length {length} at {offset}"
        frame, after = ring_bytes(ring, after, length)
        records.append((offset, length, sec, usec, sender, frame))
        if offset == header["last"]:
            return records
        assert len(records) < RING // 24, "never reached last"
        offset = after
