"""Ethernet II framing: ether_input and ether_output (BSD's net/if_ethersubr.c)."""

import struct

from .ip_input import ip_input

ETHERTYPE_IP = 0x0800
ETHERTYPE_ARP = 0x0806
ETHER_HDR_LEN = 14
_HEADER = struct.Struct("!6s6sH")


def ether_frame(dst, src, ethertype, payload):
    return _HEADER.pack(dst, src, ethertype) + payload


def ether_input(node, ifp, frame, csum_marks):
    """Hand a received frame to ARP or IP by its type; drop and count the rest."""
    stats = node.stats.ether
    stats["input"] += 1
    if len(frame) < ETHER_HDR_LEN:
        stats["short"] += 1
        return
    ethertype = frame[12] << 8 | frame[13]
    if ethertype == ETHERTYPE_IP:
        ip_input(node, ifp, frame[ETHER_HDR_LEN:], csum_marks, frame[0] & 1)  # a link broadcast or multicast
    elif ethertype == ETHERTYPE_ARP:
        node.arp.input(ifp, frame[ETHER_HDR_LEN:])
    else:
        stats["unknown_type"] += 1
        ifp.counters.iqdrops += 1


def ether_output(node, ifp, dst_mac, ethertype, payload, csum_flags=0):
    """Frame a payload and hand it to the driver, with the sums (M_CSUM_*) the driver must fill in."""
    node.stats.ether["output"] += 1
    ifp.output(ether_frame(dst_mac, ifp.mac, ethertype, payload), csum_flags)
