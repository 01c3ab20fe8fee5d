"""Network interfaces: what every link layer shares (BSD's struct ifnet), and the driver contract.

An `Interface` is the stack's view of a link: name, hardware address, flags,
addresses, counters and the checksum offloads it emulates. What carries its
frames is a `Driver` (shmif today; virt and xennet are drivers of the same
shape). Between the two sit optional layers, each a pair of frame filters
(a pcap tap, a fault injector), composed from the stack down to the wire:

    stack --output()--> interface --layers--> driver.transmit(frames)
    stack <--ether_input-- interface <--layers-- driver calls input(frames)

Frames move in batches both ways: a driver hands every frame one wake-up
brought in as one list, and output made while a batch runs through the stack
(or inside `burst()`) goes down as one list too, so a driver takes its lock
and wakes its peers once per batch.
"""

from dataclasses import dataclass
import errno
import ipaddress
import os

from . import offload
from ..kern import numbers

IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_RUNNING = 0x40
IFF_PROMISC = 0x100
IFF_SIMPLEX = 0x800
IFF_MULTICAST = 0x8000
IFF_NAMES = [(IFF_UP, "UP"), (IFF_BROADCAST, "BROADCAST"), (IFF_RUNNING, "RUNNING"), (IFF_PROMISC, "PROMISC"),
             (IFF_SIMPLEX, "SIMPLEX"), (IFF_MULTICAST, "MULTICAST")]

ETHERMTU = 1500
BROADCAST_MAC = b"\xff" * 6
OUTPUT_BATCH = 256  # frames output gathers in a burst before it hands them down anyway

# An interface's name is its driver's and a unit number: shmif0, later virt3,
# xennet0 or xvif1i0 (a driver's own pattern may hold several units). A unit
# is plain decimal without leading zeros, so that one interface has one name.
IFNAMSIZ = 16  # a name and its NUL, as in BSD's net/if.h
MAX_UNIT = 9999
UNIT = r"(?:0|[1-9][0-9]{0,3})"


class InterfaceError(Exception):
    """A request an interface refuses; carries the errno a BSD kernel would return."""

    def __init__(self, errno_value, message):
        super().__init__(message)
        self.errno = errno_value


@dataclass
class InterfaceAddress:
    address: ipaddress.IPv4Address
    network: ipaddress.IPv4Network

    @property
    def broadcast(self):
        return self.network.broadcast_address

    @property
    def packed(self):
        return self.address.packed


@dataclass
class LinkCounters:
    ipackets: int = 0
    ibytes: int = 0
    imcasts: int = 0
    ierrors: int = 0
    iqdrops: int = 0
    opackets: int = 0
    obytes: int = 0
    omcasts: int = 0
    oerrors: int = 0

    def count_output(self, frames):
        """What a driver counts for frames it put on its medium."""
        for frame in frames:
            self.opackets += 1
            self.obytes += len(frame)
            if frame[0] & 1:
                self.omcasts += 1


# Frames a driver holds while its medium cannot take them (bus lock busy, ring full), as Linux's
# txqueuelen: 1000 absorbs a peer holding the bus lock for 4 ms while 240,000 frames a second are sent
# (with 256, a paced sender lost up to 2 % of its datagrams to this queue whenever the receiver was
# held up while it had the lock).
SEND_QUEUE = 1000


