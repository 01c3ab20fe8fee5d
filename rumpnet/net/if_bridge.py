"""bridge(4): a learning bridge that joins other interfaces of the node into one Ethernet segment.

`ifconfig bridge0 create`, then `brconfig bridge0 add shmif0 add shmif1 up`.
Each member gets a `BridgePort` layer, the one nearest its stack, which sees
every frame the member's driver reads (shmif hands up everything on the bus:
the member is in promiscuous reception) before ether_input's address filter.
For each frame it does what NetBSD's bridge_input does:

    learn    source MAC -> the member it came in on (bridge_rtupdate), unless
             the table already holds maxaddr entries
    deliver  to the stack of the member whose MAC it is addressed to, and
             broadcast and multicast to the stack of the member it came in on
    forward  by destination MAC to the member that address was learned on
             (never the one it came in on), or to every other member when the
             address is unknown, broadcast or multicast (bridge_forward)

Frames the node's own stack sends on a member go where the table says, or to
every member (bridge_output). Addresses stay on the members, as in NetBSD;
the bridge itself has none. Learned entries age out `timeout` seconds after
they were last seen, by one callout of the node's timer service per bridge.
"""

from collections import OrderedDict, defaultdict
import errno
import math

from .ether import ETHER_HDR_LEN
from .if_clone import register_driver
from .ifnet import IFF_PROMISC, Driver, InterfaceError, Layer

DEFAULT_MAXADDR = 100  # NetBSD's BRIDGE_RTABLE_MAX
DEFAULT_TIMEOUT = 1200  # seconds; NetBSD's BRIDGE_RTABLE_TIMEOUT
MAX_MAXADDR = 65536  # the most a table may hold, whatever brconfig asks
MAX_TIMEOUT = 0xFFFFFFFF  # brconfig's u32
MAX_MEMBERS = 64

IFBIF_LEARNING = 0x1  # the member's source addresses are learned
IFBIF_DISCOVER = 0x2  # frames to unknown addresses are sent out of the member
IFBIF_NAMES = [(IFBIF_LEARNING, "LEARNING"), (IFBIF_DISCOVER, "DISCOVER")]
IFBAF_DYNAMIC = 0x0  # a learned entry (IFBAF_STATIC entries are not implemented)

# NetBSD's spanning-tree defaults, printed by brconfig; rumpnet runs no STP.
BSTP_PRIORITY, BSTP_HELLOTIME, BSTP_FWDDELAY, BSTP_MAXAGE, BSTP_PORT_PRIORITY = 32768, 2, 15, 20, 128


class BridgeEntry:
    """One learned address: the member it was seen on and when it expires (struct bridge_rtnode)."""

    __slots__ = ("port", "expire")

    def __init__(self, port, expire):
        self.port = port
        self.expire = expire


class BridgePort(Layer):
    """A member's place in a bridge: the layer nearest the member's stack (struct bridge_iflist)."""

    depth = -1

    def __init__(self, bridge, ifp, number):
        self.bridge = bridge
        self.ifp = ifp
        self.number = number
        self.flags = IFBIF_LEARNING | IFBIF_DISCOVER
        ifp.flags |= IFF_PROMISC

    def input(self, frames, up):
        self.bridge.bridge_input(self, frames, up)

    def output(self, frames, down):
        self.bridge.bridge_output(self, frames, down)

    def send(self, frames):
        self.ifp.send_below(self, frames)

    def describe(self):
        return {"bridge": self.bridge.ifp.name}

    def close(self):
        self.ifp.flags &= ~IFF_PROMISC
        self.bridge.forget(self)


