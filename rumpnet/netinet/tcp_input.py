"""Receiving a segment (RFC 9293 section 3.10.7; BSD's netinet/tcp_input.c).

`tcp_input` checks the segment once (tcp.tcp_parse), finds its connection
and runs the state machine in RFC 9293's order: a closed port answers with a
RST; a listener hands SYNs to the SYN cache (tcp_syncache.py); SYN_SENT
completes the handshake; every other state checks the sequence number
against the window, then RST and SYN (with RFC 5961's challenge ACKs), then
the ACK (RTT, congestion window, fast retransmit), then the data (in order to
the socket, out of order to the reassembly queue) and the FIN.
"""

import errno

from . import tcp_output, tcp_syncache, tcp_timer
from .tcp import IPPROTO_TCP, TH_ACK, TH_FIN, TH_RST, TH_SYN, BadSegment, tcp_parse
from .tcp_seq import seq_add, seq_diff, seq_geq, seq_gt, seq_leq, seq_lt
from .tcp_subr import tcp_respond
from .tcp_var import (CLOSE_WAIT, CLOSED, CLOSING, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, LAST_ACK, LISTEN,
                      SYN_RECEIVED, SYN_SENT, TCP_MINMSS, TCP_MSS, TIME_WAIT, can_receive_data)


def tcp_input(node, ifp, header, packet, marks):
    stats = node.stats.tcp
    stats["input"] += 1
    if header.broadcast:
        stats["broadcast"] += 1  # TCP is unicast only; no RST to a broadcast either
        return
    try:
        seg = tcp_parse(header.src, header.dst, packet[header.hlen:], marks)
    except BadSegment as e:
        stats[e.args[0]] += 1
        return
    sock = node.pcb_table(IPPROTO_TCP).lookup(header.dst, seg.dport, header.src, seg.sport)
    tp = sock.pcb if sock is not None else None
    if tp is None or tp.state == CLOSED:
        stats["no_port"] += 1
        reset(node, header, seg)
        return
    if tp.state == LISTEN:
        tp = tcp_syncache.listen_input(tp, header, seg)
        if tp is None:
            return
    elif tp.state == SYN_SENT:
        _syn_sent(tp, seg)
        return
    _synchronized(tp, seg)


def reset(node, header, seg):
    """Answer a segment no connection takes with a RST, as RFC 9293 says (never a RST to a RST).

    At most net.inet.tcp.rstppslimit a second (NetBSD's), so a flood to
    closed ports does not draw a flood back.
    """
    if seg.flags & TH_RST:
        return
    if not node.tcp_rst_rate.allows(node.sysctl["net.inet.tcp.rstppslimit"], node.now()):
        node.stats.tcp["rst_rate_limited"] += 1
        return
    if seg.flags & TH_ACK:
        seq, ack, flags = seg.ack, 0, TH_RST
    else:
        seq, flags = 0, TH_RST | TH_ACK
        ack = seq_add(seg.seq, len(seg.data) + (1 if seg.flags & TH_SYN else 0) + (1 if seg.flags & TH_FIN else 0))
    tcp_respond(node, header.dst, header.src, seg.dport, seg.sport, seq, ack, flags)


def _syn_sent(tp, seg):
    """Our SYN is out: a SYN-ACK completes the handshake, a SYN alone is a simultaneous open."""
    stats = tp.node.stats.tcp
    flags = seg.flags
    if flags & TH_ACK and (seq_leq(seg.ack, tp.iss) or seq_gt(seg.ack, tp.snd_max)):
        if not flags & TH_RST:
            tcp_respond(tp.node, tp.sock.local[0], tp.sock.remote[0], seg.dport, seg.sport, seg.ack, 0, TH_RST)
        return
    if flags & TH_RST:
        if flags & TH_ACK:
            stats["conn_refused"] += 1
            tp.drop(errno.ECONNREFUSED)
        return
    if not flags & TH_SYN:
        return
    tp.irs = seg.seq
    tp.rcv_nxt = tp.rcv_adv = seq_add(seg.seq, 1)
    learn_syn_options(tp, seg)
    if flags & TH_ACK:
        tp.snd_una = seg.ack
        if seq_lt(tp.snd_nxt, tp.snd_una):
            tp.snd_nxt = tp.snd_una
        tp.timers["rexmt"].stop()
        if tp.rtt_seq is not None:
            tcp_timer.rtt_sample(tp, tp.node.now() - tp.rtt_start)
            tp.rtt_seq = None
        established(tp, seg.win, seg.seq, seg.ack)
    else:
        tp.state = SYN_RECEIVED  # simultaneous open: our SYN again, now with an ACK
        tp.snd_nxt = tp.iss
    tp.ack_now = True
    tcp_output.tcp_output(tp)