class Driver:
    """The contract every link driver fills in (BSD's if_init/if_start/if_stop, smoltcp's Device).

    The registry (if_clone.py) makes one with the interface it serves; the
    node then calls, in this order:

        attach(linkstr)         connect to the medium (`ifconfig NAME linkstr ...`)
        start(nursery, input)   start receiving: call input(frames) with each batch read (a list
                                of bytes, which the stack may keep: a datagram's data is a slice),
                                from a task of the nursery, which the driver owns until stop()
        transmit(frames)        send a batch: one lock and one wake-up for all of it
        stop()                  stop receiving and sending; drop (and count) what is queued
        detach()                leave the medium (`destroy`, or the node halting)

    and reads what it reports: `mac` (b2:a0 and four random bytes unless the
    driver picks another), `mtu`, `capabilities` (the IFCAP_* bits
    it can emulate), `linkstr()` (None until attached), `needs_linkstr` (an
    address must wait for attach), `link_state` ("up" or "down" once a driver
    that knows its carrier has looked; None for a medium without one), and `stats`, its own event counters by
    name, which netstat -s shows in a block named after its kind when
    counters.py describes them. Link counters (ifconfig's) are `ifp.counters`.
    """

    kind = None  # the registry's name for it: "shmif"
    needs_linkstr = False
    capabilities = 0
    mtu = ETHERMTU
    link_state = None

    def __init__(self, ifp):
        self.ifp = ifp
        self.mac = b"\xb2\xa0" + os.urandom(4)
        self.stats = {}

    def linkstr(self):
        return None

    def attach(self, linkstr):
        raise InterfaceError(errno.EINVAL, f"{self.ifp.name}: {self.kind} takes no linkstr")

    def start(self, nursery, input):
        raise NotImplementedError

    def transmit(self, frames):
        raise NotImplementedError

    def stop(self):
        pass

    def detach(self):
        self.stop()

    # -- a send queue, for a driver whose medium cannot always take a batch at once ----------

    def hold(self, frames):
        """Add frames to the driver's send queue (`self._queue`), at most SEND_QUEUE in it; the rest
        are dropped and counted, as an ifq that is full drops."""
        room = SEND_QUEUE - len(self._queue)
        if len(frames) > room:
            self.drop(len(frames) - room)
            frames = frames[:room]
        self._queue.extend(frames)

    def drop_queue(self):
        """Drop (and count) what waits in the send queue: the driver stopped."""
        self.drop(len(self._queue))
        self._queue = []

    def drop(self, count):
        """Count frames the driver could not send: its send_dropped (netstat -s) and the link's output errors."""
        self.stats["send_dropped"] += count
        self.ifp.counters.oerrors += count


class Interface:
    """Driver-independent state of one interface, and the path of its frames through its layers."""

    def __init__(self, name, driver_class):
        self.name = name
        self.flags = IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST
        self.addresses = []
        self.counters = LinkCounters()
        self.capenable = 0
        self.layers = ()  # wrappers, from the stack down to the driver
        self.driver = driver_class(self)
        self.mac = self.driver.mac
        self.mtu = self.driver.mtu
        self.capabilities = self.driver.capabilities
        self._input = None
        self._bursts = 0
        self._burst = OutputHold((self,))
        self._outq = []

    @property
    def kind(self):
        return self.driver.kind

    @property
    def flags(self):
        return self._flags

    @flags.setter
    def flags(self, value):
        """Set the IFF_ flags; `up` and `running` are kept as plain attributes, read for every packet."""
        self._flags = value
        self.up = bool(value & IFF_UP)
        self.running = bool(value & IFF_RUNNING)

    def primary(self):
        return self.addresses[0] if self.addresses else None

    def owns(self, packed):
        return any(a.packed == packed for a in self.addresses)

    def linkstr(self):
        return self.driver.linkstr()

    # -- starting and stopping ------------------------------------------------------

    def start(self, nursery, if_input):
        """Start the driver; every batch it reads goes up through the layers to if_input(ifp, frames)."""
        if self.running:
            return
        self._input = if_input
        self.driver.start(nursery, self._receive)
        if self.driver.link_state != "down":  # no carrier: the driver sets RUNNING when it comes
            self.flags |= IFF_RUNNING

    def stop(self):
        self.flags &= ~IFF_RUNNING
        self.counters.oerrors += len(self._outq)  # a burst cut short: dropped, and counted as the driver counts
        self._outq = []
        self.driver.stop()

    def detach(self):
        self.flags &= ~IFF_RUNNING
        for layer in self.layers:
            layer.close()
        self.layers = ()
        self.driver.detach()

    def set_layer(self, kind, layer):
        """Put layer in the place of the layer of that kind (None removes it); pcap is nearest the wire."""
        old = [other for other in self.layers if isinstance(other, kind)]
        for other in old:
            other.close()
        kept = [other for other in self.layers if not isinstance(other, kind)]
        if layer is not None:
            kept.append(layer)
        self.layers = tuple(sorted(kept, key=lambda other: other.depth))

    # -- input ---------------------------------------------------------------------------

    def _receive(self, frames):
        """A driver's batch: up through the layers, from the wire's side."""
        self._up(self.layers[::-1], frames)

    def _up(self, layers, frames):
        if layers:
            layers[0].input(frames, lambda passed: self._up(layers[1:], passed))
            return
        if not self.running:
            return
        with self.burst():
            self._input(self, frames)

    def deliver(self, frames):
        """Frames for this interface's stack, handed over above every layer (a bridge's, from a sibling member)."""
        self._up((), frames)

    # -- output --------------------------------------------------------------------------

    def output(self, frame, csum_flags=0):
        """One frame from the stack, with the sums it left to us (TX offload, emulated here for any
        driver): sent at once, or with the others at the end of the burst."""
        if not self.running:
            self.counters.oerrors += 1
            raise InterfaceError(errno.ENETDOWN, f"{self.name} is down")
        if csum_flags & offload.M_CSUM_TSOv4:
            self._outq.extend(offload.tso_segments(frame, csum_flags))  # every sum is the cutting's
        else:
            self._outq.append(offload.finish_tx(frame, csum_flags) if csum_flags else frame)
        if not self._bursts or len(self._outq) >= OUTPUT_BATCH:
            self._flush()

    def burst(self):
        """Output inside `with ifp.burst():` goes down as one batch at the end: one lock and one
        wake-up for all of it. Bursts nest; the outermost one's end sends."""
        return self._burst

    def _flush(self):
        frames, self._outq = self._outq, []
        self._down(self.layers, frames)

    def _down(self, layers, frames):
        if layers:
            layers[0].output(frames, lambda passed: self._down(layers[1:], passed))
        elif not self.running:
            self.counters.oerrors += len(frames)  # a layer released them after the interface stopped
        elif frames:
            self.driver.transmit(frames)

    def send_below(self, layer, frames):
        """Frames a layer sends itself (a bridge forwarding): down through the layers under it only."""
        self._down(self.layers[self.layers.index(layer) + 1:], frames)

    def describe(self):
        """A plain dictionary of this interface, for ifconfig and the control socket."""
        info = {
            "name": self.name,
            "kind": self.kind,
            "flags": self.flags,
            "mtu": self.mtu,
            "mac": self.mac.hex(":"),
            "addresses": [{"address": str(a.address), "prefixlen": a.network.prefixlen,
                           "broadcast": str(a.broadcast)} for a in self.addresses],
            "counters": vars(self.counters).copy(),
            "capabilities": self.capabilities,
            "capenable": self.capenable,
            "linkstr": self.linkstr(),
            "link_state": self.driver.link_state,
        }
        for layer in self.layers:
            info.update(layer.describe())
        return info


