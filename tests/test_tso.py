"""TSO emulation on shmif: TCP hands the interface up to 64 KiB, the interface cuts it into the frames
TCP would have sent one by one."""

import os
import struct

from hypothesis import given, settings, strategies as st
import trio

from rumpnet import SHUT_WR, SOCK_STREAM
from rumpnet.net import offload
from rumpnet.netinet.checksum import in_cksum, pseudo_header_sum
from rumpnet.netinet.tcp import TH_ACK, TH_FIN, TH_PUSH, tcp_build
from rumpnet.testing import frames_on, open_pair

A, B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
ETHER = b"\xbb" * 6 + b"\xaa" * 6 + b"\x08\x00"


def ip_header(total, ip_id, src=B, dst=A):
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ip_id, 0, 64, 6, 0, src, dst))
    struct.pack_into("!H", header, 10, in_cksum(header))
    return bytes(header)


def frame(seq, flags, data, ip_id):
    segment = tcp_build(B, A, 40000, 5001, seq, 777, flags, 1000, data=data)
    return ETHER + ip_header(20 + len(segment), ip_id) + segment


def tcp_fields(f):
    """(ip id, seq, ack, flags, window, payload length) of a frame whose IP and TCP sums are right."""
    hlen = (f[14] & 0xF) * 4
    total = struct.unpack_from("!H", f, 16)[0]
    segment = f[14 + hlen:14 + total]
    assert in_cksum(f[14:14 + hlen]) == 0
    assert in_cksum(segment, pseudo_header_sum(f[26:30], f[30:34], 6, len(segment))) == 0
    ip_id = struct.unpack_from("!H", f, 18)[0]
    _, _, seq, ack, off, flags, win = struct.unpack_from("!HHIIBBH", segment)
    return ip_id, seq, ack, flags, win, len(segment) - (off >> 4) * 4


@settings(max_examples=200)
@given(size=st.integers(0, 6000), mss=st.integers(216, 1460), seq=st.integers(0, 2**32 - 1),
       ip_id=st.integers(0, 65535), fin=st.booleans())
def test_a_cut_segment_is_the_frames_tcp_would_have_built(size, mss, seq, ip_id, fin):
    data = bytes(i % 251 for i in range(size))
    flags = TH_ACK | TH_PUSH | (TH_FIN if fin else 0)
    cut = offload.tso_segments(frame(seq, flags, data, ip_id), offload.M_CSUM_TSOv4 | mss << offload.TSO_MSS_SHIFT)
    offsets = range(0, max(size, 1), mss)
    assert len(cut) == len(offsets)
    for n, offset in enumerate(offsets):
        last = n == len(offsets) - 1
        expected = frame((seq + offset) & 0xFFFFFFFF, flags if last else TH_ACK, data[offset:offset + mss],
                         (ip_id + n) & 0xFFFF)
        assert cut[n] == expected


@settings(max_examples=300)
@given(f=st.binary(max_size=200), mss=st.integers(0, 2000))
def test_cutting_takes_any_bytes(f, mss):
    for piece in offload.tso_segments(f, offload.M_CSUM_TSOv4 | mss << offload.TSO_MSS_SHIFT):
        assert isinstance(piece, bytes)


async def bus_transfer(tmp_path, name, data, tso):
    """data from b (tso4 on or off) to a; what a got, b's TCP frames on the bus, and b's counters."""
    bus = str(tmp_path / name)
    async with open_pair(bus) as (a, b):
        if tso:
            b.set_capabilities("shmif0", enable=offload.IFCAP_TSOv4)
        server = a.socket(SOCK_STREAM)
        await server.bind(("", 5001))
        await server.listen(1)
        client = b.socket(SOCK_STREAM)
        await client.connect(("10.0.0.1", 5001))
        conn, _ = await server.accept()
        await client.send(data)  # all in the send buffer at once: the segments' sizes follow from it alone
        await client.shutdown(SHUT_WR)
        got = bytearray()
        with trio.fail_after(20):
            while piece := await conn.recv(65536):
                got += piece
        conn.close()
        client.close()
        server.close()
        stats = dict(b.stats.tcp)
    frames = [f for f in frames_on(bus) if f[12:14] == b"\x08\x00" and f[23] == 6 and f[26:30] == B]
    return bytes(got), frames, stats


def normalised(frames):
    """b's segments as (seq, ack, flags, window, length), seq and ack counted from the first; and the IP ids."""
    fields = [tcp_fields(f) for f in frames]
    seq0 = fields[0][1]
    ack0 = next(ack for _, _, ack, flags, *_ in fields if flags & TH_ACK)
    segments = sorted({((seq - seq0) % 2**32, (ack - ack0) % 2**32 if flags & TH_ACK else None, flags, win, length)
                       for _, seq, ack, flags, win, length in fields}, key=lambda s: (s[0], s[4]))
    return segments, [ip_id for ip_id, *_ in fields]


async def test_bus_frames_are_the_same_with_tso_as_without(tmp_path):
    data = os.urandom(200_000)  # within the send buffer and, with the ACKs, well within a bus
    got, plain, plain_stats = await bus_transfer(tmp_path, "plain", data, tso=False)
    assert got == data
    got, cut, tso_stats = await bus_transfer(tmp_path, "tso", data, tso=True)
    assert got == data
    assert plain_stats.get("tso_output", 0) == 0 < tso_stats["tso_output"]
    assert all(len(f) <= 1514 for f in cut)
    assert normalised(cut)[0] == normalised(plain)[0]
    for frames in (plain, cut):
        ids = normalised(frames)[1]
        assert all((later - earlier) % 65536 == 1 for earlier, later in zip(ids, ids[1:]))  # one id a frame
    assert tso_stats["data_sent"] == plain_stats["data_sent"]  # counted as the frames cut, not as handed down


async def test_tso_with_tcp_checksum_offload_comes_from_the_environment_as_shmif_reads_it(tmp_path, monkeypatch):
    """TSO4 and TCP4CSUM on both nodes: the cut frames, and the tails and ACKs TCP leaves unsummed,
    all reach the bus with their sums right."""
    bits = offload.IFCAP_TSOv4 | offload.IFCAP_CSUM_TCPv4_Tx | offload.IFCAP_CSUM_TCPv4_Rx
    monkeypatch.setenv("RUMP_SHMIF_CAPENABLE", hex(bits))
    data = os.urandom(100_001)  # not whole segments: a tail goes alone
    got, frames, stats = await bus_transfer(tmp_path, "env", data, tso=False)
    assert got == data and stats["tso_output"] > 0 and all(len(f) <= 1514 for f in frames)
    assert all(tcp_fields(f) for f in frames)  # every IP and TCP sum right
