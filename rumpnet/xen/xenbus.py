"""xenbus: how a node's vif devices follow the XenStore, as NetBSD's xenbus drivers do.

Every node in a Xen sandbox has a domain id. A guest (any domid) runs the
frontends of the vif entries under /local/domain/<domid>/device/vif/; dom0
(domid 0) also runs the backends under /local/domain/0/backend/vif/. The
toolstack (toolstack.py, `rumpnet xl`) makes the entries; the two ends then
walk XenbusState through their `state` keys:

    toolstack   backend and frontend entries, both Initialising (1)
    frontend    makes xennetY                             -> Initialising (1)
    backend     reads the mac, makes xvifXiY              -> InitWait (2)
    frontend    seeing InitWait: the ring file, the FIFOs;
                writes tx-ring-ref, rx-ring-ref, event-channel -> Initialised (3)
    backend     maps the rings, opens the event channel    -> Connected (4)
    frontend    opens its end of the event channel         -> Connected (4)
    toolstack   detach: backend Closing (5)
    frontend    destroys xennetY                           -> Closed (6)
    backend     destroys xvifXiY                           -> Closed (6); the toolstack removes the entries

A guest whose node ends closes its end of the event channel; the backend
sees it, destroys the xvif and goes Closed, and connects again when a new
frontend initialises the same entry. A new frontend always starts in
Initialising and offers its rings only when the backend says InitWait
(Linux's netfront does the same): a guest restarted before dom0 noticed
finds the old guest's Connected in the store, which it does not take as an
answer (an InitWait left from the old guest is harmless: the new guest
removes the old one's ring files first). The backend, seeing its frontend back in Initialising (or offering
another event channel), destroys the xvif and makes it again. A corrupt
ring takes the link down (the interface stays, down) and the side that saw
it goes Closed.

The service is level-triggered: any change under /local/domain (or a
driver's news) wakes one task, which compares what the store says with the
devices it has and does what is missing. Writing a key that already holds
the value is skipped, so its own writes settle.
"""

import errno
import fcntl
import logging
import os
import re

import trio

from ..net import xenring
from ..net.ifnet import InterfaceError
from ..net.if_xennet import XenNetDriver
from ..net.if_xvif import XvifDriver
from .store import StoreError, XenStore, join

INITIALISING, INIT_WAIT, INITIALISED, CONNECTED, CLOSING, CLOSED = 1, 2, 3, 4, 5, 6
STATE_NAMES = {1: "Initialising", 2: "InitWait", 3: "Initialised", 4: "Connected", 5: "Closing", 6: "Closed"}
MAX_DEVICES = 64  # vif entries one node serves at most
MAX_HANDLE = 9999  # as an interface unit
MAX_DOMID = 9999  # a guest's domid is an interface unit too (xvif<domid>i<handle>); Xen's own limit is 32751
_MAC = re.compile(r"[0-9a-fA-F]{1,2}(?::[0-9a-fA-F]{1,2}){5}")


log = logging.getLogger(__name__)  # the node's log: its faults at WARNING, news such as a new address at INFO


def parse_mac(text):
    """"00:16:3e:12:34:56" as 6 bytes; None when it is not a MAC address."""
    if text is None or not _MAC.fullmatch(text.strip()):
        return None
    return bytes(int(part, 16) for part in text.strip().split(":"))


def backend_mac(mac):
    """xennetback's `enaddr[3]++`: the guest's MAC with byte 3 one higher, 0xff wrapping to 0, no carry."""
    return mac[:3] + bytes([(mac[3] + 1) & 0xFF]) + mac[4:]


def frontend_path(domid, handle):
    return f"/local/domain/{domid}/device/vif/{handle}"


def backend_path(domid, handle):
    return f"/local/domain/0/backend/vif/{domid}/{handle}"


def grant_dir(root, domid, channel):
    """Where the frontend of domain domid keeps the ring file and FIFOs of event channel `channel`."""
    return os.path.join(root, ".grant", str(domid), str(channel))


def number(text, high=MAX_HANDLE):
    """A key's decimal value from 0 to high, else None (whatever another process wrote there)."""
    if text is None or not re.fullmatch(r"0|[1-9][0-9]{0,9}", text.strip()):
        return None
    value = int(text)
    return value if value <= high else None