class OutputHold:
    """`with OutputHold(interfaces):` holds their output to the end of the block, then sends what each
    gathered as one batch (Interface.burst() is one for a single interface). A plain class, as one is
    entered for every received batch and every sendmmsg (contextlib's generator would cost several
    calls more each time)."""

    def __init__(self, interfaces):
        self._interfaces = tuple(interfaces)

    def __enter__(self):
        for ifp in self._interfaces:
            ifp._bursts += 1

    def __exit__(self, *exc):
        for ifp in self._interfaces:
            ifp._bursts -= 1  # every hold ends first, whatever a send below raises
        for ifp in self._interfaces:
            if not ifp._bursts and ifp._outq:
                ifp._flush()


class Layer:
    """A wrapper between an interface and its driver: filters the batches that pass, both ways.

    input(frames, up) and output(frames, down) pass on what they let through,
    now or later, by calling up or down with a list of frames. `depth` orders
    the layers: the larger, the nearer the wire.
    """

    depth = 0

    def input(self, frames, up):
        up(frames)

    def output(self, frames, down):
        down(frames)

    def describe(self):
        return {}

    def close(self):
        pass


def flag_names(flags):
    return ",".join(name for bit, name in IFF_NAMES if flags & bit)


def shown_name(name):
    """An interface name as a message prints it: cut short when longer than any name can be."""
    return name if len(name) < IFNAMSIZ else name[:IFNAMSIZ - 1] + "..."


def parse_address(text):
    """"A.B.C.D" or "A.B.C.D/N" -> (address, N or None); ValueError otherwise.

    N is a prefix length, 0 to 32 in decimal digits: ipaddress would also take
    a mask there, a host mask (0.0.0.255) included.
    """
    address, slash, prefix = text.partition("/")
    return ipaddress.IPv4Address(address), numbers.integer(prefix, 0, 32) if slash else None


def netmask_prefixlen(text):
    """The prefix length of a netmask, dotted (255.255.255.0) or hexadecimal (0xffffff00).

    ValueError unless its bits are ones and then zeros: ipaddress reads
    0.0.0.1 as a host mask, which would make `netmask 0x1` a /31.
    """
    if text[:2].lower() == "0x":
        mask = numbers.integer(text, 0, 0xFFFFFFFF, hexadecimal=True)
    else:
        mask = int(ipaddress.IPv4Address(text))
    hostbits = mask ^ 0xFFFFFFFF
    if hostbits & (hostbits + 1):
        raise ValueError(f"{text}: the ones of a netmask come first")
    return 32 - hostbits.bit_length()