def learn_syn_options(tp, seg):
    """The peer's MSS and window scale (scaling is on only when both sides offered it, RFC 7323)."""
    tp.maxseg = max(TCP_MINMSS, min(seg.mss or TCP_MSS, tp.maxseg_offered))
    if seg.wscale is not None and tp.request_scale is not None:
        tp.snd_scale, tp.rcv_scale = seg.wscale, tp.request_scale
    else:
        tp.snd_scale = tp.rcv_scale = 0


def established(tp, win, seq, ack):
    """The handshake is done (its window field is never scaled)."""
    tp.state = ESTABLISHED
    tp.snd_wnd = tp.max_sndwnd = win
    tp.snd_wl1, tp.snd_wl2 = seq, ack
    tp.cwnd = tp.initial_window()
    tp.node.stats.tcp["connects"] += 1
    tp.sock.connected()


def _synchronized(tp, seg):
    stats = tp.node.stats.tcp
    sock = tp.sock
    flags = seg.flags
    seq, data, fin = seg.seq, seg.data, bool(flags & TH_FIN)
    wnd = max(0, seq_diff(tp.rcv_adv, tp.rcv_nxt))
    # 1. Is any of it in the window?
    if not _acceptable(tp, seq, len(data) + (1 if flags & TH_SYN else 0) + fin, wnd):
        if not flags & TH_RST:
            stats["out_of_window"] += 1
            tp.ack_now = True
            tcp_output.tcp_output(tp)
        else:
            stats["rst_out_of_window"] += 1
        return
    # 2. RST: only one exactly at rcv_nxt resets; another in the window is challenged (RFC 5961 3.2).
    if flags & TH_RST:
        if seq != tp.rcv_nxt:
            stats["challenge_acks"] += 1
            tp.ack_now = True
            tcp_output.tcp_output(tp)
            return
        stats["rst_received"] += 1
        if tp.state == SYN_RECEIVED:
            tp.drop(errno.ECONNREFUSED)
        elif tp.state in (ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT):
            if not sock.closed:
                sock.notify(errno.ECONNRESET)
            tp.close()
        else:
            tp.close()
        return
    # 3. A SYN in a synchronized state is never acted on: challenge it (RFC 5961 4.2).
    if flags & TH_SYN:
        stats["challenge_acks"] += 1
        tp.ack_now = True
        tcp_output.tcp_output(tp)
        return
    if not flags & TH_ACK:
        stats["no_ack"] += 1
        return
    # Trim what came before rcv_nxt and what lies beyond the window.
    before = seq_diff(tp.rcv_nxt, seq)
    if before > 0:
        if before > len(data):
            fin = False  # the FIN too is old
        stats["duplicate_bytes"] += min(before, len(data))
        data, seq = data[before:], tp.rcv_nxt
        tp.ack_now = True
    room = wnd - seq_diff(seq, tp.rcv_nxt)
    if len(data) > room:
        stats["beyond_window_bytes"] += len(data) - max(0, room)
        data, fin = data[:max(0, room)], False
        tp.ack_now = True
    # 4. The ACK.
    if tp.state == SYN_RECEIVED:
        if not (seq_lt(tp.snd_una, seg.ack) and seq_leq(seg.ack, tp.snd_max)):
            tcp_respond(tp.node, sock.local[0], sock.remote[0], sock.local[1], sock.remote[1], seg.ack, 0, TH_RST)
            return
        established(tp, seg.win << tp.snd_scale, seg.seq, seg.ack)
    if not _ack(tp, seg, data, fin):
        return
    if tp.state == CLOSED:
        return
    # 5. The data and the FIN.
    if (data or fin) and can_receive_data(tp.state):
        if sock.closed and data:  # nobody will read it: abort (BSD, RFC 9293 3.10.7.4)
            stats["data_after_close"] += 1
            tp.rcv_nxt = seq_add(seq, len(data))
            tp.drop(errno.ECONNRESET)
            return
        fin = _receive(tp, seq, data, fin)
        if fin:
            _receive_fin(tp)
    elif fin and tp.state == TIME_WAIT:
        tp.ack_now = True
        tcp_timer.set_2msl(tp)
    tcp_output.tcp_output(tp)


