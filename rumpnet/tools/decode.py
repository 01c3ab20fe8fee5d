"""One line per frame, in the words `tcpdump -e -n` uses.

dpkt reads the ARP, IPv4, ICMP, UDP and TCP headers; this module only
chooses what to print. The 14-byte Ethernet header is split here, because
dpkt.ethernet.Ethernet guesses at VLAN, MPLS and 802.3 encapsulations where a
line must show the bytes as they are.

Frames come from anyone who can write the bus, so every length is checked
before a header is read, and whatever the bytes, describe() returns a line.
Where it stops understanding it says so as tcpdump does: "[|ip]" marks a
header cut short.
"""

import ipaddress
import struct
import time

import dpkt

from ..net.ether import ETHERTYPE_ARP, ETHERTYPE_IP
from ..netinet.ip import IPPROTO_ICMP, IPPROTO_UDP

ETHER_HEADER = struct.Struct("!6s6sH")
ETHERTYPES = {ETHERTYPE_IP: "IPv4", ETHERTYPE_ARP: "ARP", 0x8035: "Reverse ARP", 0x8100: "802.1Q", 0x86DD: "IPv6",
              0x88CC: "LLDP"}
ETHERMIN_TYPE = 0x0600  # a smaller value is an IEEE 802.3 length, not a type

IP_MIN_HEADER = 20
UDP_HEADER = 8
TCP_MIN_HEADER = 20
ICMP_MIN_HEADER = 8
IPPROTO_TCP = 6

# (letter, bit) in the order tcpdump prints TCP flags.
TCP_FLAGS = [("F", 0x01), ("S", 0x02), ("R", 0x04), ("P", 0x08), (".", 0x10), ("U", 0x20), ("E", 0x40),
             ("W", 0x80)]
UNREACH = {0: "net {dst} unreachable", 1: "host {dst} unreachable", 2: "{dst} protocol {proto} unreachable"}
TIME_EXCEEDED = {0: "time exceeded in-transit", 1: "ip reassembly time exceeded"}


def timestamp(sec, usec):
    """tcpdump's default time column: the local time of day to the microsecond."""
    t = time.localtime(sec)
    return f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{usec:06d}"


def line(record):
    """A bus record (sec, usec, frame) as one line of text."""
    return f"{timestamp(record.sec, record.usec)} {describe(record.frame)}"


def describe(frame):
    """What tcpdump -e -n prints after the time for this Ethernet frame."""
    if len(frame) < ETHER_HEADER.size:
        return "[|ether]"
    dst, src, ethertype = ETHER_HEADER.unpack_from(frame)
    head = f"{_mac(src)} > {_mac(dst)}, "
    if ethertype < ETHERMIN_TYPE:
        return f"{head}802.3, length {len(frame)}"
    head += f"ethertype {ETHERTYPES.get(ethertype, 'Unknown')} (0x{ethertype:04x}), length {len(frame)}"
    payload = frame[ETHER_HEADER.size:]
    if ethertype == ETHERTYPE_IP:
        return f"{head}: {_ip(payload)}"
    if ethertype == ETHERTYPE_ARP:
        return f"{head}: {_arp(payload)}"
    return head


def _mac(raw):
    return raw.hex(":")


def _ipv4(raw):
    return str(ipaddress.IPv4Address(raw))


def _arp(payload):
    try:
        arp = dpkt.arp.ARP(payload)
    except dpkt.NeedData:
        return "[|arp]"
    if (arp.hrd, arp.pro, arp.hln, arp.pln) != (1, ETHERTYPE_IP, 6, 4):
        return f"hardware {arp.hrd} (len {arp.hln}), protocol 0x{arp.pro:04x} (len {arp.pln}), length {len(payload)}"
    sha, spa, tha, tpa = _mac(arp.sha), _ipv4(arp.spa), _mac(arp.tha), _ipv4(arp.tpa)
    if arp.op == 1:
        asked = f" ({tha})" if any(arp.tha) else ""
        text = f"Request who-has {tpa}{asked} tell {spa}"
    elif arp.op == 2:
        text = f"Reply {spa} is-at {sha}"
    elif arp.op == 3:
        text = f"Reverse Request who-is {tha} tell {sha}"
    elif arp.op == 4:
        text = f"Reverse Reply {tha} at {tpa}"
    elif arp.op == 8:
        text = f"Inverse Request who-is {tha} tell {sha}"
    elif arp.op == 9:
        text = f"Inverse Reply {sha} at {spa}"
    else:
        text = f"Unknown ({arp.op})"
    return f"{text}, length {len(payload)}"


