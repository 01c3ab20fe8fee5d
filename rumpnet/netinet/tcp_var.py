"""The TCP control block: one connection's state (BSD's netinet/tcp_var.h, tcp_fsm.h).

A TcpCb lives in sock.pcb from attach until the connection is CLOSED, which
may be after the program closed the socket (FIN_WAIT_2, TIME_WAIT): the
socket then stays in the node's TCP port table, so netstat lists it, but no
program holds it.
"""

import os

from .tcp import IPPROTO_TCP, TH_ACK, TH_RST
from .tcp_subr import tcp_respond
from .tcp_reass import ReassemblyQueue

# The states of RFC 9293 figure 5, numbered as BSD's tcp_fsm.h numbers them.
(CLOSED, LISTEN, SYN_SENT, SYN_RECEIVED, ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK,
 FIN_WAIT_2, TIME_WAIT) = range(11)
STATE_NAMES = ("CLOSED", "LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT_1",
               "CLOSING", "LAST_ACK", "FIN_WAIT_2", "TIME_WAIT")  # as netstat prints them


def have_received_syn(state):
    return state >= SYN_RECEIVED


def have_established(state):
    return state >= ESTABLISHED


def can_receive_data(state):
    """States in which data and FIN from the peer are still taken (TCPS_HAVERCVDFIN is false)."""
    return state in (ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2)


TCP_MAXWIN = 65535
TCP_MSS = 536  # the MSS assumed when the peer sends none (RFC 9293 3.7.1)
TCP_MINMSS = 216  # a smaller MSS option is raised to this (NetBSD's tcp_minmss): tiny segments cost a node dear
TCP_MAXRXTSHIFT = 12  # retransmissions before a connection is dropped
TCP_SYN_RETRIES = 6  # SYN retransmissions before connect fails with ETIMEDOUT
TCP_RTO_INITIAL = 1.0  # RFC 6298 2.1
TCP_RTO_MAX = 60.0  # RFC 6298 2.5
TCP_PERSIST_MIN, TCP_PERSIST_MAX = 0.5, 60.0
TCP_DELACK = 0.1  # at most this long before an ACK goes out (RFC 9293 says under 0.5 s)


def new_iss():
    """An initial sequence number nobody can guess (RFC 6528's aim, by plain randomness)."""
    return int.from_bytes(os.urandom(4), "big")


class TcpCb:
    """One connection: sequence variables (RFC 9293 3.3.1), RTT estimator, congestion state, timers."""

    def __init__(self, sock):
        self.sock = sock
        node = sock.node
        self.node = node
        self.state = CLOSED
        self.nodelay = False
        self.maxseg = TCP_MSS
        self.maxseg_offered = TCP_MSS  # the MSS our SYN offers: the route's MTU less the headers
        # send sequence space
        self.iss = 0
        self.snd_una = self.snd_nxt = self.snd_max = 0
        self.snd_wnd = 0
        self.snd_wl1 = self.snd_wl2 = 0
        self.max_sndwnd = 0
        self.snd_scale = 0  # the peer's window shift
        self.fin_sent = False
        # receive sequence space
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0  # the right edge of the window advertised last: never moved left
        self.rcv_scale = 0  # our window shift
        self.request_scale = None  # the shift offered in our SYN, None when not offering one
        self.reass = ReassemblyQueue()
        # RTT estimation (RFC 6298) and retransmission
        self.srtt = None
        self.rttvar = 0.0
        self.rto = TCP_RTO_INITIAL
        self.rtt_seq = None  # the sequence number being timed (Karn: never a retransmitted one)
        self.rtt_start = 0.0
        self.rxtshift = 0
        # congestion control (RFC 5681, NewReno's recovery of RFC 6582)
        self.cwnd = self.ssthresh = TCP_MAXWIN << 14
        self.dupacks = 0
        self.recover = None  # snd_max when fast recovery began; None outside it
        self.persist_shift = 0
        # output flags
        self.ack_now = False
        self.delack = False
        self.force = False  # a persist probe: one byte into a zero window
        self.timers = {name: node.timers.callout() for name in ("rexmt", "persist", "delack", "2msl")}

    def state_name(self):
        return STATE_NAMES[self.state]

    def rcv_space(self):
        return self.sock.rcv.space() - self.reass.bytes

    def stop_timers(self):
        for callout in self.timers.values():
            callout.stop()

    def initial_window(self):
        """RFC 5681's initial congestion window: 2 to 4 segments by their size."""
        return min(4 * self.maxseg, max(2 * self.maxseg, 4380))

    def close(self):
        """The connection is over (BSD's tcp_close): forget it; a socket still open reads end of file."""
        self.stop_timers()
        self.state = CLOSED
        self.reass.clear()
        sock = self.sock
        self.node.pcb_table(IPPROTO_TCP).remove(sock)
        if not sock.closed:
            sock.cant_send = True
            sock.cantrcvmore()

    def drop(self, error):
        """Abort the connection (BSD's tcp_drop): a RST to the peer if it knows us, the error to the program."""
        if have_received_syn(self.state):
            sock = self.sock
            tcp_respond(self.node, sock.local[0], sock.remote[0], sock.local[1], sock.remote[1], self.snd_nxt,
                        self.rcv_nxt, TH_RST | TH_ACK)
        if not self.sock.closed:
            self.sock.notify(error)
        self.close()
