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

from .ifnet import IFNAMSIZ, MAX_UNIT, UNIT, InterfaceError, shown_name

# The naming rule of each driver: a pattern and how a user writes it.
NAMING = {
    "shmif": (re.compile(rf"shmif{UNIT}"), "shmifN"),
    "virt": (re.compile(rf"virt{UNIT}"), "virtN"),
    "xennet": (re.compile(rf"xennet{UNIT}"), "xennetN"),
    "xvif": (re.compile(rf"xvif{UNIT}i{UNIT}"), "xvifXiY"),
    "bridge": (re.compile(rf"bridge{UNIT}"), "bridgeN"),
}
_KIND = re.compile(r"[a-z]+")

_drivers = {}  # kind -> Driver subclass


def register_driver(driver_class, name_rule=None):
    """Make `ifconfig KIND... create` use driver_class; a new kind is named KINDN unless name_rule says."""
    kind = driver_class.kind
    if not kind or not _KIND.fullmatch(kind):
        raise ValueError(f"driver kind {kind!r} must be lowercase letters")
    if kind not in NAMING:
        NAMING[kind] = name_rule or (re.compile(rf"{kind}{UNIT}"), f"{kind}N")
    _drivers[kind] = driver_class


def unregister_driver(kind):
    _drivers.pop(kind, None)


def registered():
    return dict(_drivers)


def check_name(name):
    """The driver kind of a name spelled by its driver's rule; ValueError saying what is wrong."""
    kind = _KIND.match(name)
    kind = kind.group() if kind else ""
    if kind not in NAMING:
        raise ValueError("no such driver")
    pattern, spelling = NAMING[kind]
    if len(name) >= IFNAMSIZ or not pattern.fullmatch(name):
        raise ValueError(f"not a {kind} name ({spelling}, numbers from 0 to {MAX_UNIT} without leading zeros)")
    return kind


def lookup(name):
    """The driver class for an interface name; InterfaceError says what is wrong with the name."""
    here = ", ".join(NAMING[k][1] for k in _drivers)
    try:
        kind = check_name(name)
    except ValueError as e:
        unknown = f" (interfaces here are {here})" if str(e) == "no such driver" else ""
        raise InterfaceError(errno.EINVAL, f"{shown_name(name)}: cannot create: {e}{unknown}") from None
    if kind not in _drivers:
        raise InterfaceError(errno.ENXIO, f"{name}: cannot create: no {kind} driver in this node "
                             f"(interfaces here are {here})")
    return _drivers[kind]
