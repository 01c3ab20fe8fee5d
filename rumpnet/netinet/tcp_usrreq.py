"""TCP's user requests: what the socket layer asks of a stream (BSD's netinet/tcp_usrreq.c).

connect starts the handshake, send appends to the send buffer and calls
tcp_output, rcvd lets a window update go out, shutdown and close end the
stream with a FIN once the buffer is sent (tcp_usrclosed). A closed socket's
connection lives on until it is CLOSED, so the FIN and TIME_WAIT happen
even when the program has gone.
"""

import errno

from ..kern.sockets import UserRequests, oserror
from . import tcp_output
from .inpcb import in_pcbbind, in_pcbconnect
from .ip import route_output
from .tcp import IPPROTO_TCP
from .tcp_syncache import window_shift
from .tcp_var import (CLOSE_WAIT, CLOSED, ESTABLISHED, FIN_WAIT_1, LAST_ACK, LISTEN, SYN_RECEIVED, SYN_SENT, TcpCb,
                      new_iss)


class TcpUserRequests(UserRequests):
    name = "tcp"
    stream = True

    def attach(self, sock):
        sock.reserve(sock.node.sysctl["net.inet.tcp.sendspace"], sock.node.sysctl["net.inet.tcp.recvspace"])
        sock.pcb = TcpCb(sock)

    def bind(self, sock, address):
        in_pcbbind(sock.node.pcb_table(IPPROTO_TCP), sock, address)

    def listen(self, sock):
        tp = sock.pcb
        if tp.state not in (CLOSED, LISTEN):
            raise oserror(errno.EINVAL)
        if not sock.local[1]:
            sock.node.pcb_table(IPPROTO_TCP).bind(sock, b"\0\0\0\0", 0)
        tp.state = LISTEN

    def connect(self, sock, address):
        tp = sock.pcb
        if tp.state != CLOSED:
            raise oserror(errno.EALREADY if tp.state == SYN_SENT else errno.EINVAL)
        table = sock.node.pcb_table(IPPROTO_TCP)
        in_pcbconnect(table, sock, address)
        for other in table.by_port.get(sock.local[1], ()):
            if other is not sock and other.local[0] == sock.local[0] and other.remote == sock.remote:
                sock.remote = None
                raise oserror(errno.EADDRINUSE)  # that connection exists already (or is in TIME_WAIT)
        tp.maxseg_offered = tp.maxseg = route_output(sock.node, sock.remote[0])[0].mtu - 40
        tp.request_scale = window_shift(sock.rcv.hiwat)
        tp.iss = new_iss()
        tp.snd_una = tp.snd_nxt = tp.snd_max = tp.iss
        tp.state = SYN_SENT
        sock.node.stats.tcp["connect_attempts"] += 1
        tcp_output.tcp_output(tp)

    def send(self, sock, data, address):
        sock.snd.append_bytes(data)
        tcp_output.tcp_output(sock.pcb)

    def rcvd(self, sock):
        tcp_output.tcp_output(sock.pcb)

    def shutdown(self, sock):
        _usrclosed(sock.pcb)

    def detach(self, sock):
        tp = sock.pcb
        if sock.listening:
            sock.node.syncache.forget_listener(sock)
        if tp.state in (CLOSED, LISTEN, SYN_SENT):
            tp.close()
            return
        if sock.rcv.cc:  # data the program never read: abort, so the peer knows it was lost (RFC 9293 3.10.4)
            sock.rcv.flush()
            sock.node.stats.tcp["unread_drops"] += 1
            tp.drop(errno.ECONNRESET)
            return
        _usrclosed(tp)

    def ctloutput(self, sock, name, value):
        """TCP_NODELAY: send small segments at once instead of waiting for the ACK of what is out (Nagle)."""
        if name != "TCP_NODELAY":
            super().ctloutput(sock, name, value)
        sock.pcb.nodelay = bool(value)
        if sock.pcb.state >= ESTABLISHED:
            tcp_output.tcp_output(sock.pcb)

    def state(self, sock):
        return sock.pcb.state_name()


def _usrclosed(tp):
    """No more data from the program: a FIN follows the buffered bytes (BSD's tcp_usrclosed)."""
    if tp.state in (ESTABLISHED, SYN_RECEIVED):
        tp.state = FIN_WAIT_1
    elif tp.state == CLOSE_WAIT:
        tp.state = LAST_ACK
    else:
        return
    tcp_output.tcp_output(tp)


TCP_USRREQS = TcpUserRequests()
