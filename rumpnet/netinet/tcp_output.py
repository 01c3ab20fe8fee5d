"""Sending: what a connection may send now, and the segments that carry it (BSD's netinet/tcp_output.c).

`tcp_output` is called whenever something may have changed what can be sent
(the program wrote, an ACK moved the window, a timer fired). It sends as long
as there is something to: new data within min(peer's window, cwnd), a SYN or
FIN, a window update once the program has read enough, or an ACK owed. It
never waits: what cannot go now waits for the next call.

On an interface with TSO on (`ifconfig shmif0 tso4`), it hands down up to
64 KiB of full segments at once, which the interface cuts into the frames
this code would have sent one by one (net/offload.py's tso_segments). With
TCP's TX checksum offload on (`tcp4csum-tx`), it leaves each segment's sum
zero for the interface to fill in (offload.finish_tx); so does a segment for
TSO, which the cutting sums frame by frame.
"""

from contextlib import nullcontext

from ..net.offload import IFCAP_TSOv4, M_CSUM_TSOv4, TSO_MAX, TSO_MSS_SHIFT
from .ip import IP_HEADER, ip_output, route_to
from .tcp import IPPROTO_TCP, TCP_HEADER, TH_ACK, TH_FIN, TH_PUSH, TH_SYN, syn_options, tcp_build, tcp_csum_flags
from .tcp_seq import seq_add, seq_diff, seq_gt, seq_lt
from .tcp_var import (CLOSED, CLOSING, FIN_WAIT_1, LAST_ACK, LISTEN, SYN_RECEIVED, SYN_SENT, TCP_MAXWIN,
                      can_receive_data)
from . import tcp_timer

# The flags a state sends with (BSD's tcp_outflags).
OUTFLAGS = {SYN_SENT: TH_SYN, SYN_RECEIVED: TH_SYN | TH_ACK}
FIN_STATES = (FIN_WAIT_1, CLOSING, LAST_ACK)


def tcp_output(tp):
    """Send what the connection may send now, as one burst on its interface."""
    if tp.state in (CLOSED, LISTEN):
        return  # no connection (any more): a program reading what is left sends nothing
    ifp, nexthop = route_to(tp.node, tp.sock.remote[0])
    route = (ifp, nexthop) if ifp is not None and ifp.running else None  # else ip_output's lookup raises
    tso = ifp is not None and ifp.capenable & IFCAP_TSOv4 and tp.sock.remote[0] not in tp.node.inaddrs.local
    limit = (TSO_MAX - IP_HEADER.size - TCP_HEADER.size) // tp.maxseg * tp.maxseg if tso else tp.maxseg
    csum_flags = tcp_csum_flags(ifp) if ifp is not None else 0
    with ifp.burst() if ifp is not None else nullcontext():
        while _output_one(tp, limit, csum_flags, route):
            pass


def _output_one(tp, limit, csum_flags, route):
    """Send at most one segment (up to limit bytes of full segments with TSO, the sums csum_flags
    leaves to the interface); True when another may follow."""
    sock = tp.sock
    flags = OUTFLAGS.get(tp.state, TH_ACK)
    buffered = sock.snd.cc
    off = seq_diff(tp.snd_nxt, tp.snd_una)
    if flags & TH_SYN and off > 0:
        flags &= ~TH_SYN  # the SYN is out and not yet due again (a timeout rewinds snd_nxt to it)
    if tp.state in (SYN_SENT, SYN_RECEIVED):
        buffered = 0  # no data before the handshake is done
    sendwin = tp.snd_wnd
    if tp.force and sendwin == 0:
        sendwin = 1  # a zero-window probe: one byte into the closed window
    length = min(buffered, min(sendwin, tp.cwnd)) - off
    if length < 0:
        length = 0
    if sendwin == 0 and length == 0 and buffered > off and tp.state not in (SYN_SENT, SYN_RECEIVED):
        tp.timers["rexmt"].stop()  # the window is shut: probe it rather than time out
        tp.rxtshift = 0
        tp.snd_nxt = tp.snd_una
        off = 0
        if not tp.timers["persist"].pending:
            tcp_timer.set_persist(tp)
    if limit > tp.maxseg and length > tp.maxseg:
        length = min(length, limit) // tp.maxseg * tp.maxseg  # full segments; a tail is decided alone, as without TSO
    else:
        length = min(length, tp.maxseg)
    if tp.state in FIN_STATES and off + length == buffered:
        flags |= TH_FIN
    send = bool(flags & TH_SYN) or tp.ack_now
    if length and (length >= tp.maxseg or tp.force or seq_lt(tp.snd_nxt, tp.snd_max)
                   or off + length == buffered and (tp.nodelay or tp.snd_nxt == tp.snd_una)):
        send = True  # a full segment, a probe, a retransmission, or the tail when Nagle allows it
    if flags & TH_FIN and (not tp.fin_sent or tp.snd_nxt == tp.snd_una):
        send = True
    if not send and can_receive_data(tp.state):  # after the peer's FIN no data comes: no window to tell of
        opening = _window_to_advertise(tp) - max(0, seq_diff(tp.rcv_adv, tp.rcv_nxt))
        if opening >= 2 * tp.maxseg or opening > 0 and 2 * opening >= sock.rcv.hiwat:
            send = True  # a window update worth telling
    if not send:
        if buffered > off and not tp.timers["rexmt"].pending and not tp.timers["persist"].pending:
            tp.rxtshift = 0
            tcp_timer.set_persist(tp)
        return False
    _send_segment(tp, flags, off, length, csum_flags, route)
    return length > 0 and not flags & TH_FIN


