"""Ethernet II framing: ether_input and ether_output (BSD's net/if_ethersubr.c)."""

import struct

from ..netinet.ip_input import ip_input
from .offload import RX_BITS, check_rx

ETHERTYPE_IP = 0x0800
ETHERTYPE_ARP = 0x0806
ETHER_HDR_LEN = 14
ETHER_HEADER = struct.Struct("!6s6sH")  # destination, source, type


def ether_input(node, ifp, frame):
    """Hand a received frame for us to ARP or IP by its type; drop and count the rest.

    A driver delivers everything its medium carries; as a NIC's filter would,
    only frames to our address, to broadcast or to a multicast group go on.
    The interface's RX offload marks the sums it checked (offload.py).
    """
    if len(frame) < ETHER_HDR_LEN:
        node.stats.ether["input"] += 1
        node.stats.ether["short"] += 1
        return
    multicast = frame[0] & 1
    if not multicast and frame[:6] != ifp.mac:
        return
    counters = ifp.counters
    counters.ipackets += 1
    counters.ibytes += len(frame)
    counters.imcasts += multicast
    stats = node.stats.ether
    stats["input"] += 1
    csum_marks = check_rx(frame, ifp.capenable) if ifp.capenable & RX_BITS else 0
    ethertype = frame[12] << 8 | frame[13]
    if ethertype == ETHERTYPE_IP:
        ip_input(node, ifp, frame[ETHER_HDR_LEN:], csum_marks, multicast)  # a link broadcast or multicast
    elif ethertype == ETHERTYPE_ARP:
        node.arp.input(ifp, frame[ETHER_HDR_LEN:])
    else:
        stats["unknown_type"] += 1
        ifp.counters.iqdrops += 1


def ether_output(node, ifp, dst_mac, ethertype, payload, csum_flags=0):
    """Frame a payload and hand it to the driver, with the sums (M_CSUM_*) the driver must fill in."""
    node.stats.ether["output"] += 1
    ifp.output(ETHER_HEADER.pack(dst_mac, ifp.mac, ethertype) + payload, csum_flags)
