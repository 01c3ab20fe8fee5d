"""Segments sent with no connection's state behind them (BSD's tcp_respond in netinet/tcp_subr.c).

A RST to a closed port, a RST that aborts a connection, an ACK that
challenges a suspicious RST or SYN (RFC 5961): each is one segment built and
sent at once, with no retransmission.
"""

from .ip import ip_output, route_output
from .tcp import IPPROTO_TCP, TH_RST, tcp_build, tcp_csum_flags


def tcp_respond(node, src, dst, sport, dport, seq, ack, flags):
    stats = node.stats.tcp
    try:
        ifp, nexthop = route_output(node, dst)
        csum_flags = tcp_csum_flags(ifp)
        segment = tcp_build(src, dst, sport, dport, seq, ack, flags, 0, checksum=not csum_flags)
        ip_output(node, IPPROTO_TCP, src, dst, segment, route=(ifp, nexthop), csum_flags=csum_flags)
    except OSError:
        stats["output_errors"] += 1
        return
    stats["output"] += 1
    if flags & TH_RST:
        stats["rst_sent"] += 1
