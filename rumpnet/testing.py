"""Helpers for tests of rumpnet and of lessons built on it (as trio.testing is for trio).

Nodes here are real processes (`rumpnet server -f`), buses are real files and
frames are made with dpkt, independently of the stack's own header code.
"""

import atexit
from contextlib import asynccontextmanager
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from .kern.node import open_node
from .kern.sockets import SOCK_RAW
from .net.bus import Bus
from .scenario.hostside import tap_unavailable
from .tools.ping import ping

PYTHON = sys.executable


def rumpnet_command(*args):
    return [PYTHON, "-m", "rumpnet", *map(str, args)]


def run(*args, server=None, check=False, timeout=60, input=None, user=None, cwd=None, env=None):
    """Run `rumpnet ARGS...` as a command and return the CompletedProcess (text output).

    server "" runs it with no RUMP_SERVER at all; env adds variables to the environment.
    """
    env = {**os.environ, **(env or {})}
    if server:
        env["RUMP_SERVER"] = server
    elif server is not None:
        env.pop("RUMP_SERVER", None)
    argv = as_user(rumpnet_command(*args), user) if user else rumpnet_command(*args)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=check, input=input,
                          cwd=cwd)


def wait_for_socket(path, proc=None, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"node exited with status {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(path)
            return
        except OSError:
            time.sleep(0.02)
        finally:
            probe.close()
    raise TimeoutError(f"no node answered at {path} within {timeout} s")


class NodeProcess:
    """A node in a process of its own, in the foreground so that a test can kill it."""

    def __init__(self, path, user=None, stack=None, options=(), tun=False):
        self.path = str(path)
        self.url = f"unix://{os.path.abspath(self.path)}"
        argv = rumpnet_command("server", "-f", *(["-s", stack] if stack else []), *options, self.url)
        self.proc = subprocess.Popen(as_user(argv, user, tun) if user else argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        wait_for_socket(self.path, self.proc)

    def run(self, *args, **kwargs):
        return run(*args, server=self.url, **kwargs)

    def ifconfig(self, *args):
        done = self.run("ifconfig", *args)
        if done.returncode:
            raise RuntimeError(f"ifconfig {' '.join(map(str, args))}: {done.stderr.strip()}")
        return done.stdout

    def attach(self, bus_path, address, ifname="shmif0"):
        self.ifconfig(ifname, "create", "linkstr", bus_path, "inet", address)

    def is_alive(self):
        return self.proc.poll() is None and self.run("ifconfig", "-l").returncode == 0

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc.stderr:
            self.proc.stderr.close()


# -- running as an unprivileged user, when the tests run as root -------------------

def as_user(argv, user, tun=False):
    """argv run as user, with the interpreter and this checkout visible to it.

    A root-owned 0700 home (pyenv installs Python under /root) hides the
    interpreter from other users; a private mount namespace shows them the
    few directories they need and nothing else of it changes. With tun, the
    same namespace gets its own /dev/net/tun open to everyone (the machine's
    may be 0600), so the user can open a tap made for it (virt(4)).
    """
    entry = pwd.getpwnam(user)
    drop = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups", "--"]
    hidden = sorted({_hidden_root(p) for p in _needed_paths()} - {None})
    if not hidden and not tun:
        return drop + argv
    script = ["set -e", "mount --make-rprivate /"]
    if tun:
        script += ["mount -t tmpfs -o mode=0755,size=4k rumpnet-tun /dev/net", "mknod -m 0666 /dev/net/tun c 10 200"]
    if hidden:
        view = tempfile.mkdtemp(prefix="rumpnet-view-")
        atexit.register(shutil.rmtree, view, True)
        script += [f"view={view}", "chmod 711 \"$view\""]
    for top, path in hidden:
        script += [f"mkdir -p \"$view\"{path}", f"mount --bind {path} \"$view\"{path}"]
    for top in sorted({t for t, _ in hidden}):
        script += [f"chmod 711 \"$view\"{top}", f"mount --rbind \"$view\"{top} {top}"]
    script.append('exec "$@"')
    return ["unshare", "--mount", "--", "sh", "-c", "\n".join(script), "sh", *drop, *argv]


def _needed_paths():
    import trio

    import rumpnet
    return [sys.prefix, sys.base_prefix, os.path.dirname(os.path.dirname(rumpnet.__file__)),
            os.path.dirname(os.path.dirname(trio.__file__))]


def _hidden_root(path):
    """(top directory others cannot enter, path) when path lies under one; else None."""
    path = os.path.realpath(path)
    parts = path.strip("/").split("/")
    for depth in range(1, len(parts)):
        top = "/" + "/".join(parts[:depth])
        if not os.stat(top).st_mode & 0o001:
            return top, "/" + "/".join(parts[:depth + 1])
    return None


def can_drop_privileges():
    return os.geteuid() == 0 and shutil.which("setpriv") and shutil.which("unshare")


# -- frames and the bus --------------------------------------------------------------

def inject(bus_path, *frames, sender=0x5EED):
    """Write raw frames onto a bus, with the lock and a wake-up, as another node would."""
    with Bus(bus_path) as bus:
        bus.send(frames, sender)


def frames_on(bus_path):
    """Every frame now on a bus, oldest first."""
    with Bus(bus_path) as bus:
        return [record.frame for record in bus.records()]


@asynccontextmanager
async def open_pair(bus_path, first="10.0.0.1/24", second="10.0.0.2/24"):
    """Two nodes in this trio program on one bus: the quickest lesson or test bench."""
    async with open_node() as a, open_node() as b:
        a.add_address(a.create_shmif(bus_path), first)
        b.add_address(b.create_shmif(bus_path), second)
        yield a, b


async def ping_once(node, host, timeout=2.0):
    """True when host answers one echo request from node within timeout."""
    sock = node.socket(SOCK_RAW, 1)
    try:
        stats = await ping(sock, host, count=1, deadline=timeout, quiet=True)
    finally:
        sock.close()
    return stats.received == 1


# -- can a test make taps ------------------------------------------------------------------

def can_make_taps():
    return tap_unavailable() is None and can_drop_privileges()
