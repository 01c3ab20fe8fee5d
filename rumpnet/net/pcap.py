"""pcap files, the libpcap "savefile" format that tcpdump -w writes and -r reads.

A file is a 24-byte header (magic, version, timezone, sigfigs, snaplen,
link type) and then one 16-byte record header (seconds, fraction, captured
length, length on the wire) before each packet. The writer's byte order is
told by the magic; a microsecond file has 0xa1b2c3d4, a nanosecond one
0xa1b23c4d.

dpkt.pcap names the constants used here. Its Reader and Writer are not used:
the Reader yields a short packet silently when a file is cut off, and both
pass timestamps as floats, where shmif records and pcap files hold exact
integer seconds and microseconds.
"""

import struct
from typing import NamedTuple

import dpkt.pcap
from dpkt.pcap import DLT_EN10MB, PCAP_VERSION_MAJOR, PCAP_VERSION_MINOR, TCPDUMP_MAGIC, TCPDUMP_MAGIC_NANO

LINKTYPE_ETHERNET = DLT_EN10MB
LINKTYPE_NAMES = {value: name[4:] for name, value in vars(dpkt.pcap).items() if name.startswith("DLT_")}
SNAPLEN = 262144  # libpcap's largest snapshot length, tcpdump's default
PCAPNG_MAGIC = 0x0A0D0D0A  # a pcapng file starts with this block type
_FILE = "IHHiIII"  # magic, major, minor, thiszone, sigfigs, snaplen, linktype
_RECORD = "IIII"  # seconds, usec (or nsec), captured length, length on the wire
FILE_HEADER_SIZE = struct.calcsize(_FILE)
_HOST_RECORD = struct.Struct("=" + _RECORD)


class PcapError(Exception):
    """A file that is not a readable pcap; the message says where and why."""


class Packet(NamedTuple):
    sec: int
    usec: int
    frame: bytes
    length: int  # on the wire; more than len(frame) when the capture's snaplen cut it


class Capture(NamedTuple):
    linktype: int
    snaplen: int
    packets: list


class Writer:
    """Writes a pcap in host byte order with microsecond timestamps, as libpcap does."""

    def __init__(self, f, linktype=LINKTYPE_ETHERNET, snaplen=SNAPLEN):
        self.f = f
        self.snaplen = snaplen
        f.write(struct.pack("=" + _FILE, TCPDUMP_MAGIC, PCAP_VERSION_MAJOR, PCAP_VERSION_MINOR,
                            0, 0, snaplen, linktype))

    def write(self, frame, sec, usec):
        """One packet; a frame longer than the snaplen is cut, keeping its length on the wire."""
        captured = frame[:self.snaplen]
        self.f.write(_HOST_RECORD.pack(sec, usec, len(captured), len(frame)) + captured)


def parse(data):
    """Every packet of a pcap file's bytes, checked against truncation; raises PcapError."""
    if len(data) < FILE_HEADER_SIZE:
        raise PcapError(f"not a pcap file (only {len(data)} bytes, a pcap header is {FILE_HEADER_SIZE})")
    order, nano = _byte_order(data)
    _magic, major, _minor, _zone, _sigfigs, snaplen, linktype = struct.unpack_from(order + _FILE, data)
    if major != PCAP_VERSION_MAJOR:
        raise PcapError(f"pcap version {major}, expected {PCAP_VERSION_MAJOR}")
    record = struct.Struct(order + _RECORD)
    packets = []
    off = FILE_HEADER_SIZE
    while off < len(data):
        number = len(packets) + 1
        if off + record.size > len(data):
            raise PcapError(f"truncated: packet {number} header has {len(data) - off} of {record.size} bytes")
        sec, frac, caplen, length = record.unpack_from(data, off)
        off += record.size
        if caplen > length:
            raise PcapError(f"corrupt: packet {number} captured {caplen} bytes of a {length}-byte packet")
        if off + caplen > len(data):
            raise PcapError(f"truncated: packet {number} has {len(data) - off} of {caplen} bytes")
        packets.append(Packet(sec, frac // 1000 if nano else frac, data[off:off + caplen], length))
        off += caplen
    return Capture(linktype, snaplen, packets)


def _byte_order(data):
    """(struct byte order, nanosecond timestamps) from the magic number."""
    for order in "<>":
        magic = struct.unpack_from(order + "I", data)[0]
        if magic in (TCPDUMP_MAGIC, TCPDUMP_MAGIC_NANO):
            return order, magic == TCPDUMP_MAGIC_NANO
    if struct.unpack_from("<I", data)[0] == PCAPNG_MAGIC:
        raise PcapError("a pcapng file; convert it first: tcpdump -r FILE -w FILE.pcap")
    raise PcapError(f"not a pcap file (magic 0x{struct.unpack_from('>I', data)[0]:08x})")


def read(path):
    """parse() a pcap file by name; OSError as the open/read raises it."""
    with open(path, "rb") as f:
        return parse(f.read())