class Device:
    """One end of one vif in this node: its interface, its state, its grant."""

    def __init__(self, name, path):
        self.name = name
        self.path = path
        self.state = INITIALISING
        self.channel = None  # the event channel number this device was set up with
        self.grant = None  # the frontend's: the directory of its ring file and FIFOs
        self.ring_file = None
        self.events = None
        self.down = False  # the link went down (peer gone or a corrupt ring)

    def close(self):
        if self.events is not None:
            self.events.close()
        if self.ring_file is not None:
            self.ring_file.close()
        if self.grant is not None:
            _remove_grant(self.grant)


class XenBus:
    """The node's xenbus: its frontends, and if it is dom0 its backends."""

    def __init__(self, node, store, domid):
        self.node = node
        self.store = store
        self.domid = domid
        self.fronts = {}  # handle -> Device
        self.backs = {}  # (domid, handle) -> Device
        self.refused = {}  # device path -> the mac value refused, so that it is told once
        self._wake = trio.Event()

    async def run(self):
        """Watch /local/domain and settle the devices after every change, until cancelled."""
        with self.store.watch("/local/domain") as watch:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch, watch)
                while True:
                    await self._wake.wait()
                    self._wake = trio.Event()
                    try:
                        self.settle()
                    except (OSError, InterfaceError) as e:  # told, and tried again on the next change
                        log.warning(f"xenbus: {e.strerror if isinstance(e, OSError) else e}")

    async def _watch(self, watch):
        while True:
            await watch.changes()
            self._wake.set()

    def close(self):
        for device in list(self.fronts.values()) + list(self.backs.values()):
            device.close()

    def settle(self):
        """One pass over the store: frontends first, then (dom0) backends."""
        home = f"/local/domain/{self.domid}/device/vif"
        handles = self._children(home)
        for handle in set(handles) | set(self.fronts):
            self._settle_front(handle)
        if self.domid == 0:
            pairs = set(self.backs)
            for guest in self._children("/local/domain/0/backend/vif"):
                pairs |= {(guest, h) for h in self._children(f"/local/domain/0/backend/vif/{guest}")}
            for guest, handle in sorted(pairs)[:MAX_DEVICES]:
                self._settle_back(guest, handle)

    def _children(self, path):
        try:
            names = self.store.ls(path)
        except StoreError:
            return []
        found = [value for value in map(number, names) if value is not None]
        return sorted(found)[:MAX_DEVICES]

    def _state(self, path):
        return number(self.store.get(join(path, "state")), CLOSED)

    def _set_state(self, device, state):
        device.state = state
        try:
            if self.store.get(join(device.path, "state")) != str(state):
                self.store.write(join(device.path, "state"), str(state))
        except StoreError as e:
            log.warning(f"{device.name}: cannot write {device.path}/state: {e.strerror}")

    def _down(self, device):
        """The callback a driver calls when its link went down."""
        def down(reason):
            device.down = True
            self._wake.set()
        return down

    def _read_mac(self, name, path):
        """The mac key of a device's entry, or None after the diagnostic (told once per value)."""
        try:
            text = self.store.read(join(path, "mac"))
        except StoreError as e:
            text, problem = None, f"{name}: can't read {path}/mac: {e.errno}"
        else:
            problem = f"{name}: {text} is not a valid mac address"
        mac = parse_mac(text)
        if mac is None:
            if path not in self.refused or self.refused[path] != text:
                self.refused[path] = text
                log.warning(problem)
            return None
        self.refused.pop(path, None)
        return mac

    def _destroy(self, device):
        if device.name in self.node.interfaces:
            self.node.destroy_interface(device.name)
        device.close()

    # -- the frontend -------------------------------------------------------------------

    def _gone(self, device, devices, key):
        """Whether a device's interface was destroyed by hand (ifconfig destroy): then it is Closed."""
        if device is None or device.name in self.node.interfaces:
            return False
        device.close()
        del devices[key]
        self._set_state(device, CLOSED)
        return True

    def _settle_front(self, handle):
        path = frontend_path(self.domid, handle)
        device = self.fronts.get(handle)
        if self._gone(device, self.fronts, handle):
            return
        exists = self.store.is_dir(path)
        backend = self.store.get(join(path, "backend"))
        bstate = self._state(backend) if backend and backend.startswith("/") else None
        if device is None:
            # xl writes the entry's state last: before it, the entry is half made (no mac yet), and a
            # guest that went Initialised then would have it overwritten with xl's Initialising.
            complete = self.store.get(join(path, "state")) is not None
            if exists and complete and bstate != CLOSING and len(self.fronts) < MAX_DEVICES:
                self._probe_front(handle, path)
            device = self.fronts.get(handle)
            if device is None:
                return
            # a backend already in InitWait is answered below: its state will not change again to wake us
        if not exists or bstate == CLOSING:
            if exists:  # before the interface goes: its link going down lets the backend close, then xl
                self._set_state(device, CLOSING)  # removes this entry, which a later write would make again
                self._set_state(device, CLOSED)
            self._destroy(device)
            del self.fronts[handle]
            return
        if device.down or bstate == CLOSED and device.state == CONNECTED:
            if device.state != CLOSED:
                self._stop(device)
                self._set_state(device, CLOSED)
            return
        if device.state == INITIALISING and bstate == INIT_WAIT:
            self._init_front(device)
        elif device.state == INITIALISED and bstate == CONNECTED:
            try:
                device.events.connect(os.path.join(grant_dir(self.store.root, self.domid, device.channel), "to-back"))
            except OSError as e:
                log.warning(f"{device.name}: cannot open the backend's event channel: {e.strerror}")
                self._set_state(device, CLOSED)
                return
            driver = self.node.interfaces[device.name].driver
            driver.connect(self.node.nursery, device.ring_file, device.events, self._down(device))
            self._set_state(device, CONNECTED)

    def _stop(self, device):
        ifp = self.node.interfaces.get(device.name)
        if ifp is not None:
            self.node.set_up(device.name, False)

    def _probe_front(self, handle, path):
        name = f"xennet{handle}"
        mac = self._read_mac(name, path)
        if mac is None:
            return
        old = number(self.store.get(join(path, "event-channel")), 2**31)
        if old is not None:  # a grant this domain made before it was restarted
            _remove_grant(grant_dir(self.store.root, self.domid, old))
        device = Device(name, path)
        ifp = self.node.create_interface(name, XenNetDriver)
        ifp.mac = ifp.driver.mac = mac
        self.fronts[handle] = device
        # A backend Connected now answered an older frontend; an old InitWait is harmless, since the
        # old grant is gone: the backend can connect only to the rings this frontend will offer.
        self._set_state(device, INITIALISING)

    def _init_front(self, device):
        """The backend answered our Initialising: offer it a fresh ring file and event channel."""
        try:
            device.channel, device.ring_file, device.events = _make_grant(self.store.root, self.domid)
        except OSError as e:  # tried again on the next change
            log.warning(f"{device.name}: cannot make the ring file: {e.strerror}")
            return
        device.grant = grant_dir(self.store.root, self.domid, device.channel)
        self.store.write(join(device.path, "tx-ring-ref"), str(2 * device.channel))
        self.store.write(join(device.path, "rx-ring-ref"), str(2 * device.channel + 1))
        self.store.write(join(device.path, "event-channel"), str(device.channel))
        self._set_state(device, INITIALISED)

    # -- the backend (dom0) --------------------------------------------------------------

    def _settle_back(self, guest, handle):
        path = backend_path(guest, handle)
        device = self.backs.get((guest, handle))
        if self._gone(device, self.backs, (guest, handle)):
            return
        bstate = self._state(path)
        front = self.store.get(join(path, "frontend"))
        fstate = self._state(front) if front and front.startswith("/") else None
        channel = number(self.store.get(join(front, "event-channel")), 2**31) if fstate else None
        if device is not None:
            driver = self.node.interfaces[device.name].driver if device.name in self.node.interfaces else None
            new_frontend = device.state != INIT_WAIT and (
                fstate == INITIALISING or fstate == INITIALISED and channel != device.channel)
            peer_gone = device.down and driver is not None and driver.down == "peer gone"
            closing = bstate == CLOSING and (fstate in (CLOSED, None) or device.state != CONNECTED)
            if bstate is None or peer_gone or new_frontend or closing:
                self._destroy(device)
                del self.backs[guest, handle]
                if bstate is not None:
                    self._set_state(device, CLOSED)
                if bstate is None or closing:
                    return
            elif device.state == CONNECTED and (device.down or fstate == CLOSED):
                self._stop(device)  # a corrupt ring, here or at the frontend: the interface stays, down
                self._set_state(device, CLOSED)
                return
            elif device.state == INIT_WAIT and fstate == INITIALISED:
                self._connect_back(device, guest, front, channel)
                return
            else:
                return
            bstate = self._state(path)
        online = self.store.get(join(path, "online")) == "1"  # xl clears it when it detaches
        if bstate == INITIALISING or bstate == CLOSED and online and fstate in (INITIALISING, INITIALISED):
            if len(self.backs) < MAX_DEVICES:
                self._probe_back(guest, handle, path)
        elif bstate == CLOSING:  # detached before it had an interface (a bad mac): nothing to close
            self._set_state(Device(f"xvif{guest}i{handle}", path), CLOSED)

    def _probe_back(self, guest, handle, path):
        """xennetback_xenbus_create: the interface, its MAC from the entry's mac key; then InitWait."""
        name = f"xvif{guest}i{handle}"
        mac = self._read_mac(name, path)
        if mac is None:
            return
        if name in self.node.interfaces:
            self.node.destroy_interface(name)  # a link left down by a corrupt ring
        mac = backend_mac(mac)
        log.info(f"{name}: Ethernet address {mac.hex(':')}")
        ifp = self.node.create_interface(name, XvifDriver)
        ifp.mac = ifp.driver.mac = mac
        device = Device(name, path)
        self.backs[guest, handle] = device
        self._set_state(device, INIT_WAIT)

    def _connect_back(self, device, guest, front, channel):
        """Map the frontend's rings and open the event channel; Connected, or Closed with the reason.

        The channel is noted first: a frontend refused is tried again only
        once it offers another one (a restarted guest), not on every change.
        """
        device.channel = channel
        tx = number(self.store.get(join(front, "tx-ring-ref")), 2**32)
        rx = number(self.store.get(join(front, "rx-ring-ref")), 2**32)
        if channel is None or tx != 2 * channel or rx != 2 * channel + 1:
            return self._refuse(device, f"{front}: tx-ring-ref, rx-ring-ref and event-channel do not name one "
                                        "ring pair (2N, 2N+1 and N)")
        where = grant_dir(self.store.root, guest, channel)
        try:
            device.ring_file = xenring.RingFile.open(os.path.join(where, "ring"))
            device.events = xenring.EventChannel(os.path.join(where, "to-back"))
            device.events.connect(os.path.join(where, "to-front"))
        except xenring.RingError as e:
            return self._refuse(device, str(e))
        except OSError as e:
            return self._refuse(device, f"{where}: cannot open the event channel: {e.strerror}")
        driver = self.node.interfaces[device.name].driver
        driver.connect(self.node.nursery, device.ring_file, device.events, self._down(device))
        self._set_state(device, CONNECTED)

    def _refuse(self, device, reason):
        log.warning(f"{device.name}: {reason}; link down")
        device.close()
        device.ring_file = device.events = None
        self._stop(device)
        self._set_state(device, CLOSED)


