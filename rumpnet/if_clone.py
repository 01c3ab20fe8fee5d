"""Interface names and the drivers behind them (BSD's if_clone: `ifconfig NAME create`).

A name is a driver's name and a unit: `shmif0`, `virt3`, `xennet0`,
`bridge1`, or for the Xen backend the domain and the handle, `xvif1i0`.
Units are plain decimal numbers below 10000 without leading zeros, so each
interface has exactly one spelling. The naming rules of every driver rumpnet
knows are here, whether or not this node has the driver, so that a name
that is right but has no driver here gets its own clear error.
"""

import errno
import re

from .ifnet import InterfaceError

_UNIT = r"(0|[1-9][0-9]{0,3})"
# The naming rule of each driver: a pattern and how a user writes it.
NAMING = {
    "shmif": (re.compile(rf"shmif{_UNIT}"), "shmifN"),
    "virt": (re.compile(rf"virt{_UNIT}"), "virtN"),
    "xennet": (re.compile(rf"xennet{_UNIT}"), "xennetN"),
    "xvif": (re.compile(rf"xvif{_UNIT}i{_UNIT}"), "xvifXiY"),
    "bridge": (re.compile(rf"bridge{_UNIT}"), "bridgeN"),
}
_KIND = re.compile(r"[a-z]+")

_drivers = {}  # kind -> Driver subclass


def register_driver(driver_class, name_rule=None):
    """Make `ifconfig KIND... create` use driver_class; a new kind is named KINDN unless name_rule says."""
    kind = driver_class.kind
    if not kind or not _KIND.fullmatch(kind):
        raise ValueError(f"driver kind {kind!r} must be lowercase letters")
    if kind not in NAMING:
        NAMING[kind] = name_rule or (re.compile(rf"{kind}{_UNIT}"), f"{kind}N")
    _drivers[kind] = driver_class


def unregister_driver(kind):
    _drivers.pop(kind, None)


def registered():
    return dict(_drivers)


def lookup(name):
    """The driver class for an interface name; InterfaceError says what is wrong with the name."""
    kind = _KIND.match(name)
    kind = kind.group() if kind else ""
    here = ", ".join(NAMING[k][1] for k in _drivers)
    if kind not in NAMING:
        raise InterfaceError(errno.EINVAL, f"{name}: cannot create: no such driver (interfaces here are {here})")
    pattern, spelling = NAMING[kind]
    if not pattern.fullmatch(name):
        raise InterfaceError(errno.EINVAL, f"{name}: cannot create: not a {kind} name "
                             f"({spelling}, numbers from 0 to 9999 without leading zeros)")
    if kind not in _drivers:
        raise InterfaceError(errno.ENXIO, f"{name}: cannot create: no {kind} driver in this node "
                             f"(interfaces here are {here})")
    return _drivers[kind]
