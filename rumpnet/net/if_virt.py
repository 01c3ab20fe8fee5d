"""virt(4): an Ethernet interface whose wire is a host tap device.

Interface virtN is tied to the host's tap device tapN (or the tap its
linkstr names): every frame the node sends is written to the tap, every
frame read from it is Ethernet input. The tap is opened with python-pytun
(IFF_TAP | IFF_NO_PI: bare Ethernet frames) and read without blocking from
the node's trio loop, a batch per wake-up, as shmif reads its bus.

The host's side of the tap is the host administrator's: the node never
brings it up or addresses it (an unprivileged user may not, and should not
need to). The link state follows it, as a NIC's follows its cable: while
the host's side is down the tap refuses writes (EIO) and polls not writable,
so the interface has no carrier (not RUNNING: output is dropped and counted);
the tap wakes its writers when the host's side comes up again. Going down
wakes nobody, so the driver looks (poll, never blocking) every LINK_POLL
seconds, and at once when a write fails. This works wherever the host's
side is, in another network namespace too, where neither sysfs nor netlink
would show it. A tap that goes away (its device deleted, its namespace
removed) fails every read: the interface is taken down alone, with a
message, and the node's other interfaces go on.

Whoever holds the host side of the tap writes what it likes: runts and
giant frames are dropped and counted here, the rest is the stack's to check.
"""

from collections import defaultdict
import errno
import logging
import os
import pwd
import select

import pytun
import trio

from .if_clone import register_driver
from .ifnet import ETHERMTU, IFF_RUNNING, Driver, InterfaceError

BATCH = 64  # frames read before they go up the stack and other tasks run
MIN_FRAME = 14  # an Ethernet header
READ_SIZE = 65536  # more than any frame a tap hands out, so a giant one is read whole and counted
GONE = (errno.EBADFD, errno.ENODEV, errno.EIO, errno.ENXIO)  # read errors of a tap that no longer exists
LINK_POLL = 1.0  # seconds between looks at a host side that is up: its going down wakes nobody


log = logging.getLogger(__name__)  # the node's log: its faults at WARNING, news at INFO


def open_tap(ifname, tap):
    """Open tap with python-pytun; InterfaceError naming the device and the fix when it cannot be."""
    try:
        device = pytun.TunTapDevice(name=tap, flags=pytun.IFF_TAP | pytun.IFF_NO_PI)
    except pytun.Error as e:
        code = e.args[0] if e.args and isinstance(e.args[0], int) else errno.EIO
        if code == errno.EACCES:
            what, fix = "/dev/net/tun", " (as root: chmod 0666 /dev/net/tun)"
        elif code == errno.ENOENT:
            what, fix = "/dev/net/tun", " (as root: modprobe tun)"
        elif code == errno.EPERM:
            what, fix = tap, f" (no such tap for this user; as root: ip tuntap add {tap} mode tap user {_user()})"
        elif code == errno.EBUSY:
            what, fix = tap, " (another process has it open)"
        else:
            what, fix = tap, ""
        raise InterfaceError(code, f"{ifname}: cannot open {what}: {os.strerror(code)}{fix}") from None
    try:
        mtu = device.mtu  # SIOCGIFMTU: the host's setting for its side of the wire
    except pytun.Error:
        mtu = ETHERMTU
    os.set_blocking(device.fileno(), False)
    return device, mtu


def _user():
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


