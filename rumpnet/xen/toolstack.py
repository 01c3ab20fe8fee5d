"""The toolstack's part (xl network-attach, network-detach): vif entries made and taken away.

xl does not talk to the drivers: it writes the backend's and the
frontend's entries, both Initialising, and the two nodes' xenbus services
do the rest (xenbus.py). Detaching asks the backend to close (Closing),
waits until it is Closed, then removes both entries.
"""

import errno
import os

import trio

from .store import StoreError, XenStore, join
from .xenbus import CLOSED, CLOSING, INITIALISING, MAX_DOMID, MAX_HANDLE, backend_path, frontend_path

XEN_OUI = "00:16:3e"  # the prefix xl gives the MAC addresses it makes up
DETACH_WAIT = 10.0  # seconds network-detach waits for the backend to close


def random_mac():
    """xl's made-up address: Xen's OUI and three random bytes, the first of them below 0x80."""
    tail = bytearray(os.urandom(3))
    tail[0] &= 0x7F
    return f"{XEN_OUI}:{tail.hex(':')}"


def _check_domid(domid):
    if not 0 < domid <= MAX_DOMID:
        raise StoreError(errno.EINVAL, f"{domid}: a guest's domid is from 1 to {MAX_DOMID} (0 is dom0)")


def network_attach(root, domid, mac=None, handle=None):
    """Give guest domid a vif (xl network-attach); returns (handle, mac).

    mac is written as given: the backend is the one that checks it (and
    reports a bad one as xvif(4) says). handle defaults to the lowest free.
    Each entry's state is written last: the nodes act on an entry only once
    it has one, so they never see it half made.
    """
    store = XenStore(root)
    store.ensure()
    _check_domid(domid)
    devices = f"/local/domain/{domid}/device/vif"
    used = set(store.ls(devices)) if store.is_dir(devices) else set()
    if handle is None:
        handle = next(h for h in range(MAX_HANDLE + 1) if str(h) not in used)
    elif not 0 <= handle <= MAX_HANDLE:
        raise StoreError(errno.EINVAL, f"{handle}: a vif handle is from 0 to {MAX_HANDLE}")
    elif str(handle) in used or store.is_dir(backend_path(domid, handle)):
        raise StoreError(errno.EEXIST, f"domain {domid} already has vif {handle}")
    mac = random_mac() if mac is None else mac
    front, back = frontend_path(domid, handle), backend_path(domid, handle)
    for key, value in (("frontend", front), ("frontend-id", domid), ("mac", mac), ("handle", handle),
                       ("online", 1), ("state", INITIALISING)):
        store.write(join(back, key), str(value))
    for key, value in (("backend", back), ("backend-id", 0), ("mac", mac), ("handle", handle),
                       ("state", INITIALISING)):
        store.write(join(front, key), str(value))
    return handle, mac


async def network_detach(root, domid, handle, wait=DETACH_WAIT):
    """Take guest domid's vif away (xl network-detach): Closing, wait for Closed, remove both entries.

    Returns whether the backend closed in time (the entries go either way).
    """
    store = XenStore(root)
    _check_domid(domid)
    front, back = frontend_path(domid, handle), backend_path(domid, handle)
    if not store.is_dir(back) and not store.is_dir(front):
        raise StoreError(errno.ENOENT, f"domain {domid} has no vif {handle}")
    closed = store.get(join(back, "state")) in (str(CLOSED), None)
    if not closed:
        store.write(join(back, "online"), "0")
        store.write(join(back, "state"), str(CLOSING))
        with store.watch(join(back, "state")) as watch, trio.move_on_after(wait):
            while not closed:
                await watch.changes()
                closed = store.get(join(back, "state")) in (str(CLOSED), None)
    store.rm(front)
    store.rm(back)
    for path in (f"/local/domain/{domid}/device/vif", f"/local/domain/0/backend/vif/{domid}"):
        if store.is_dir(path) and not store.ls(path):
            store.rm(path)
    return closed