def _make_grant(root, domid):
    """A fresh ring file and event channel for a frontend: (channel number, RingFile, EventChannel)."""
    base = os.path.join(root, ".grant", str(domid))
    os.makedirs(base, mode=0o755, exist_ok=True)
    for _ in range(100):
        channel = int.from_bytes(os.urandom(2), "big")
        where = os.path.join(base, str(channel))
        try:
            os.mkdir(where, 0o755)
            break
        except FileExistsError:
            continue
    else:
        raise OSError(errno.ENOSPC, "no free event channel")
    os.mkfifo(os.path.join(where, "to-front"), 0o600)
    os.mkfifo(os.path.join(where, "to-back"), 0o600)
    ring_file = xenring.RingFile.create(os.path.join(where, "ring"))
    ring_file.ring(xenring.TX).reset()
    ring_file.ring(xenring.RX).reset()
    return channel, ring_file, xenring.EventChannel(os.path.join(where, "to-front"))


def _remove_grant(where):
    for name in ("ring", "to-front", "to-back"):
        try:
            os.unlink(os.path.join(where, name))
        except OSError:
            pass
    try:
        os.rmdir(where)
    except OSError:
        pass


async def serve(node, root, *, task_status=trio.TASK_STATUS_IGNORED):
    """Run node's xenbus on the store at root until cancelled; StoreError before it starts if it cannot.

    A domain has one node: a lock file per domid says whether it has one.
    """
    store = XenStore(root)
    store.ensure()
    lock = os.open(os.path.join(store.root, f".domain-{node.domid}.lock"),
                   os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(errno.EBUSY, f"domain {node.domid} already has a node in the XenStore "
                                          f"{store.root}") from None
        store.write(f"/local/domain/{node.domid}/domid", str(node.domid))
        bus = XenBus(node, store, node.domid)
        task_status.started(bus)
        try:
            await bus.run()
        finally:
            bus.close()
    finally:
        os.close(lock)