def _acceptable(tp, seq, seglen, wnd):
    """RFC 9293's four cases: does the segment start or end inside the receive window?"""
    start = seq_diff(seq, tp.rcv_nxt)
    if seglen == 0:
        return start == 0 if wnd == 0 else 0 <= start < wnd
    if wnd == 0:
        return False
    end = start + seglen - 1
    return 0 <= start < wnd or 0 <= end < wnd


def _ack(tp, seg, data, fin):
    """Process the ACK field; False when the segment is to be dropped here."""
    stats = tp.node.stats.tcp
    ack = seg.ack
    if seq_gt(ack, tp.snd_max):
        stats["ack_too_much"] += 1
        tp.ack_now = True
        tcp_output.tcp_output(tp)
        return False
    if seq_diff(tp.snd_una, ack) > max(tp.max_sndwnd, 65535):
        stats["ack_too_old"] += 1  # RFC 5961 5.2: an ACK for data never in flight
        tp.ack_now = True
        tcp_output.tcp_output(tp)
        return False
    win = seg.win << tp.snd_scale
    if seq_leq(ack, tp.snd_una):
        if (ack == tp.snd_una and not data and not fin and win == tp.snd_wnd and tp.snd_una != tp.snd_max
                and tp.timers["rexmt"].pending):
            _duplicate_ack(tp)
        else:
            tp.dupacks = 0
    else:
        _new_ack(tp, ack)
        if tp.state == CLOSED:
            return False
    if seq_lt(tp.snd_wl1, seg.seq) or tp.snd_wl1 == seg.seq and (
            seq_lt(tp.snd_wl2, ack) or tp.snd_wl2 == ack and win > tp.snd_wnd):
        tp.snd_wnd = win
        tp.max_sndwnd = max(tp.max_sndwnd, win)
        tp.snd_wl1, tp.snd_wl2 = seg.seq, ack
    return True