def _ip(payload):
    """The IPv4 part, with tcpdump's complaints about bad headers and lengths."""
    if len(payload) < IP_MIN_HEADER:
        return "[|ip]"
    version, hlen = payload[0] >> 4, (payload[0] & 0xF) * 4
    if version != 4:
        return f"IP{version}, wrong link-layer encapsulation"
    if hlen < IP_MIN_HEADER:
        return f"bad-hlen {hlen}"
    if len(payload) < hlen:
        return "[|ip]"
    ip = dpkt.ip.IP(payload[:hlen])  # the header alone: dpkt decodes no payload it was not given
    if ip.len < hlen:
        return f"bad-len {ip.len}"
    missing = f"truncated-ip - {ip.len - len(payload)} bytes missing! " if ip.len > len(payload) else ""
    hosts = (_ipv4(ip.src), _ipv4(ip.dst))
    transport = payload[hlen:ip.len]
    length = ip.len - hlen  # as the header says, even when the capture is shorter
    if ip.offset:  # a later fragment carries no transport header
        text = f"{hosts[0]} > {hosts[1]}: ip-proto-{ip.p}"
    elif ip.p == IPPROTO_ICMP:
        text = f"{hosts[0]} > {hosts[1]}: {_icmp(transport)}"
    elif ip.p == IPPROTO_UDP:
        text = _udp(hosts, transport, length)
    elif ip.p == IPPROTO_TCP:
        text = _tcp(hosts, transport, length)
    else:
        text = f"{hosts[0]} > {hosts[1]}: ip-proto-{ip.p} {length}"
    return missing + text


def _icmp(message):
    if len(message) < ICMP_MIN_HEADER:
        return "[|icmp]"
    icmp = dpkt.icmp.ICMP(message)
    if icmp.type in (0, 8):
        kind = "reply" if icmp.type == 0 else "request"
        text = f"echo {kind}, id {icmp.echo.id}, seq {icmp.echo.seq}"
    elif icmp.type == 3:
        text = _unreach(icmp.code, message[ICMP_MIN_HEADER - 2:ICMP_MIN_HEADER], message[ICMP_MIN_HEADER:])
        if text is None:
            return "[|icmp]"
    elif icmp.type == 11:
        text = TIME_EXCEEDED.get(icmp.code, f"time exceeded code {icmp.code}")
    else:
        text = f"type-#{icmp.type}"
    return f"ICMP {text}, length {len(message)}"


def _unreach(code, mtu, quote):
    """Destination unreachable, naming where the quoted packet went; None when the quote is cut short.

    The quote is read from its bytes: dpkt would decode the quoted transport
    header as a whole packet, and most quotes hold only its first 8 bytes.
    """
    if len(quote) < IP_MIN_HEADER or (quote[0] & 0xF) * 4 < IP_MIN_HEADER:
        return None
    hlen = (quote[0] & 0xF) * 4
    if len(quote) < hlen:
        return None
    inner = dpkt.ip.IP(quote[:hlen])
    dst = _ipv4(inner.dst)
    if code == 3:
        if len(quote) < hlen + 4:
            return None
        name = {IPPROTO_UDP: "udp", IPPROTO_TCP: "tcp"}.get(inner.p, f"protocol {inner.p}")
        return f"{dst} {name} port {struct.unpack_from('!H', quote, hlen + 2)[0]} unreachable"
    if code == 4:
        mtu = struct.unpack("!H", mtu)[0]
        return f"{dst} unreachable - need to frag" + (f" (mtu {mtu})" if mtu else "")
    if code in UNREACH:
        return UNREACH[code].format(dst=dst, proto=inner.p)
    return f"{dst} unreachable - code {code}"


def _udp(hosts, datagram, length):
    if len(datagram) < UDP_HEADER:
        return f"{hosts[0]} > {hosts[1]}: [|udp]"
    udp = dpkt.udp.UDP(datagram)
    ports = f"{hosts[0]}.{udp.sport} > {hosts[1]}.{udp.dport}"
    if udp.ulen < UDP_HEADER:
        return f"{ports}: UDP, bad length {udp.ulen}"
    if udp.ulen > length:
        return f"{ports}: UDP, bad length {udp.ulen - UDP_HEADER} > {length - UDP_HEADER}"
    return f"{ports}: UDP, length {udp.ulen - UDP_HEADER}"


def _tcp(hosts, segment, length):
    """Flags, sequence numbers (absolute, as tcpdump -S), window and data length."""
    if len(segment) < TCP_MIN_HEADER:
        return f"{hosts[0]} > {hosts[1]}: [|tcp]"
    try:
        tcp = dpkt.tcp.TCP(segment)
    except dpkt.UnpackError:
        return f"{hosts[0]} > {hosts[1]}: [|tcp]"
    data = length - tcp.off * 4
    flags = "".join(letter for letter, bit in TCP_FLAGS if tcp.flags & bit)
    text = f"{hosts[0]}.{tcp.sport} > {hosts[1]}.{tcp.dport}: Flags [{flags}]"
    if data > 0 or tcp.flags & 0x07:  # data, or SYN, FIN, RST
        text += f", seq {tcp.seq}" + (f":{(tcp.seq + data) & 0xFFFFFFFF}" if data > 0 else "")
    if tcp.flags & 0x10:
        text += f", ack {tcp.ack}"
    return f"{text}, win {tcp.win}, length {max(data, 0)}"
