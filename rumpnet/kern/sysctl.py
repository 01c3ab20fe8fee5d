"""The node's tunables, named as NetBSD's sysctl(7) names them."""

from . import numbers

# name -> (default, lowest, highest, description)
VARIABLES = {
    "net.core.busy_poll": (0, 0, 100000, "microseconds a node keeps polling, not sleeping, once a socket waits (Linux's)"),
    "net.inet.ip.forwarding": (0, 0, 1, "forward packets not addressed to this node"),
    "net.inet.ip.fastforwarding": (1, 0, 1, "forward the common packet in one step (FreeBSD's ip_tryforward)"),
    "net.inet.ip.nat": (0, 0, 1, "translate the source of packets forwarded out of a virt interface to its address"),
    "net.inet.ip.ttl": (64, 1, 255, "time to live of packets this node sends"),
    "net.inet.icmp.bmcastecho": (0, 0, 1, "answer echo requests sent to a broadcast address"),
    "net.inet.icmp.errppslimit": (100, -1, 2**31 - 1, "ICMP errors sent per second at most (-1: no limit)"),
    "net.inet.arp.keep": (1200, 1, 86400, "seconds a resolved ARP entry is kept"),
    "net.inet.arp.max_entries": (1024, 1, 65536, "ARP entries kept at most; the least recently learned go first"),
    "net.inet.udp.recvspace": (41600, 1024, 4 * 1024 * 1024, "bytes a UDP socket may queue"),
    "net.inet.udp.fastpath": (1, 0, 1, "take the common UDP datagram in one step (Linux's udp_early_demux)"),
    "net.inet.tcp.sendspace": (262144, 4096, 4 * 1024 * 1024, "bytes a TCP socket's send buffer holds"),
    "net.inet.tcp.recvspace": (262144, 4096, 4 * 1024 * 1024, "bytes a TCP socket's receive buffer holds"),
    "net.inet.tcp.msl": (30, 0, 600, "TCP's maximum segment lifetime in seconds (TIME_WAIT lasts twice this)"),
    "net.inet.tcp.rto_min": (200, 1, 60000, "the least retransmission timeout, in milliseconds"),
    "net.inet.tcp.delack_ms": (100, 1, 500, "the longest an ACK waits to go with data or a second segment, ms"),
    "net.inet.tcp.rstppslimit": (100, -1, 2**31 - 1, "TCP resets to closed ports sent per second at most (-1: no limit)"),
    "net.inet.tcp.syn_cache_limit": (10255, 1, 100000, "half-open TCP connections kept at most (SYN cache)"),
}


class SysctlError(Exception):
    pass


class Sysctl(dict):
    """A dict of the variables' current values that refuses unknown names and bad values."""

    def __init__(self):
        super().__init__((name, spec[0]) for name, spec in VARIABLES.items())

    def set(self, name, text):
        if name not in VARIABLES:
            raise SysctlError(f"{name}: no such variable")
        _, low, high, _ = VARIABLES[name]
        try:  # a sysctl -w string, a request's integer or a profile's TOML value (never true, never 6.4)
            if isinstance(text, str):
                value = numbers.integer(text, low, high)
            elif isinstance(text, int) and not isinstance(text, bool):
                value = numbers.in_range(text, low, high)
            else:
                raise ValueError(f"{text!r} is not an integer")
        except ValueError as e:
            raise SysctlError(f"{name}: {e}") from None
        old = self[name]
        self[name] = value
        return old

    def matching(self, prefix):
        names = [n for n in self if n == prefix or n.startswith(prefix + ".")] if prefix else list(self)
        if not names:
            raise SysctlError(f"{prefix}: no such variable")
        return {n: self[n] for n in sorted(names)}