class BridgeDriver(Driver):
    """The bridge(4) pseudo-interface: its members and its forwarding table; it carries no frames of its own."""

    kind = "bridge"

    def __init__(self, ifp):
        super().__init__(ifp)
        self.stats = defaultdict(int)
        self.ports = {}  # member name -> BridgePort, in the order they were added
        self.table = OrderedDict()  # MAC -> BridgeEntry, least recently seen first
        self.maxaddr = DEFAULT_MAXADDR
        self.timeout = DEFAULT_TIMEOUT
        self.timers = None
        self.ager = None

    # -- the Driver contract: nothing to read or write of its own --------------------------

    def start(self, nursery, input):
        pass  # the members read; `up` only lets the bridge forward

    def transmit(self, frames):
        self.ifp.counters.oerrors += len(frames)  # it has no address, so its stack sends nothing here

    def detach(self):
        for port in list(self.ports.values()):
            port.ifp.set_layer(BridgePort, None)

    # -- members (brconfig add, delete) ------------------------------------------------------

    def add(self, member, timers):
        """Make interface `member` a port of this bridge (BRDGADD); timers runs the ageing."""
        name = self.ifp.name
        if member is self.ifp or member.kind == "bridge":
            raise InterfaceError(errno.EINVAL, f"{name}: {member.name} is a bridge and cannot be a member")
        if any(isinstance(layer, BridgePort) for layer in member.layers):
            raise InterfaceError(errno.EBUSY, f"{name}: {member.name} is already a member of a bridge")
        if len(self.ports) >= MAX_MEMBERS:
            raise InterfaceError(errno.ENOSPC, f"{name}: at most {MAX_MEMBERS} members")
        if self.ager is None:
            self.timers, self.ager = timers, timers.callout()
        number = min(set(range(1, MAX_MEMBERS + 2)) - {port.number for port in self.ports.values()})
        port = BridgePort(self, member, number)
        self.ports[member.name] = port
        member.set_layer(BridgePort, port)

    def delete(self, member_name):
        """Take a member out (BRDGDEL); its learned addresses go with it."""
        if member_name not in self.ports:
            raise InterfaceError(errno.ENOENT, f"{self.ifp.name}: {member_name} is not a member")
        self.ports[member_name].ifp.set_layer(BridgePort, None)

    def forget(self, port):
        """A member leaves: deleted, destroyed, or the bridge destroyed (BridgePort.close)."""
        if self.ports.get(port.ifp.name) is port:
            del self.ports[port.ifp.name]
            for mac in [mac for mac, entry in self.table.items() if entry.port is port]:
                del self.table[mac]

    # -- the forwarding table (bridge_rtupdate, bridge_rtage, bridge_rttrim) -------------------

    def learn(self, mac, port, now):
        entry = self.table.get(mac)
        expire = now + self.timeout if self.timeout else math.inf
        if entry is None:
            if len(self.table) >= self.maxaddr:
                self.stats["table_full"] += 1
                return
            self.table[mac] = BridgeEntry(port, expire)
        else:
            entry.port, entry.expire = port, expire
            self.table.move_to_end(mac)
        self._arm(now)

    def _arm(self, now):
        """Time the ageing for the oldest entry, which expires first (all share one timeout)."""
        if self.ager.pending or not self.table:
            return
        first = next(iter(self.table.values())).expire
        if first != math.inf:
            self.ager.reset(max(first - now, 0), self._age)

    def _age(self, now):
        while self.table:
            mac, entry = next(iter(self.table.items()))
            if entry.expire > now:
                break
            del self.table[mac]
            self.stats["aged"] += 1
        self._arm(now)

    def set_maxaddr(self, size):
        """BRDGSCACHE: the table's size; the least recently seen entries go when it shrinks."""
        if not 0 <= size <= MAX_MAXADDR:
            raise InterfaceError(errno.EINVAL, f"{self.ifp.name}: maxaddr must be from 0 to {MAX_MAXADDR}")
        self.maxaddr = size
        while len(self.table) > size:
            self.table.popitem(last=False)

    def set_timeout(self, seconds, now):
        """BRDGSTO: seconds an entry lives after it was last seen, 0 for ever; none outlives the new timeout."""
        if not 0 <= seconds <= MAX_TIMEOUT:
            raise InterfaceError(errno.EINVAL, f"{self.ifp.name}: timeout must be from 0 to {MAX_TIMEOUT}")
        self.timeout = seconds
        if seconds:  # min() keeps the entries in expiry order
            for entry in self.table.values():
                entry.expire = min(entry.expire, now + seconds)
        if self.ager is not None:
            self.ager.stop()
            self._arm(now)

    def flush(self):
        """BRDGFLUSH: forget every learned address."""
        self.table.clear()

    def delete_address(self, mac):
        """BRDGDADDR: forget one address."""
        if self.table.pop(mac, None) is None:
            raise InterfaceError(errno.ENOENT, f"{self.ifp.name}: {mac.hex(':')} is not in the address cache")

    # -- the data path --------------------------------------------------------------------

    def _member_of(self, mac):
        return next((port for port in self.ports.values() if port.ifp.mac == mac), None)

    def bridge_input(self, port, frames, up):
        """A member's batch: learn, forward, and pass up what its stack (or a sibling's) should see."""
        if not self.ifp.running:
            up(frames)  # a bridge that is down leaves its members alone
            return
        now = self.timers.now()
        local, out = [], defaultdict(list)
        for frame in frames:
            if len(frame) < ETHER_HDR_LEN:
                local.append(frame)  # ether_input counts it
                continue
            dst, src = frame[:6], frame[6:12]
            if self._member_of(src) is not None:
                self.stats["own_source"] += 1  # a member's own frame heard by another member: a loop
                continue
            if port.flags & IFBIF_LEARNING and not src[0] & 1 and any(src):
                self.learn(src, port, now)
            if dst[0] & 1:
                local.append(frame)
                self._flood(port, frame, out)
                continue
            member = self._member_of(dst)
            if member is port:
                local.append(frame)
            elif member is not None:
                member.ifp.deliver([frame])
            else:
                self._forward(port, dst, frame, out)
        self._send(out)
        if local:
            up(local)

    def bridge_output(self, port, frames, down):
        """Frames the stack sends on a member: to where the destination was learned, else to every member."""
        if not self.ifp.running:
            down(frames)
            return
        mine, out = [], defaultdict(list)
        for frame in frames:
            entry = self.table.get(frame[:6])
            if entry is not None and entry.port is not port:
                out[entry.port].append(frame)
                continue
            mine.append(frame)
            if entry is None:
                for other in self.ports.values():
                    if other is not port:
                        out[other].append(frame)
        if mine:
            down(mine)
        self._send(out)

    def _forward(self, port, dst, frame, out):
        """bridge_forward: a unicast frame to the member its destination was learned on, or flooded."""
        entry = self.table.get(dst)
        if entry is None:
            self._flood(port, frame, out)
        elif entry.port is port:
            self.stats["same_port"] += 1  # its destination is on the segment it came from
        else:
            self.stats["forwarded"] += 1
            out[entry.port].append(frame)

    def _flood(self, port, frame, out):
        self.stats["flooded"] += 1
        for other in self.ports.values():
            if other is not port and other.flags & IFBIF_DISCOVER:
                out[other].append(frame)

    @staticmethod
    def _send(out):
        """One batch per member: one lock and one wake-up on each medium."""
        for port, frames in out.items():
            port.send(frames)

    # -- what brconfig shows ---------------------------------------------------------------

    def describe_bridge(self, now):
        return {
            "name": self.ifp.name,
            "flags": self.ifp.flags,
            "members": [{"name": p.ifp.name, "flags": p.flags, "port": p.number, "priority": BSTP_PORT_PRIORITY}
                        for p in self.ports.values()],
            "maxaddr": self.maxaddr,
            "timeout": self.timeout,
            "addresses": [{"mac": mac.hex(":"), "member": entry.port.ifp.name,
                           "expire": 0 if entry.expire == math.inf else max(int(entry.expire - now), 0),
                           "flags": IFBAF_DYNAMIC}
                          for mac, entry in self.table.items()],
        }


def parse_mac(text):
    """"b2:a0:1:2:3:4" (as ether_aton takes it) -> 6 bytes; ValueError otherwise."""
    parts = text.split(":")
    if len(parts) != 6 or not all(1 <= len(p) <= 2 and all(c in "0123456789abcdefABCDEF" for c in p)
                                  for p in parts):
        raise ValueError(f"{text!r} is not an Ethernet address (six hexadecimal bytes, b2:a0:00:00:00:01)")
    return bytes(int(p, 16) for p in parts)


register_driver(BridgeDriver)
