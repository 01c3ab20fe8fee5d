"""The host's side of a scenario's taps: made as root before the nodes start, removed after.

A virt interface needs a tap on the host, which only root can make. The run
makes each [[taps]] table's tap (`ip tuntap add`), gives it its host-side
address and brings it up; by default inside a network namespace of the run's
own, which the runner then enters, so that its nodes see the taps and the
host's own interfaces and routes stay untouched. Removing the namespace
removes its taps; taps made on the host itself are removed one by one.
"""

import ctypes
import os
import subprocess

from .schema import ScenarioError

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000  # <sched.h>; os.setns comes only with Python 3.12


def netns_name():
    return f"rumpnet-run-{os.getpid()}"


def make(scenario, on_host):
    """Make the scenario's taps; the namespace they are in (None: the host's). Enters that namespace."""
    if os.geteuid() != 0:
        raise ScenarioError(f"{scenario.path}: [[taps]] makes taps, which needs root: run it with sudo, "
                            f"or make the taps yourself and leave out [[taps]]")
    netns = None if on_host else netns_name()
    try:
        if netns:
            _ip("netns", "add", netns)
            _ip("-n", netns, "link", "set", "lo", "up")
        for tap in scenario.taps:
            inside = ["-n", netns] if netns else []
            _ip(*inside, "tuntap", "add", tap.name, "mode", "tap", "user", tap.user)
            if tap.address:
                _ip(*inside, "addr", "add", tap.address, "dev", tap.name)
            _ip(*inside, "link", "set", tap.name, "up")
        if netns:
            _enter(netns)
    except BaseException:
        remove(netns, [tap.name for tap in scenario.taps])
        raise
    return netns


def remove(netns, taps):
    """Remove what make made: the namespace (its taps go with it), or the taps on the host."""
    if netns:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
    else:
        for tap in taps:
            subprocess.run(["ip", "tuntap", "del", tap, "mode", "tap"], capture_output=True)


def _enter(netns):
    """Move this process into the namespace: the nodes it forks then open their taps there."""
    fd = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise ScenarioError(f"entering the network namespace {netns}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


def _ip(*argv):
    try:
        done = subprocess.run(["ip", *argv], capture_output=True, text=True)
    except FileNotFoundError:
        raise ScenarioError("making taps needs the ip command: install iproute2") from None
    if done.returncode != 0:
        raise ScenarioError(f"ip {' '.join(argv)}: {done.stderr.strip() or f'exit status {done.returncode}'}")
