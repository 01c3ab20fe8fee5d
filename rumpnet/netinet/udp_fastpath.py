"""The common datagram in one step: UDP's input fast path (Van Jacobson's header prediction, applied to UDP).

Most frames a busy UDP receiver reads are alike: unicast to this interface,
IPv4 without options or fragments, UDP with a checksum, to a bound socket.
For those, ether_input, ip_input and udp_input ask the same questions in
three layers and about thirty calls. Here one unpack of the 42 header bytes
answers them all, in a loop over the driver's batch, and the counters are
added once a batch. Any frame that does not fit the prediction (and every
frame of a batch the prediction does not hold for) takes the full path,
which decides, counts and answers (port unreachable, a bad checksum) as
always: the fast path never drops a frame, so it cannot drop one wrongly.
`netstat -s` counts the datagrams it took (udp "predicted"), as BSD counts
TCP's header predictions.

It holds only while nothing else must see the frame: no RX checksum offload
marks to set, no NAT to undo, and UDP's own input in the protocol switch;
`sysctl -w net.inet.udp.fastpath=0` turns it off (as Linux's
net.ipv4.udp_early_demux), to watch or measure the layers one by one.
Its output side, a sendmmsg burst or a sendto to one peer, is udp.udp_output_burst.
Tests check that for any frames and any burst both paths leave the same
counters, queues and frames on the wire (tests/test_udp_fastpath.py).
"""

import struct

from ..net.ether import ETHER_HDR_LEN, ETHERTYPE_IP, ether_input
from ..net.offload import RX_BITS
from .checksum import verifies
from .ip import IP_HEADER, IP_MF, IP_OFFMASK, IPPROTO_UDP
from .udp import udp_input

# Ethernet (destination, type), IPv4 (version and length, total, fragment, protocol, source,
# destination) and UDP (ports, length, checksum): every field the prediction reads, at fixed offsets.
PREDICTED = struct.Struct("!6s6xHBxH2xHxB2x4s4sHHHH")
UDP_DATA = PREDICTED.size  # 42: where the data of a predicted datagram starts
IP_START = ETHER_HDR_LEN
ADDRESSES = IP_START + 12  # the IPv4 source and destination, just before the UDP header: the pseudo-header's
UDP_START = IP_START + IP_HEADER.size  # addresses and the datagram are summed as one run of bytes (their words line up)
FRAGMENT_BITS = IP_MF | IP_OFFMASK


def predicts(node, ifp):
    """Whether the prediction can hold for a batch from ifp (checked once a batch)."""
    return (node.sysctl["net.inet.udp.fastpath"] and not ifp.capenable & RX_BITS and not ifp.mac[0] & 1
            and not node.nat.translating(ifp) and node.protosw.input_entry(IPPROTO_UDP).input is udp_input)


def udp_fast_input(node, ifp, frames):
    """Queue each predicted datagram of a batch on its socket; every other frame goes to ether_input, in order.

    (*) is checksum.verifies for the IPv4 header, written out: 20 bytes,
    never all zeros (vhl is 0x45), so their sum is right exactly when the
    number they spell is a multiple of 0xffff; a call per frame saved.
    """
    if not predicts(node, ifp):
        for frame in frames:
            ether_input(node, ifp, frame)
        return
    mac, ours = ifp.mac, node.inaddrs.local - node.inaddrs.broadcast_on(ifp)  # our unicast addresses
    lookup, unpack = node.udp.lookup, PREDICTED.unpack_from
    predicted = predicted_bytes = delivered = 0
    last_flow = sock = None
    try:
        for frame in frames:
            size = len(frame)
            if size >= UDP_DATA:
                dst_mac, ethertype, vhl, total, frag, proto, src, dst, sport, dport, length, checksum = unpack(frame)
                if (dst_mac == mac and ethertype == ETHERTYPE_IP and vhl == 0x45 and proto == IPPROTO_UDP
                        and not frag & FRAGMENT_BITS and total <= size - IP_START
                        and 8 <= length <= total - 20 and checksum and dst in ours and src[0] < 224
                        and int.from_bytes(frame[IP_START:UDP_START], "big") % 0xFFFF == 0  # (*)
                        and verifies(frame[ADDRESSES:UDP_START + length], IPPROTO_UDP + length)):
                    # A batch is mostly one flow: its socket is looked up once. Input never binds
                    # or closes a socket, so the answer holds for the whole batch.
                    flow = (dst, dport, src, sport)
                    if flow != last_flow:
                        last_flow, sock = flow, lookup(dst, dport, src, sport)
                    if sock is not None:
                        predicted += 1
                        predicted_bytes += size
                        delivered += sock.deliver(frame[UDP_DATA:UDP_START + length], (src, sport))
                        continue
            ether_input(node, ifp, frame)
    finally:
        if predicted:
            _count(node, ifp, predicted, predicted_bytes, delivered)


def _count(node, ifp, predicted, predicted_bytes, delivered):
    """What the three layers would have counted for the predicted datagrams, once a batch."""
    ifp.counters.ipackets += predicted
    ifp.counters.ibytes += predicted_bytes
    stats = node.stats
    stats.ether["input"] += predicted
    stats.ip["total"] += predicted
    stats.ip["delivered"] += predicted
    stats.udp["input"] += predicted
    stats.udp["predicted"] += predicted
    if delivered:
        stats.udp["delivered"] += delivered
    if delivered < predicted:
        stats.udp["full_socket"] += predicted - delivered