def _duplicate_ack(tp):
    """Three duplicate ACKs: retransmit at once and enter fast recovery (RFC 5681 3.2, RFC 6582)."""
    stats = tp.node.stats.tcp
    stats["duplicate_acks"] += 1
    tp.dupacks += 1
    if tp.recover is not None:
        tp.cwnd += tp.maxseg  # each further duplicate: one segment has left the network
        tcp_output.tcp_output(tp)
    elif tp.dupacks == 3:
        stats["fast_retransmits"] += 1
        flight = seq_diff(tp.snd_max, tp.snd_una)
        tp.ssthresh = max(flight // 2, 2 * tp.maxseg)
        tp.recover = tp.snd_max
        _retransmit_first(tp)
        tp.cwnd = tp.ssthresh + 3 * tp.maxseg


def _retransmit_first(tp):
    """Send the first unacknowledged segment again, whatever the window, and go on where we were."""
    tp.timers["rexmt"].stop()
    tp.rtt_seq = None
    onxt = tp.snd_nxt
    tp.snd_nxt = tp.snd_una
    tp.cwnd = tp.maxseg
    tcp_output.tcp_output(tp)
    if seq_gt(onxt, tp.snd_nxt):
        tp.snd_nxt = onxt


def _new_ack(tp, ack):
    stats = tp.node.stats.tcp
    sock = tp.sock
    acked = seq_diff(ack, tp.snd_una)
    stats["acks_received"] += 1
    if tp.rtt_seq is not None and seq_gt(ack, tp.rtt_seq):
        tcp_timer.rtt_sample(tp, tp.node.now() - tp.rtt_start)
        tp.rtt_seq = None
    if ack == tp.snd_max:
        tp.timers["rexmt"].stop()
        tp.rxtshift = 0
    else:
        tcp_timer.set_rexmt(tp)
    fin_acked = tp.fin_sent and ack == tp.snd_max
    data_acked = min(acked - (1 if fin_acked else 0), sock.snd.cc)
    stats["bytes_acked"] += data_acked
    sock.snd.take_bytes(data_acked)
    tp.snd_una = ack
    if seq_lt(tp.snd_nxt, tp.snd_una):
        tp.snd_nxt = tp.snd_una
    if tp.recover is not None:
        if seq_geq(ack, tp.recover):
            tp.cwnd, tp.recover, tp.dupacks = tp.ssthresh, None, 0  # recovery is over
        else:
            cwnd = tp.cwnd  # a partial ACK: the next hole is lost too (RFC 6582 3.2 step 3)
            _retransmit_first(tp)
            tp.cwnd = max(tp.maxseg, cwnd - acked + tp.maxseg)
            tcp_timer.set_rexmt(tp)
    else:
        tp.dupacks = 0
        if tp.cwnd <= tp.ssthresh:
            tp.cwnd += min(acked, tp.maxseg)  # slow start
        else:
            tp.cwnd += max(1, tp.maxseg * tp.maxseg // tp.cwnd)  # congestion avoidance
        tp.cwnd = min(tp.cwnd, 65535 << 14)
    sock.wakeup()  # room in the send buffer
    if fin_acked:
        if tp.state == FIN_WAIT_1:
            tp.state = FIN_WAIT_2
            if sock.closed:
                tcp_timer.set_2msl(tp)  # nobody holds the socket: do not wait for the peer forever
        elif tp.state == CLOSING:
            _time_wait(tp)
        elif tp.state == LAST_ACK:
            tp.close()


def _receive(tp, seq, data, fin):
    """Take in-order data to the socket, keep the rest for later; True when a FIN is now in order."""
    stats = tp.node.stats.tcp
    sock = tp.sock
    if seq == tp.rcv_nxt and not tp.reass:
        if data:
            taken = sock.append(data)
            tp.rcv_nxt = seq_add(tp.rcv_nxt, taken)
            stats["data_received"] += 1
            stats["data_bytes_received"] += taken
            if tp.delack or tp.nodelay:
                tp.ack_now = True  # every second segment is ACKed at once (RFC 9293 3.8.6.3)
            else:
                tp.delack = True
                tcp_timer.set_delack(tp)
        return fin
    if data or fin:
        stats["out_of_order"] += 1
        if not tp.reass.insert(tp.rcv_nxt, seq, data, fin):
            stats["reass_full"] += 1
    tp.ack_now = True  # a duplicate ACK tells the sender of the hole; filling it is ACKed at once too
    fin = False
    while (ready := tp.reass.pop_ready(tp.rcv_nxt)) is not None:
        piece, fin = ready
        tp.rcv_nxt = seq_add(tp.rcv_nxt, sock.append(piece))
    return fin


def _receive_fin(tp):
    tp.rcv_nxt = seq_add(tp.rcv_nxt, 1)
    tp.ack_now = True
    tp.sock.cantrcvmore()
    if tp.state == ESTABLISHED:
        tp.state = CLOSE_WAIT
    elif tp.state == FIN_WAIT_1:
        tp.state = CLOSING
    elif tp.state == FIN_WAIT_2:
        _time_wait(tp)


def _time_wait(tp):
    tp.state = TIME_WAIT
    tp.stop_timers()
    tcp_timer.set_2msl(tp)
