"""A connection's timers (BSD's netinet/tcp_timer.c): retransmission, persist, delayed ACK, 2MSL.

Each is a callout of the node's timer service (kern/callout.py), so tests
drive them with trio's MockClock. The retransmission timeout follows RFC
6298 (smoothed RTT and its variance, doubled on each timeout, Karn's rule);
its floor is the sysctl net.inet.tcp.rto_min in milliseconds.
"""

import errno

from . import tcp_output
from .tcp_var import (FIN_WAIT_2, SYN_RECEIVED, SYN_SENT, TCP_MAXRXTSHIFT, TCP_PERSIST_MAX, TCP_PERSIST_MIN,
                      TCP_RTO_MAX, TCP_SYN_RETRIES, TIME_WAIT)


def rto_min(node):
    return node.sysctl["net.inet.tcp.rto_min"] / 1000


def set_rexmt(tp):
    delay = min(max(tp.rto, rto_min(tp.node)) * (1 << tp.rxtshift), TCP_RTO_MAX)
    tp.timers["rexmt"].reset(delay, _rexmt, tp)


def rtt_sample(tp, rtt):
    """A new round-trip measurement (RFC 6298 2.2 and 2.3) sets the RTO afresh."""
    if tp.srtt is None:
        tp.srtt, tp.rttvar = rtt, rtt / 2
    else:
        tp.rttvar = 0.75 * tp.rttvar + 0.25 * abs(tp.srtt - rtt)
        tp.srtt = 0.875 * tp.srtt + 0.125 * rtt
    tp.rto = min(max(tp.srtt + max(0.001, 4 * tp.rttvar), rto_min(tp.node)), TCP_RTO_MAX)
    tp.rxtshift = 0


def _rexmt(now, tp):
    """The oldest unacknowledged segment was not acknowledged in time: back off and send it again."""
    stats = tp.node.stats.tcp
    tp.rxtshift += 1
    limit = TCP_SYN_RETRIES if tp.state in (SYN_SENT, SYN_RECEIVED) else TCP_MAXRXTSHIFT
    if tp.rxtshift > limit:
        stats["timeout_drops"] += 1
        tp.drop(errno.ETIMEDOUT)
        return
    stats["rexmt_timeouts"] += 1
    if tp.rxtshift > 3 and tp.srtt is not None:  # RFC 6298 5.7's spirit: the estimate is stale
        tp.rttvar += tp.srtt / 4
        tp.srtt = None
    flight = max(0, min(tp.snd_wnd, tp.cwnd)) // 2
    tp.ssthresh = max(flight, 2 * tp.maxseg)  # RFC 5681 (4): loss seen by the timer
    tp.cwnd = tp.maxseg
    tp.dupacks = 0
    tp.recover = None
    tp.snd_nxt = tp.snd_una
    tp.rtt_seq = None  # Karn: a retransmitted segment is never timed
    set_rexmt(tp)
    tcp_output.tcp_output(tp)


def set_persist(tp):
    """Probe a zero window after a backed-off delay (BSD's tcp_setpersist)."""
    base = max(tp.srtt or tp.rto, rto_min(tp.node))
    delay = min(max(base * (1 << tp.persist_shift), TCP_PERSIST_MIN), TCP_PERSIST_MAX)
    tp.timers["persist"].reset(delay, _persist, tp)


def _persist(now, tp):
    tp.node.stats.tcp["persist_timeouts"] += 1
    if tp.sock.closed and tp.persist_shift >= TCP_MAXRXTSHIFT:
        tp.node.stats.tcp["timeout_drops"] += 1
        tp.drop(errno.ETIMEDOUT)  # nobody holds the socket and the peer never opens its window
        return
    tp.persist_shift = min(tp.persist_shift + 1, TCP_MAXRXTSHIFT)
    set_persist(tp)
    tp.force = True
    tcp_output.tcp_output(tp)
    tp.force = False


def set_delack(tp):
    if not tp.timers["delack"].pending:
        tp.timers["delack"].reset(tp.node.sysctl["net.inet.tcp.delack_ms"] / 1000, _delack, tp)


def _delack(now, tp):
    tp.node.stats.tcp["delayed_acks"] += 1
    tp.ack_now = True
    tcp_output.tcp_output(tp)


def set_2msl(tp):
    """TIME_WAIT lasts twice the maximum segment lifetime (sysctl net.inet.tcp.msl, seconds)."""
    tp.timers["2msl"].reset(2 * tp.node.sysctl["net.inet.tcp.msl"], _2msl, tp)


def _2msl(now, tp):
    if tp.state in (TIME_WAIT, FIN_WAIT_2):  # FIN_WAIT_2 of a closed socket: the peer never finished
        tp.close()