class VirtDriver(Driver):
    """The virt(4) driver: a host tap as the medium; the linkstr is the tap's name (tapN by default)."""

    kind = "virt"

    def __init__(self, ifp):
        super().__init__(ifp)
        self.name = ifp.name
        self.tap = "tap" + ifp.name[len(self.kind):]
        self.device = None
        self.stats = defaultdict(int)
        self.link_state = None
        self._scopes = ()  # the receive loop's and the link watch's, while the interface is up

    def linkstr(self):
        return self.tap if self.device is not None else None

    def attach(self, tap):
        """Use the tap named tap instead of tapN (ifconfig linkstr), opened now so errors show at once."""
        if self.ifp.up:
            raise InterfaceError(errno.EBUSY, f"{self.name}: linkstr cannot change while the interface is up")
        if not tap or "/" in tap or len(tap) >= 16:
            raise InterfaceError(errno.EINVAL, f"{self.name}: linkstr {tap!r} is not a tap's name (tap0)")
        self._open(tap)

    def _open(self, tap):
        device, mtu = open_tap(self.name, tap)
        self._close()
        self.device, self.tap = device, tap
        self.mtu = self.ifp.mtu = mtu

    def _close(self):
        if self.device is not None:
            trio.lowlevel.notify_closing(self.device.fileno())
            self.device.close()
            self.device = None
            self.link_state = None

    def detach(self):
        self.stop()
        self._close()

    # -- running -------------------------------------------------------------

    def start(self, nursery, input):
        """Open tapN if no linkstr named a tap (NetBSD's virtif_init), and read it."""
        if self._scopes:
            return  # up already, waiting for its carrier
        if self.device is None:
            self._open(self.tap)
        self._scopes = (trio.CancelScope(), trio.CancelScope())
        nursery.start_soon(self._receive_loop, input, self.device, self._scopes[0])
        nursery.start_soon(self._watch_link, self.device.fileno(), self._scopes[1])

    def stop(self):
        for scope in self._scopes:
            scope.cancel()
        self._scopes = ()
        self.link_state = None

    async def _receive_loop(self, input, device, scope):
        """Wait for the tap to be readable, read what is there (a batch at most), hand it up."""
        fd = device.fileno()
        with scope:
            while True:
                await trio.lowlevel.wait_readable(fd)
                frames = []
                while len(frames) < BATCH:
                    try:
                        frame = os.read(fd, READ_SIZE)
                    except BlockingIOError:
                        break
                    except OSError as e:
                        if frames:
                            input(frames)
                        self._gone(e)
                        return
                    if self._sane(frame):
                        frames.append(frame)
                if frames:
                    input(frames)
                await trio.lowlevel.checkpoint()

    async def _watch_link(self, fd, scope):
        """Follow the host's side of the tap: writable while it is up (see the module's docstring)."""
        events = select.poll()
        events.register(fd, select.POLLOUT)
        with scope:
            while True:
                ready = events.poll(0)
                mask = ready[0][1] if ready else 0
                if mask & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                    return  # the tap is gone: the receive loop's read says so
                self._link(bool(mask & select.POLLOUT))
                if mask & select.POLLOUT:
                    await trio.sleep(LINK_POLL)
                else:
                    await trio.lowlevel.wait_writable(fd)

    def _link(self, up):
        """The host's side went up or down: RUNNING and the status line follow, with a log line."""
        state = "up" if up else "down"
        if state == self.link_state:
            return
        if self.link_state or not up:  # a first look that finds the carrier is no news
            log.info(f"{self.name}: link state {state.upper()} (was {(self.link_state or 'unknown').upper()}): "
                f"the host's side of {self.tap} is {state}")
        self.link_state = state
        if up:
            self.ifp.flags |= IFF_RUNNING
        else:
            self.ifp.flags &= ~IFF_RUNNING

    def _sane(self, frame):
        if len(frame) < MIN_FRAME:
            self.stats["runt"] += 1
            self.ifp.counters.ierrors += 1
            return False
        if len(frame) > self.mtu + MIN_FRAME:
            self.stats["oversized"] += 1
            self.ifp.counters.ierrors += 1
            return False
        return True

    def _gone(self, error):
        """The tap failed a read: this interface goes down (not RUNNING), the node goes on."""
        log.warning(f"{self.name}: {self.tap}: {error.strerror}; the tap is gone, {self.name} is down "
                    f"(ifconfig {self.name} down up reopens it)")
        self.stats["tap_gone"] += 1
        self.stop()
        self._close()
        self.ifp.flags &= ~IFF_RUNNING

    # -- output ----------------------------------------------------------------

    def transmit(self, frames):
        """Write each frame to the tap; a tap whose host side is down refuses them (EIO): counted, no carrier."""
        if self.device is None:
            self.drop(len(frames))
            return
        fd = self.device.fileno()
        sent = []
        for frame in frames:
            try:
                os.write(fd, frame)
            except BlockingIOError:
                self.drop(1)
            except OSError:
                self.stats["host_side_down"] += 1
                self.ifp.counters.oerrors += 1
                self._link(False)
            else:
                sent.append(frame)
        self.ifp.counters.count_output(sent)


register_driver(VirtDriver)
