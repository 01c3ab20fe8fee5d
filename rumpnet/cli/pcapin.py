"""rumpnet pcapin: write a pcap file's frames onto a shmif bus, after NetBSD's shmif_pcapin(1).

    rumpnet pcapin pcapfile busfile

Each frame becomes a bus record stamped with the current time, written
under the bus lock as any node writes; the readers are woken after every
batch, so nodes running on the bus receive the frames as if a peer had sent
them. The whole capture is checked before the first frame is written: a
file that is cut short, not Ethernet, or holds a frame no shmif bus may carry
leaves the bus untouched.
"""

from ..net import pcap
from ..net.bus import MAX_FRAME, MIN_FRAME, Bus, BusError, new_sender
from .common import Parser, fail

BATCH = 64  # frames per lock hold and wake-up, as a node's receive batch


def bus_frames(capture):
    """The capture's frames; ValueError, in one line, when one of them cannot go on a shmif bus."""
    if capture.linktype != pcap.LINKTYPE_ETHERNET:
        name = pcap.LINKTYPE_NAMES.get(capture.linktype, "unknown")
        raise ValueError(f"link type {capture.linktype} ({name}), not Ethernet (1): "
                         "only Ethernet frames go on a shmif bus")
    for number, packet in enumerate(capture.packets, 1):
        if packet.length > MAX_FRAME:
            raise ValueError(f"packet {number} is {packet.length} bytes, more than the {MAX_FRAME} "
                             "a shmif bus carries (frames there have no FCS, and no GRO or TSO)")
        if packet.length < MIN_FRAME:
            raise ValueError(f"packet {number} is {packet.length} bytes, shorter than an Ethernet header")
        if len(packet.frame) < packet.length:
            raise ValueError(f"packet {number} was cut to {len(packet.frame)} of {packet.length} bytes "
                             "by the capture's snapshot length (capture with -s 0)")
    return [packet.frame for packet in capture.packets]


def main(argv, server):
    parser = Parser("pcapin", "Write the Ethernet frames of a pcap file onto a shmif bus and wake its readers.",
                    node=False)
    parser.add_argument("pcapfile")
    parser.add_argument("busfile")
    args = parser.parse_args(argv)
    try:
        frames = bus_frames(pcap.read(args.pcapfile))
    except OSError as e:
        return fail("pcapin", f"{args.pcapfile}: {e.strerror}")
    except (pcap.PcapError, ValueError) as e:
        return fail("pcapin", f"{args.pcapfile}: {e}")
    try:
        bus = Bus(args.busfile)
    except BusError as e:
        return fail("pcapin", str(e))
    except OSError as e:
        return fail("pcapin", f"{args.busfile}: {e.strerror}")
    sender = new_sender()  # a sender of its own: no node skips these as its own
    with bus:
        for start in range(0, len(frames), BATCH):
            try:
                bus.send(frames[start:start + BATCH], sender)
            except BusError as e:  # it stopped being a bus, or a live writer kept the lock
                return fail("pcapin", f"{e} ({start} frames written)")
    print(f"{len(frames)} frames written to {args.busfile}")
    return 0