def _window_to_advertise(tp):
    """The receive window: free room, never less than what was already offered (the edge never moves left)."""
    win = min(max(0, tp.rcv_space()), TCP_MAXWIN << tp.rcv_scale)
    return max(win, seq_diff(tp.rcv_adv, tp.rcv_nxt))


def _send_segment(tp, flags, off, length, csum_flags, route):
    sock = tp.sock
    data = bytes(sock.snd.stream[off:off + length]) if length else b""
    if flags & TH_FIN and tp.fin_sent and tp.snd_nxt == tp.snd_max:
        tp.snd_nxt = seq_add(tp.snd_nxt, -1)  # the FIN again: it takes the number it took before
    seq = tp.snd_nxt
    options = syn_options(tp.maxseg_offered, tp.request_scale) if flags & TH_SYN else b""
    win = _window_to_advertise(tp)
    if length and off + length == sock.snd.cc:
        flags |= TH_PUSH
    shown = min(win if flags & TH_SYN else win >> tp.rcv_scale, TCP_MAXWIN)  # a SYN's window is never scaled
    stats = tp.node.stats.tcp
    segments = max(1, -(-length // tp.maxseg))
    if segments > 1:
        csum_flags = M_CSUM_TSOv4 | tp.maxseg << TSO_MSS_SHIFT  # the interface cuts it, and sums every frame (TSO)
        stats["tso_output"] += 1
    segment = tcp_build(sock.local[0], sock.remote[0], sock.local[1], sock.remote[1], seq,
                        tp.rcv_nxt if flags & TH_ACK else 0, flags, shown, options, data, checksum=not csum_flags)
    try:
        ip_output(tp.node, IPPROTO_TCP, sock.local[0], sock.remote[0], segment, ttl=sock.ttl, route=route,
                  csum_flags=csum_flags)
    except OSError:
        stats["output_errors"] += 1  # as a lost segment: the retransmission timer tries again
    stats["output"] += segments
    if length:
        if tp.force:
            stats["probes_sent"] += 1
        if seq_lt(seq, tp.snd_max):
            stats["retransmitted"] += segments
            stats["retransmitted_bytes"] += length
        else:
            stats["data_sent"] += segments
            stats["data_bytes_sent"] += length
    elif not flags & (TH_SYN | TH_FIN):
        stats["acks_sent"] += 1
    if flags & TH_SYN:
        stats["syn_sent"] += 1
    edge = seq_add(tp.rcv_nxt, shown if flags & TH_SYN else shown << tp.rcv_scale)
    if seq_gt(edge, tp.rcv_adv):
        tp.rcv_adv = edge
    advance = length + (1 if flags & TH_SYN else 0) + (1 if flags & TH_FIN else 0)
    if flags & TH_FIN:
        tp.fin_sent = True
    tp.snd_nxt = seq_add(tp.snd_nxt, advance)
    if seq_gt(tp.snd_nxt, tp.snd_max):
        if tp.rtt_seq is None:
            tp.rtt_seq, tp.rtt_start = seq, tp.node.now()  # time this segment (Karn: never a retransmission)
        tp.snd_max = tp.snd_nxt
    if tp.snd_nxt != tp.snd_una and not tp.timers["rexmt"].pending:
        if not tp.force:  # data moves again: the retransmission timer takes over from the probes
            tp.timers["persist"].stop()
            tp.persist_shift = 0
        if not tp.timers["persist"].pending:
            tcp_timer.set_rexmt(tp)
    tp.ack_now = tp.delack = tp.force = False
    tp.timers["delack"].stop()
