"""The SYN cache: half-open connections kept small (BSD's netinet/tcp_syncache.c).

A SYN to a listening socket makes no socket: it makes one small entry here,
answered with a SYN-ACK. Only the ACK that completes the handshake makes the
connection and its socket, queued for accept() if the listener's backlog has
room (else counted as a listen queue overflow and reset). The cache holds at
most net.inet.tcp.syn_cache_limit entries; a new SYN beyond that evicts the
oldest, so a SYN flood costs a bounded amount of memory and never fills the
listener's queue.
"""

from collections import OrderedDict

from . import tcp_input
from .ip import ip_output, route_output
from .tcp import (IPPROTO_TCP, TCP_MAX_WINSHIFT, TH_ACK, TH_RST, TH_SYN, syn_options, tcp_build,
                  tcp_csum_flags)
from .tcp_seq import seq_add
from .tcp_var import TCP_MAXWIN, TCP_MSS, new_iss

SYN_RETRIES = 3  # SYN-ACKs sent again before an entry is given up
SYN_RTO = 1.0


class SynEntry:
    __slots__ = ("listener", "key", "iss", "irs", "mss", "mss_offered", "wscale", "request_scale", "win", "tries",
                 "timer")


class SynCache:
    """One node's half-open connections, oldest first."""

    def __init__(self, node):
        self.node = node
        self.entries = OrderedDict()  # (local, lport, remote, rport) -> SynEntry

    def remove(self, entry):
        entry.timer.stop()
        self.entries.pop(entry.key, None)

    def forget_listener(self, listener):
        for entry in [e for e in self.entries.values() if e.listener is listener]:
            self.remove(entry)


def window_shift(space):
    """The smallest window scale that lets a window of `space` bytes be offered (RFC 7323 2.3)."""
    shift = 0
    while TCP_MAXWIN << shift < space and shift < TCP_MAX_WINSHIFT:
        shift += 1
    return shift


def listen_input(listener_tp, header, seg):
    """A segment for a listening socket; the new connection's control block when it completes a handshake."""
    node = listener_tp.node
    stats = node.stats.tcp
    cache = node.syncache
    key = (header.dst, seg.dport, header.src, seg.sport)
    entry = cache.entries.get(key)
    flags = seg.flags
    if flags & TH_RST:
        if entry is not None and seg.seq == seq_add(entry.irs, 1):
            cache.remove(entry)
            stats["syncache_reset"] += 1
        return None
    if flags & TH_SYN:
        if flags & TH_ACK:
            tcp_input.reset(node, header, seg)
        elif entry is not None:
            _send_synack(node, entry)  # the peer sent its SYN again: so do we
        else:
            _add(cache, listener_tp.sock, key, seg)
        return None
    if entry is None or seg.ack != seq_add(entry.iss, 1) or seg.seq != seq_add(entry.irs, 1):
        stats["syncache_unknown_ack"] += 1
        tcp_input.reset(node, header, seg)
        return None
    cache.remove(entry)
    sock = entry.listener.new_connection()
    if sock is None:
        stats["listen_overflow"] += 1
        tcp_input.reset(node, header, seg)
        return None
    return _connection(node, sock, entry, seg)


def _add(cache, listener, key, seg):
    node = cache.node
    stats = node.stats.tcp
    if len(cache.entries) >= node.sysctl["net.inet.tcp.syn_cache_limit"]:
        _, oldest = cache.entries.popitem(last=False)
        oldest.timer.stop()
        stats["syncache_overflow"] += 1
    entry = SynEntry()
    entry.listener, entry.key = listener, key
    entry.iss, entry.irs = new_iss(), seg.seq
    entry.mss, entry.wscale = seg.mss, seg.wscale
    entry.mss_offered = TCP_MSS  # until a SYN-ACK goes out on a route
    entry.request_scale = window_shift(listener.rcv.hiwat) if seg.wscale is not None else None
    entry.win = seg.win
    entry.tries = 0
    entry.timer = node.timers.callout()
    cache.entries[key] = entry
    stats["syncache_added"] += 1
    _send_synack(node, entry)


def _send_synack(node, entry):
    local, lport, remote, rport = entry.key
    try:
        ifp, nexthop = route_output(node, remote)
    except OSError:
        node.stats.tcp["output_errors"] += 1
        return
    entry.mss_offered = ifp.mtu - 40
    win = min(entry.listener.rcv.hiwat, TCP_MAXWIN)
    csum_flags = tcp_csum_flags(ifp)
    segment = tcp_build(local, remote, lport, rport, entry.iss, seq_add(entry.irs, 1), TH_SYN | TH_ACK, win,
                        syn_options(entry.mss_offered, entry.request_scale), checksum=not csum_flags)
    try:
        ip_output(node, IPPROTO_TCP, local, remote, segment, route=(ifp, nexthop), csum_flags=csum_flags)
    except OSError:
        node.stats.tcp["output_errors"] += 1
    node.stats.tcp["output"] += 1
    node.stats.tcp["syn_sent"] += 1
    entry.timer.reset(SYN_RTO * (1 << entry.tries), _timeout, node, entry)


def _timeout(now, node, entry):
    entry.tries += 1
    if entry.tries > SYN_RETRIES:
        node.syncache.remove(entry)
        node.stats.tcp["syncache_timeout"] += 1
        return
    _send_synack(node, entry)


def _connection(node, sock, entry, seg):
    """Make the accepted socket's connection, ESTABLISHED from the entry's handshake."""
    local, lport, remote, rport = entry.key
    node.pcb_table(IPPROTO_TCP).insert(sock, local, lport)
    sock.remote = (remote, rport)
    tp = sock.pcb
    tp.nodelay = entry.listener.pcb.nodelay
    tp.iss, tp.irs = entry.iss, entry.irs
    tp.snd_una = tp.snd_nxt = tp.snd_max = seq_add(entry.iss, 1)
    tp.rcv_nxt = seq_add(entry.irs, 1)
    tp.request_scale = entry.request_scale
    tp.maxseg_offered = entry.mss_offered
    tcp_input.learn_syn_options(tp, seg._replace(mss=entry.mss, wscale=entry.wscale))
    # The whole window, scaled, as BSD's syncache_socket records it, not the SYN-ACK's unscaled field:
    # else the first read would find it "opened" and send a bare window update no peer needs.
    tp.rcv_adv = seq_add(tp.rcv_nxt, min(entry.listener.rcv.hiwat, TCP_MAXWIN << tp.rcv_scale))
    tcp_input.established(tp, seg.win << tp.snd_scale, seg.seq, seg.ack)
    return tp
