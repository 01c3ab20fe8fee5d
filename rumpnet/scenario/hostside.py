"""The host's side of taps: a scenario's, made as root before the nodes start, removed after; and HostTap.

A virt interface needs a tap on the host, which only root can make. The run
makes each [[taps]] table's tap (`ip tuntap add`), gives it its host-side
address and brings it up; by default inside a network namespace of the run's
own, which each node enters before it starts, so that the nodes see the taps
and the host's own interfaces and routes stay untouched. Removing the
namespace removes its taps; taps made on the host itself are removed one by
one, and a name some interface of the host has already is refused: the run
removes only what it made.

HostTap is one tap for a node that runs outside any namespace (a test's, or
the benchmark's router): the node opens the tap first, then its host side
moves into a namespace of its own, as an administrator would configure it.
"""

import ctypes
import os
import re
import shutil
import subprocess

from .schema import ScenarioError

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000  # <sched.h>; os.setns comes only with Python 3.12


NETNS_NAME = re.compile(r"rumpnet-run-[0-9]+-[0-9a-f]{6}")


def tap_unavailable():
    """Why this process cannot make a tap here, or None."""
    if os.geteuid() != 0:
        return "needs root to make a tap"
    if shutil.which("ip") is None:
        return "no ip command (iproute2)"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun to make a tap with"
    return None


def netns_name():
    """A name no other run (and no namespace left by one) has: the process id and random digits."""
    return f"rumpnet-run-{os.getpid()}-{os.urandom(3).hex()}"


def check(scenario, on_host):
    """Refuse taps this process cannot make, before the run makes anything (its directory included)."""
    if scenario.taps and os.geteuid() != 0:
        raise ScenarioError(f"{scenario.path}: [[taps]] makes taps, which needs root: run it with sudo, "
                            f"or make the taps yourself and leave out [[taps]]")
    if on_host:
        for tap in scenario.taps:
            if os.path.exists(f"/sys/class/net/{tap.name}"):
                raise ScenarioError(f"{scenario.path}: the host has an interface {tap.name} already: "
                                    f"rename the tap, or leave out --taps-on-host")


def make(scenario, on_host):
    """Make the scenario's taps, once check passed: (their namespace, None for the host's; the taps made)."""
    netns = None if on_host else netns_name()
    made = []
    try:
        if netns:
            add_namespace(netns)
        for tap in scenario.taps:
            add_tap(tap.name, tap.user, netns)
            made.append(tap.name)
            bring_up(tap.name, tap.address, netns)
    except BaseException:
        remove(netns, made)
        raise
    return netns, made


def add_namespace(netns):
    """A new network namespace, its loopback up."""
    _ip("netns", "add", netns)
    _ip("-n", netns, "link", "set", "lo", "up")


def add_tap(name, user, netns=None):
    """A tap that user may open, in netns (None: the host's own namespace)."""
    _ip(*_inside(netns), "tuntap", "add", name, "mode", "tap", "user", user)


def bring_up(name, address, netns=None):
    """The host's side of tap name in netns given address (when there is one) and up."""
    if address:
        _ip(*_inside(netns), "addr", "add", address, "dev", name)
    _ip(*_inside(netns), "link", "set", name, "up")


def remove(netns, taps):
    """Remove what make made: the namespace (its taps go with it), or the taps on the host."""
    if netns:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
    else:
        for tap in taps:
            subprocess.run(["ip", "tuntap", "del", tap, "mode", "tap"], capture_output=True)


def enter(netns):
    """Move this process (a node, forked) into the run's namespace, where its taps are."""
    fd = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise ScenarioError(f"entering the network namespace {netns}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


class HostTap:
    """A tap made for user, whose host side later moves into a network namespace of its own.

    make() creates the tap (root only): a node opens it (`ifconfig virt0
    create linkstr TAP`), then to_namespace() moves the host's side into the
    namespace, addressed and up; close() removes both, and the tap with the
    namespace. sh() runs a command inside the namespace.
    """

    def __init__(self, user, address="192.168.77.2/24"):
        tag = f"{os.getpid() % 100000}{os.urandom(2).hex()}"
        self.tap = f"rnt{tag}"
        self.netns = f"rumpnet-{tag}"
        self.user = user
        self.address = address

    def make(self):
        add_tap(self.tap, self.user)
        return self

    def to_namespace(self):
        add_namespace(self.netns)
        _ip("link", "set", self.tap, "netns", self.netns)
        bring_up(self.tap, self.address, self.netns)

    def sh(self, *argv, check=False, timeout=30, input=None):
        return subprocess.run(["ip", "netns", "exec", self.netns, *map(str, argv)], capture_output=True, text=True,
                              check=check, timeout=timeout, input=input)

    def close(self):
        remove(self.netns, ())  # the tap goes with the namespace, once moved into it
        remove(None, (self.tap,))


def _inside(netns):
    return ["-n", netns] if netns else []


def _ip(*argv):
    try:
        done = subprocess.run(["ip", *argv], capture_output=True, text=True)
    except FileNotFoundError:
        raise ScenarioError("making taps needs the ip command: install iproute2") from None
    if done.returncode != 0:
        raise ScenarioError(f"ip {' '.join(argv)}: {done.stderr.strip() or f'exit status {done.returncode}'}")
