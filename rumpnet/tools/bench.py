"""The benchmark behind `rumpnet bench`: the bus, the stack and the Linux kernel, in one run.

Round trips, each `pings` exchanges `interval` apart (min, median, p99):

* (a) the bus alone, the floor: two processes bounce one ping-sized frame
  through a bus file with the bus code a node uses (lock, append, pwrite
  wake-up) and a plain blocking wait on inotify, no event loop and no stack;
  (a') the same bounce with the inotify wait awaited from trio, as a node waits;
  and (a) back to back, a rate: the floor under UDP's request/response;
* (b) ping between two nodes on a bus: a node in this process pings a node
  process (the stack alone); a raw socket in a node process driven through
  its control socket, one call per send and per reply; and `rumpnet ping`
  exactly as a user types it, its times read from its output;
* (b') the stack's ping over an xvif pair instead of a bus;
* (c) as root, the kernel's ping(8) between two network namespaces over veth;
* (d) through a router node between two buses (and, as root, to Linux behind
  a tap), and (e) as root, Linux forwarding between three namespaces.

TCP: one connection's bulk throughput between two node processes, through the
router to Linux, and Linux to Linux over veth (rumpnet.tools.perf_tcp).

Every ratio of round trips is to (a). The resident memory of an idle node
process (configured, nothing to do) is read from /proc.

Start-up: the 32 nodes of a scenario of four buses joined by two routers,
started as `rumpnet run` starts them, timed until every node listens, is
configured, and answers a ping from a router; and their median resident memory.

UDP, each figure for `udp_seconds`: datagrams per second one way at 64 and
1400 bytes (sent and received both over the sender's timed window, so
received/s never exceeds sent/s), flat out and (on the nodes) paced below the rate received, and
request/response round trips per second with one request outstanding. The
traffic is `rumpnet perf`'s sender and receiver (rumpnet.tools.perf) and the echo
service and its client (rumpnet.tools.echo), in node processes; as root the same
code runs on kernel sockets in the two namespaces, through KernelStack, so a
ratio compares the stacks and not two programs. Senders send bursts of 32:
through sendmmsg on a node's socket, one send each on a kernel socket
(Python has no sendmmsg).

TCP, for `udp_seconds` too: one connection's bulk throughput in Mbit/s,
perf_tcp's sender and receiver, between two node processes on a bus, from a
node through the router to Linux behind the tap (as root), and between the
two namespaces over veth on kernel sockets (KernelStreamSocket), with the
sender's retransmissions (the node's counter; the kernel's RetransSegs).

Helper processes are this module run as `python -m rumpnet.tools.bench ROLE SPEC`;
each prints JSON lines: {"ready": true} once it listens, then (a talker) its result;
the start-up helper prints only its result.
"""

from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
import errno
import json
import math
import os
import platform
import re
import select
import shutil
import socket as pysocket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import types

import trio

from . import echo, perf, perf_tcp
from ..client import connect
from ..kern.node import open_node
from ..kern.protocol import parse_url
from ..kern.sockets import RECVMMSG_MAX, SOCK_DGRAM, SOCK_RAW, SOCK_STREAM
from ..kern.tasks import open_service_nursery
from ..net.bus import Bus, Cursor, new_sender
from ..net.inotify import ModifyWatch
from ..netinet.ip import IPPROTO_ICMP
from ..scenario import ScenarioError
from ..scenario.hostside import HostTap, tap_unavailable
from ..xen.toolstack import network_attach
from .ping import ping

PING_FRAME = 98  # a 56-byte ping on the wire: Ethernet 14 + IPv4 20 + ICMP 8 + 56
UDP_PORT = 5001
UDP_SIZES = (64, 1400)
SEQ = struct.Struct("!Q")  # a bus frame's round number, where a ping's identifier and sequence would be
NETNS = (f"rumpnet-bench-{os.getpid()}-a", f"rumpnet-bench-{os.getpid()}-b")
VETH = (f"rnb{os.getpid()}a", f"rnb{os.getpid()}b")
LINUX_ADDRESSES = ("10.77.0.1", "10.77.0.2")
NODE_ADDRESSES = ("10.0.0.1", "10.0.0.2", "10.0.0.3")
XVIF_MAC = "00:16:3e:00:00:01"
BUSY_POLL_US = 1000  # net.core.busy_poll of the nodes in the second request/response figure


class BenchError(Exception):
    """A measurement that could not be made; the message says which and why."""


@contextmanager
def _within(seconds, what):
    """A time limit whose expiry is a BenchError naming what took too long."""
    try:
        with trio.fail_after(seconds):
            yield
    except trio.TooSlowError:
        raise BenchError(f"{what} took more than {seconds:g} s") from None


@dataclass
class Settings:
    pings: int = 1000
    interval: float = 0.01
    udp_seconds: float = 3.0
    paced_fraction: float = 0.8  # of the received rate, for the paced UDP figure
    cpu_latency_us: int | None = None  # held in /dev/cpu_dma_latency for the run (root), or None: the machine as it is


QUICK = Settings(pings=100, udp_seconds=0.5)
BACK_TO_BACK = 5  # (a) back to back bounces this many times as many frames as a round-trip series has pings


CPU_DMA_LATENCY = "/dev/cpu_dma_latency"
CPUIDLE_DRIVER = "/sys/devices/system/cpu/cpuidle/current_driver"
MAX_CPU_LATENCY_US = 2_000_000_000  # the kernel's default request: no limit


@contextmanager
def cpu_latency(us):
    """Hold the kernel's CPU latency request (PM QoS) at us microseconds while the block runs, as
    cyclictest does; None leaves the machine as it is.

    An idle CPU that may take no more than 0 µs to wake polls instead of
    halting. On a virtual machine a halted virtual CPU is woken through the
    hypervisor, and that wake-up lands inside every round trip the
    benchmark times, the kernel's included. The request lasts while the
    file stays open.
    """
    if us is None:
        yield
        return
    try:
        fd = os.open(CPU_DMA_LATENCY, os.O_WRONLY)
    except OSError as e:
        raise BenchError(f"--cpu-latency: {CPU_DMA_LATENCY}: {e.strerror}"
                         f"{' (it needs root)' if e.errno in (errno.EACCES, errno.EPERM) else ''}") from None
    try:
        os.write(fd, struct.pack("=i", us))
        yield
    finally:
        os.close(fd)


def cpuidle_driver():
    """The kernel's cpuidle driver (haltpoll, intel_idle, acpi_idle...), or None where it shows none."""
    try:
        with open(CPUIDLE_DRIVER) as f:
            return f.read().strip() or None
    except OSError:
        return None


# -- figures -------------------------------------------------------------------------------

def round_trip_figures(rtts, sent):
    """min, median and p99 (nearest rank) in microseconds of rtts in seconds, and how many were lost."""
    if not rtts:
        raise BenchError(f"no replies to {sent} requests")
    us = sorted(r * 1e6 for r in rtts)
    return {"count": len(us), "lost": sent - len(us), "min_us": us[0], "median_us": statistics.median(us),
            "p99_us": us[math.ceil(0.99 * len(us)) - 1]}


def ratio(numerator, denominator):
    return numerator / denominator if numerator and denominator else None


# -- the links two nodes are joined by ----------------------------------------------------
# An end is a dictionary whose "link" says what it is on: "shmif" (a bus, "bus" its file), "xvif" (an xvif
# pair: "xenstore", "domid", "ifname"), or "kernel" (no node: the kernel's stack in a namespace).

def shmif_end(bus):
    return {"link": "shmif", "bus": bus}


def shmif_pair(workdir, name):
    """Two ends on a bus of their own: (the talker's end, the listener's)."""
    bus = os.path.join(workdir, name)
    return shmif_end(bus), shmif_end(bus)


def xvif_pair(workdir, name):
    """A guest's xennet0 (domid 1, the talker) and dom0's xvif1i0 (the listener), made by xl network-attach
    in a XenStore of their own."""
    root = os.path.join(workdir, name)
    network_attach(root, 1, mac=XVIF_MAC)
    return ({"link": "xvif", "xenstore": root, "domid": 1, "ifname": "xennet0"},
            {"link": "xvif", "xenstore": root, "domid": 0, "ifname": "xvif1i0"})


def _domain(end):
    """The Xen domain a node at end stands for, as open_node's options (none off an xvif pair)."""
    return {"domid": end["domid"], "xenstore": end["xenstore"]} if end["link"] == "xvif" else {}


@asynccontextmanager
async def _end_node(end, address):
    """A node in this process at one end of a link, its interface given address (a guest's once Connected)."""
    async with open_node(**_domain(end)) as node:
        if end["link"] == "shmif":
            name = node.create_shmif(end["bus"])
        else:
            name = end["ifname"]
            with _within(15, f"{name} coming up"):
                while name not in node.interfaces or end["domid"] and node.interfaces[name].driver.ring_file is None:
                    await trio.sleep(0.01)
        node.add_address(name, f"{address}/24")
        for variable, value in end.get("sysctl", {}).items():
            node.sysctl.set(variable, value)
        yield node


# -- helper processes ----------------------------------------------------------------------

class _Lines:
    """JSON lines from a helper's stdout."""

    def __init__(self, stream, what):
        self.stream = stream
        self.what = what
        self.buffer = b""

    async def next(self):
        while b"\n" not in self.buffer:
            chunk = await self.stream.receive_some()
            if not chunk:
                raise BenchError(f"{self.what} exited before it reported")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)


def _emit(value):
    print(json.dumps(value), flush=True)


@asynccontextmanager
async def _process(command, stdout=subprocess.PIPE, stderr=None):
    """A child process, ended (TERM, then KILL) when the block ends, whatever happened."""
    proc = await trio.lowlevel.open_process(command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                            start_new_session=True)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            with trio.move_on_after(2):
                await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if proc.stdout is not None:
            await proc.stdout.aclose()


def _exited(what, proc, stderr):
    """A BenchError for a child that exited: its status and the last line it printed (stderr: its file)."""
    stderr.seek(0)
    lines = stderr.read().decode(errors="replace").strip().splitlines()
    return BenchError(f"{what} exited with status {proc.returncode}" + (f": {lines[-1].strip()}" if lines else ""))


@asynccontextmanager
async def helper(role, spec, netns=None):
    """Run `python -m rumpnet.tools.bench role spec` (inside netns when given); yields its JSON lines, once ready."""
    command = [sys.executable, "-m", "rumpnet.tools.bench", role, json.dumps(spec)]
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    what = f"the {spec.get('role', role)} helper"
    async with _process(command) as proc:  # its errors go to bench's stderr; a node's INFO lines are not shown
        lines = _Lines(proc.stdout, what)
        with _within(15, f"starting {what}"):
            await lines.next()
        yield lines


@asynccontextmanager
async def node_process(url, xen=None, stack="host"):
    """A `rumpnet server -f` node with stack's profile (a Xen domain when xen gives open_node's domid and
    xenstore); yields a control-socket client and the process id once it answers.

    Its stderr goes to a file (a pipe nobody reads could stop it; bench's own
    stderr would get its INFO lines): a node that exits, at start or under a
    benchmark that then fails, is reported with the last line it printed.
    """
    path = parse_url(url)
    options = [word for name, value in (xen or {}).items() for word in (f"--{name}", str(value))]
    command = [sys.executable, "-m", "rumpnet", "server", "-f", "-s", stack, *options, url]
    with tempfile.TemporaryFile() as stderr:
        async with _process(command, stdout=subprocess.DEVNULL, stderr=stderr) as proc:
            with _within(15, f"starting the node at {url}"):
                while not await _answers(path):
                    if proc.returncode is not None:
                        raise _exited(f"the node at {url}", proc, stderr)
                    await trio.sleep(0.02)
            try:
                async with connect(url) as remote:
                    yield remote, proc.pid
            except Exception as e:
                if proc.returncode is not None:
                    raise _exited(f"the node at {url}", proc, stderr) from e
                raise


async def _answers(path):
    try:
        stream = await trio.open_unix_socket(path)
    except OSError:
        return False
    await stream.aclose()
    return True


async def _configure(remote, end, address, name="shmif0"):
    """Give a node process's end of a link address: a new shmif `name` on the bus, or the vif once xenbus made it."""
    if end["link"] == "shmif":
        await remote.call("if_create", name=name)
        await remote.call("if_linkstr", name=name, path=end["bus"])
    else:
        name = end["ifname"]
        with _within(15, f"{name} appearing"):
            while name not in {ifp["name"] for ifp in await remote.call("if_list")}:
                await trio.sleep(0.02)
    await remote.call("if_address", name=name, address=f"{address}/24")


# -- (a) the bus alone ---------------------------------------------------------------------

def _send(cursor, frames, sender):
    """Put frames on the bus as a node's interface does: its own reader steps over them, one wake-up."""
    with cursor.bus.locked():
        cursor.append(frames, sender)
    cursor.bus.wakeup()


def _new_frames(cursor, watch, sender):
    """The frames of other senders that are on the bus now, read as a node's receive loop reads."""
    watch.drain()
    return [r.frame for r in cursor.read(skip=sender)]


async def _next_frames(cursor, watch, sender):
    """The next frames of other senders, sleeping in trio only when there are none."""
    while not (frames := _new_frames(cursor, watch, sender)):
        await watch.wait()
    return frames


def _next_frames_blocking(cursor, watch, sender, timeout):
    """The next frames of other senders, sleeping in poll(2) when there are none; [] after timeout seconds."""
    poller = select.poll()
    poller.register(watch.fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while not (frames := _new_frames(cursor, watch, sender)):
        left = deadline - time.monotonic()
        if left <= 0:
            return []
        poller.poll(left * 1000)
    return frames


class _BusEnd:
    """One end of a bounce: a bus, a cursor and an inotify watch on it, and a sender id."""

    def __init__(self, path):
        self.bus = Bus(path)
        self.watch = ModifyWatch(path)
        self.cursor = Cursor(self.bus)
        self.sender = new_sender()

    def send(self, frames):
        _send(self.cursor, frames, self.sender)

    def close(self):
        self.watch.close()
        self.bus.close()


@contextmanager
def _bus_end(spec):
    """A bounce's end on spec's bus, reported ready to the benchmark; closed when the block ends."""
    end = _BusEnd(spec["bus"])
    try:
        _emit({"ready": True})
        yield end
    finally:
        end.close()


def _frame(seq):
    frame = bytearray(PING_FRAME)
    SEQ.pack_into(frame, 14, seq)
    return bytes(frame)


def _tag(frame):
    return frame[14:14 + SEQ.size]


async def _bus_bounce(workdir, name, kind, count, interval):
    """The times, in seconds, of count bounces interval apart between a pinger and a bouncer process, no stack."""
    spec = {"bus": os.path.join(workdir, name), "kind": kind, "count": count, "interval": interval,
            "seconds": count * interval + 10}
    async with helper("bounce", spec):
        async with helper("bounce_pinger", spec) as pinger:
            with _within(spec["seconds"] + 10, f"the {kind} bus bounce"):
                return (await pinger.next())["rtts"]


async def bus_round_trips(workdir, count, interval):
    """(a) and (a'): each a pinger and a bouncer process passing a ping-sized frame to and fro, no stack."""
    return {key: round_trip_figures(await _bus_bounce(workdir, f"bare-bus-{kind}", kind, count, interval), count)
            for key, kind in (("bus", "blocking"), ("bus_trio", "trio"))}


async def bus_back_to_back(workdir, count):
    """(a) back to back: round trips a second of the bus alone with one frame outstanding, each bounce sent
    as soon as the last came back; the floor under UDP's request/response, as (a) is under a ping."""
    rtts = await _bus_bounce(workdir, "bare-bus-back-to-back", "blocking", count, 0.0)
    if not rtts:
        raise BenchError(f"no replies to {count} bounces back to back")
    return {"count": len(rtts), "round_trips_per_s": perf.rate(len(rtts), sum(rtts))}


def _bounce_blocking(spec):
    """The bouncer of (a): every frame another sender writes goes straight back, from a plain loop."""
    with _bus_end(spec) as end:
        deadline = time.monotonic() + spec["seconds"]
        while time.monotonic() < deadline:
            frames = _next_frames_blocking(end.cursor, end.watch, end.sender, 1.0)
            if frames:
                end.send(frames)


def _pinger_blocking(spec):
    """The pinger of (a): a frame every interval, timed until it comes back (at most 1 s)."""
    with _bus_end(spec) as end:
        rtts = []
        next_send = time.monotonic()
        for seq in range(spec["count"]):
            next_send += spec["interval"]
            time.sleep(max(0.0, next_send - time.monotonic()))
            frame = _frame(seq)
            start = time.perf_counter()
            end.send([frame])
            while True:
                frames = _next_frames_blocking(end.cursor, end.watch, end.sender, 1.0)
                if not frames or _tag(frame) in map(_tag, frames):
                    break  # lost, or back (frames of earlier rounds come late)
            if frames:
                rtts.append(time.perf_counter() - start)
        _emit({"rtts": rtts})


async def _bounce_trio(spec):
    """The bouncer of (a'): as (a)'s, with the wait awaited from trio."""
    with _bus_end(spec) as end:
        with trio.move_on_after(spec["seconds"]):
            while True:
                end.send(await _next_frames(end.cursor, end.watch, end.sender))
                await trio.lowlevel.checkpoint()


async def _pinger_trio(spec):
    """The pinger of (a'): as (a)'s, with the sleeps and the wait in trio."""
    with _bus_end(spec) as end:
        rtts = []
        next_send = trio.current_time()
        for seq in range(spec["count"]):
            next_send += spec["interval"]
            await trio.sleep_until(next_send)
            frame = _frame(seq)
            start = time.perf_counter()
            end.send([frame])
            with trio.move_on_after(1):
                while _tag(frame) not in map(_tag, await _next_frames(end.cursor, end.watch, end.sender)):
                    pass  # only late frames of earlier rounds
                rtts.append(time.perf_counter() - start)
        _emit({"rtts": rtts})


def _bounce(spec):
    if spec["kind"] == "blocking":
        _bounce_blocking(spec)
    else:
        trio.run(_bounce_trio, spec)


def _bounce_pinger(spec):
    if spec["kind"] == "blocking":
        _pinger_blocking(spec)
    else:
        trio.run(_pinger_trio, spec)


# -- (b) ping between nodes ----------------------------------------------------------------

async def _ping_figures(sock, host, settings):
    stats = await ping(sock, host, count=settings.pings, interval=settings.interval, quiet=True,
                       deadline=settings.pings * settings.interval + 10)
    return round_trip_figures(stats.rtts, stats.transmitted)


def resident_mb(pid):
    """A process's resident memory in MB (VmRSS in /proc), or None where /proc does not say."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


_CLI_TIME = re.compile(r"time=([\d.]+) ms")
_CLI_SENT = re.compile(r"(\d+) packets transmitted")


async def cli_ping(url, host, settings):
    """`rumpnet ping -c N -i INTERVAL HOST` as a user types it; the figures of the times it prints."""
    count = settings.pings
    limit = count * settings.interval + 10
    command = [sys.executable, "-m", "rumpnet", "ping", "-c", str(count), "-i", str(settings.interval),
               "-w", str(math.ceil(limit)), host]
    with _within(limit + 10, "rumpnet ping"):
        done = await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=False,
                                      env={**os.environ, "RUMP_SERVER": url})
    output = done.stdout.decode(errors="replace")
    rtts = [float(t) / 1000 for t in _CLI_TIME.findall(output)]
    sent = _CLI_SENT.search(output)
    if not sent:
        raise BenchError(f"rumpnet ping: {done.stderr.decode(errors='replace').strip() or 'no statistics'}")
    return round_trip_figures(rtts, int(sent.group(1)))


async def _stack_ping(end, settings):
    """A node in this process at end pings the node process at the other end of the link: the stack alone."""
    async with _end_node(end, NODE_ADDRESSES[0]) as node:
        with node.socket(SOCK_RAW, IPPROTO_ICMP) as sock:
            return await _ping_figures(sock, NODE_ADDRESSES[1], settings)


async def node_ping(workdir, settings):
    """(b): the stack alone (a node in this process pings a node process), through a control socket,
    and the `rumpnet ping` command; and the resident memory of the idle node process."""
    mine, target_end = shmif_pair(workdir, "ping-bus")
    async with node_process(f"unix://{workdir}/b.sock") as (target, target_pid):
        await _configure(target, target_end, NODE_ADDRESSES[1])
        memory = resident_mb(target_pid)
        stack = await _stack_ping(mine, settings)
        url = f"unix://{workdir}/a.sock"
        async with node_process(url) as (pinger, _):
            await _configure(pinger, mine, NODE_ADDRESSES[2])
            sock = await pinger.socket(SOCK_RAW, IPPROTO_ICMP)
            control = await _ping_figures(sock, NODE_ADDRESSES[1], settings)
            cli = await cli_ping(url, NODE_ADDRESSES[1], settings)
    return {"stack": stack, "control": control, "cli": cli}, memory


async def xvif_ping(workdir, settings):
    """(b) over an xvif pair: a guest node in this process pings dom0's node process."""
    guest, dom0 = xvif_pair(workdir, "ping-xenstore")
    async with node_process(f"unix://{workdir}/dom0.sock", _domain(dom0)) as (target, _):
        await _configure(target, dom0, NODE_ADDRESSES[1])
        return await _stack_ping(guest, settings)


# -- (c) and the kernel's UDP: two network namespaces over veth -----------------------------

def linux_unavailable():
    """Why the kernel's figures cannot be taken here, or None."""
    if os.geteuid() != 0:
        return "not run as root: network namespaces need root"
    if shutil.which("ip") is None:
        return "no ip command (iproute2)"
    if shutil.which("ping") is None:
        return "no ping command (iputils-ping)"
    return None



async def _ip(*args):
    done = await trio.run_process(["ip", *args], capture_stdout=True, capture_stderr=True, check=False)
    if done.returncode:
        raise BenchError(f"ip {' '.join(args)}: {done.stderr.decode().strip()}")


@dataclass(frozen=True)
class Namespaces:
    """Network namespaces joined by veth pairs, for the kernel's figures.

    links: for each veth pair, its two ends (namespace, device, address/24);
    routes: (namespace, gateway) for each default route; forwarder: the namespace
    that forwards between its links, if one does. The kernel's talker runs in
    the first link's first namespace, its listener at the last link's far end.
    """

    links: tuple
    routes: tuple = ()
    forwarder: str = None

    @property
    def names(self):
        """The namespaces the links join, each once, in the order they first appear."""
        return tuple(dict.fromkeys(ns for link in self.links for ns, _, _ in link))

    def ends(self):
        (talker, _, _), (listener, _, peer) = self.links[0][0], self.links[-1][1]
        return LinuxEnds((talker, listener), peer)


VETH_PAIR = Namespaces((tuple(zip(NETNS, VETH, LINUX_ADDRESSES)),))


@asynccontextmanager
async def namespaces(shape):
    """Make shape's namespaces, veth pairs, addresses and routes with ip(8); delete the namespaces afterwards."""
    try:
        for ns in shape.names:
            await _ip("netns", "add", ns)
            await _ip("-n", ns, "link", "set", "lo", "up")
        for (left, dev_l, _), (right, dev_r, _) in shape.links:
            await _ip("link", "add", dev_l, "netns", left, "type", "veth", "peer", "name", dev_r, "netns", right)
        for ns, dev, address in (end for link in shape.links for end in link):
            await _ip("-n", ns, "addr", "add", f"{address}/24", "dev", dev)
            await _ip("-n", ns, "link", "set", dev, "up")
        if shape.forwarder:
            await _ip("netns", "exec", shape.forwarder, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        for ns, gateway in shape.routes:
            await _ip("-n", ns, "route", "add", "default", "via", gateway)
        yield shape.ends()
    finally:
        with trio.CancelScope(shield=True):
            for ns in shape.names:
                await trio.run_process(["ip", "netns", "delete", ns], capture_stderr=True, check=False)


_PING_TIME = re.compile(rb"time=([\d.]+) ms")
_PING_SENT = re.compile(rb"(\d+) packets transmitted")


async def linux_ping(settings, ends):
    """(c): ping(8) from the talker's namespace to the listener's address; its per-reply times, to the microsecond.

    ping(8) paces itself more slowly than asked here (about 17 ms for 10), so
    the deadline is generous and the count sent is what ping reports.
    """
    count = settings.pings
    limit = 3 * count * settings.interval + 10
    with _within(limit + 10, "ping(8)"):
        done = await trio.run_process(
            ["ip", "netns", "exec", ends.netns[0], "ping", "-n", "-c", str(count), "-i", str(settings.interval),
             "-w", str(math.ceil(limit)), ends.peer],
            capture_stdout=True, capture_stderr=True, check=False)
    rtts = [float(t) / 1000 for t in _PING_TIME.findall(done.stdout)]
    sent = _PING_SENT.search(done.stdout)
    if not rtts or not sent:
        raise BenchError(f"ping: {done.stderr.decode().strip() or 'no replies'}")
    return round_trip_figures(rtts, int(sent.group(1)))


# -- UDP: perf's and echo's code on either stack -------------------------------------------

class KernelSocket:
    """A kernel UDP socket (trio.socket) with the calls of a node's datagram socket that perf and echo make."""

    def __init__(self):
        self._raw = pysocket.socket(pysocket.AF_INET, pysocket.SOCK_DGRAM)
        self._raw.setblocking(False)
        self._sock = trio.socket.from_stdlib_socket(self._raw)
        self.service = None  # as a node's socket: which built-in service runs on it

    @property
    def closed(self):
        return self._sock.fileno() < 0

    async def bind(self, address):
        await self._sock.bind(address)

    async def connect(self, address):
        await self._sock.connect(address)

    def setsockopt(self, name, value):
        self._sock.setsockopt(pysocket.SOL_SOCKET, getattr(pysocket, name), value)

    async def sendto(self, data, address):
        return await self._sock.sendto(data, address)

    async def send(self, data):
        return await self._sock.send(data)

    async def sendmmsg(self, datagrams, address=None):
        """Send a burst in one pass through trio's loop, as a node's sendmmsg does: a send(2) a
        datagram (Python has no sendmmsg), waiting only when the first finds the buffer full; an
        error after the first ends the burst early."""
        sent = 0
        for data in datagrams:
            try:
                if address is None:
                    self._raw.send(data)
                else:
                    self._raw.sendto(data, address)
            except BlockingIOError:
                if sent:
                    break
                await (self.send(data) if address is None else self.sendto(data, address))
            except OSError:
                if not sent:
                    raise
                break
            sent += 1
        await trio.lowlevel.checkpoint()
        return sent

    async def recvfrom(self, bufsize=65535):
        return await self._sock.recvfrom(bufsize)

    async def recvmmsg(self, vlen=RECVMMSG_MAX, bufsize=65535):
        """Wait for a datagram, then take what else is queued, up to vlen, without going back
        to trio's loop: what a node's recvmmsg does (Python has no recvmmsg)."""
        taken = [await self._sock.recvfrom(bufsize)]
        while len(taken) < vlen:
            try:
                taken.append(self._raw.recvfrom(bufsize))
            except BlockingIOError:
                break
        return taken

    async def recv(self, bufsize=65535):
        return await self._sock.recv(bufsize)

    def getsockname(self):
        return self._sock.getsockname()

    def getpeername(self):
        return self._sock.getpeername()

    def close(self):
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class KernelStreamSocket(KernelSocket):
    """A kernel TCP socket with the calls of a node's stream socket that perf_tcp makes."""

    def __init__(self, sock=None):
        self._raw = sock or pysocket.socket(pysocket.AF_INET, pysocket.SOCK_STREAM)
        self._sock = trio.socket.from_stdlib_socket(self._raw)  # the raw socket is now non-blocking
        self.service = None

    async def listen(self, backlog):
        self._sock.listen(backlog)

    async def accept(self):
        sock, peer = await self._sock.accept()
        raw = pysocket.socket(fileno=sock.detach())
        return KernelStreamSocket(raw), peer

    async def wait_writable(self):
        await self._sock.wait_writable()

    def send_nowait(self, data):
        try:
            return self._raw.send(data)
        except BlockingIOError:
            return 0  # writable a moment ago, full again

    async def send(self, data):
        view = memoryview(data)
        while view:
            view = view[await self._sock.send(view):]
        return len(data)

    async def shutdown(self, how):
        self._sock.shutdown(how)
        await trio.lowlevel.checkpoint()


class KernelTcpStats:
    """The kernel's TCP counters as a node's stats.tcp, by rumpnet's names: RetransSegs of /proc/net/snmp
    (the counters of the network namespace the process runs in)."""

    def __getitem__(self, name):
        if name != "retransmitted":
            raise KeyError(name)
        with open("/proc/net/snmp") as snmp:
            names, values = [line.split() for line in snmp if line.startswith("Tcp:")]
        return int(values[names.index("RetransSegs")])


class KernelStack:
    """The kernel's UDP and TCP with a node's `socket()`, `nursery` and TCP counters: perf, perf_tcp and echo
    run on it unchanged."""

    def __init__(self, nursery):
        self.nursery = nursery
        self.stats = types.SimpleNamespace(tcp=KernelTcpStats())

    def socket(self, kind):
        if kind == SOCK_STREAM:
            return KernelStreamSocket()
        if kind != SOCK_DGRAM:
            raise OSError(errno.EPROTONOSUPPORT, "only UDP and TCP sockets are offered on the kernel's stack")
        return KernelSocket()


@asynccontextmanager
async def _stack(spec):
    """A node at spec's end of a link when it names one, else the kernel's stack; their tasks end with the block."""
    if spec["link"] != "kernel":
        async with _end_node(spec, spec["address"]) as node:
            if "gateway" in spec:
                node.add_route("default", spec["gateway"])
            yield node
    else:
        async with open_service_nursery() as nursery:
            yield KernelStack(nursery)


async def _udp_helper(spec):
    """One end of a UDP measurement: a receiver or an echo service that serves until stopped,
    or a sender or echo client that prints its result."""
    role = spec["role"]
    async with _stack(spec) as stack:
        if role in LISTENERS:
            await LISTENERS[role](stack, UDP_PORT)
            _emit({"ready": True})
            await trio.sleep(spec["seconds"])
            return
        _emit({"ready": True})
        if role == "source":
            report = await perf.run_client(stack, spec["peer"], UDP_PORT, length=spec["size"],
                                           duration=spec["seconds"], bits_per_second=spec["bits_per_second"])
            _emit(asdict(report))
        elif role == "tcp_source":
            _emit(asdict(await perf_tcp.run_client(stack, spec["peer"], UDP_PORT, duration=spec["seconds"])))
        else:
            done, seconds = await echo.round_trips(stack, spec["peer"], UDP_PORT, seconds=spec["seconds"])
            _emit({"round_trips": done, "seconds": seconds})


LISTENERS = {"sink": perf.start_server, "echo": echo.start, "tcp_sink": perf_tcp.start_server}


class NodeEnds:
    """Both ends in node processes, on a fresh link of setup's for each measurement (no frames left from the last)."""

    netns = (None, None)
    paced = True  # whether loss at a rate the receiver sustains is measured too
    busy_poll = True  # whether request/response is measured with net.core.busy_poll too

    def __init__(self, workdir, setup=shmif_pair):
        self.workdir = workdir
        self.setup = setup
        self.runs = 0

    def pair(self, listener, talker):
        self.runs += 1
        talk_end, listen_end = self.setup(self.workdir, f"udp-{self.setup.__name__}-{self.runs}")
        return ({"role": listener, **listen_end, "address": NODE_ADDRESSES[1]},
                {"role": talker, **talk_end, "address": NODE_ADDRESSES[0], "peer": NODE_ADDRESSES[1]})


class LinuxEnds:
    """Both ends on kernel sockets: the talker in netns[0], the listener at peer in netns[1]."""

    paced = False  # the targets are the nodes'; the kernel's figures are the reference
    busy_poll = False  # the kernel is measured as it comes

    def __init__(self, netns, peer):
        self.netns = netns
        self.peer = peer

    def pair(self, listener, talker):
        return {"role": listener, "link": "kernel"}, {"role": talker, "link": "kernel", "peer": self.peer}


async def udp_pair(ends, listener, talker, seconds, sysctl=None, **options):
    """Run a listening helper and its talking peer for seconds; return what the talker reports.
    With sysctl, both ends are nodes with those variables set."""
    listen_spec, talk_spec = ends.pair(listener, talker)
    if sysctl:
        listen_spec["sysctl"] = talk_spec["sysctl"] = sysctl
    listen_spec["seconds"] = seconds + 20  # the helper's lifetime, should this process not end it
    talk_spec.update(seconds=seconds, **options)
    async with helper("udp", listen_spec, ends.netns[1]):
        async with helper("udp", talk_spec, ends.netns[0]) as talking:
            with _within(seconds + 20, f"the {talker} and {listener} helpers"):
                return await talking.next()


async def one_way(ends, seconds, size, rate=0.0):
    """Datagrams a second sent and received, from perf's reports; rate in datagrams a second, 0 flat out."""
    report = perf.ClientReport.from_dict(await udp_pair(ends, "sink", "source", seconds, size=size,
                                                        bits_per_second=rate * size * 8))
    if report.server is None:
        raise BenchError(f"no report from the UDP receiver ({size}-byte datagrams)")
    # Both over the sender's window: every datagram received has a sequence number below the count sent.
    received = min(report.server.received, report.sent)
    return {"sent_per_s": perf.rate(report.sent, report.duration),
            "received_per_s": perf.rate(received, report.duration),
            "loss_pct": report.server.loss_percent}


async def udp_figures(settings, ends):
    """One-way rates at each size, flat out and paced below the rate received, and request/response."""
    seconds = settings.udp_seconds
    results = {}
    for size in UDP_SIZES:
        results[f"one_way_{size}"] = await one_way(ends, seconds, size)
        rate = settings.paced_fraction * results[f"one_way_{size}"]["received_per_s"]
        if ends.paced and rate >= 1:
            results[f"paced_{size}"] = {**await one_way(ends, seconds, size, rate), "rate": rate}
    results["request_response"] = await request_response(ends, seconds)
    if ends.busy_poll:
        results["request_response_busy_poll"] = await request_response(
            ends, seconds, {"net.core.busy_poll": BUSY_POLL_US})
    return results


async def request_response(ends, seconds, sysctl=None):
    """Round trips a second with one request outstanding: the echo client and service."""
    client = await udp_pair(ends, "echo", "client", seconds, sysctl)
    return {"round_trips_per_s": perf.rate(client["round_trips"], client["seconds"])}


async def tcp_bulk(ends, seconds):
    """One TCP connection's bulk throughput, perf_tcp's sender to its receiver, for seconds."""
    report = perf_tcp.TcpClientReport.from_dict(await udp_pair(ends, "tcp_sink", "tcp_source", seconds))
    if report.server is None or report.server.bytes != report.bytes:
        raise BenchError(f"TCP to {report.remote[0]}: the receiver's count never came or differs from the sender's")
    return {"mbit_per_s": report.bits_per_second / 1e6, "bytes": report.bytes, "seconds": report.duration,
            "retransmits": report.retransmits}


# -- (d) forwarding: a router node between two buses and to Linux; (e) Linux between three namespaces --

# bus 1, the router's side of bus 2 and the far node, the router's side of the tap and Linux behind it
ROUTED_BUS1 = ("10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4", "10.0.1.5")  # router; to a node: UDP, ping; to Linux
ROUTED_BUS2 = ("10.0.2.1", "10.0.2.2", "10.0.2.3")  # router, ping target, UDP receiver
ROUTED_TAP = ("10.78.0.1", "10.78.0.2/24")  # router, Linux in its namespace
FORWARD_NETNS = tuple(f"rumpnet-bench-{os.getpid()}-{end}" for end in ("x", "m", "y"))
FORWARD_VETH = tuple(f"rnf{os.getpid()}{end}" for end in ("xm", "mx", "my", "ym"))
FORWARD_ADDRESSES = ("10.79.1.2", "10.79.1.1", "10.79.2.1", "10.79.2.2")  # x, m's two sides, y


class RoutedEnds:
    """A UDP sender on bus 1 and a receiver beyond the router: a node on bus 2, or Linux behind the tap."""

    def __init__(self, workdir, source, pinger, receiver=None, netns=None):
        self.bus1, self.bus2 = (os.path.join(workdir, f"routed-bus-{n}") for n in (1, 2))
        self.source, self.pinger = source, pinger  # each end a new node: its own address, no stale ARP entry
        self.receiver = receiver
        self.netns = (None, netns)

    def pair(self, listener, talker):
        listen = {"role": listener, "link": "kernel"}
        if self.netns[1] is None:
            listen.update(shmif_end(self.bus2), address=ROUTED_BUS2[2], gateway=ROUTED_BUS2[0])
        talk = {"role": talker, **shmif_end(self.bus1), "address": self.source, "gateway": ROUTED_BUS1[0],
                "peer": self.receiver or ROUTED_BUS2[2]}
        return listen, talk


async def _routed_ping(ends, host, settings):
    """Ping host from a node in this process on bus 1, through the router."""
    async with open_node() as node:
        node.add_address(node.create_shmif(ends.bus1), f"{ends.pinger}/24")
        node.add_route("default", ROUTED_BUS1[0])
        with node.socket(SOCK_RAW, IPPROTO_ICMP) as sock:
            return await _ping_figures(sock, host, settings)


async def _router_to_tap(router, host):
    """The router's virt0 on host's tap, opened before the tap moves into host's namespace with Linux's route back."""
    await router.call("if_create", name="virt0")
    await router.call("if_linkstr", name="virt0", path=host.tap)
    await router.call("if_address", name="virt0", address=f"{ROUTED_TAP[0]}/24")
    await trio.to_thread.run_sync(host.to_namespace)
    await trio.to_thread.run_sync(lambda: host.sh("ip", "route", "add", "10.0.1.0/24", "via", ROUTED_TAP[0],
                                                   check=True))


async def forwarding(workdir, settings, report):
    """(d): a router node between bus 1 and bus 2 (and, as root, a tap to Linux in a namespace);
    a node on bus 1 pings and sends UDP beyond it."""
    figures, skipped = report["forwarding"], report["skipped"]
    seconds = settings.udp_seconds
    to_node = RoutedEnds(workdir, *ROUTED_BUS1[1:3])
    why_not = tap_unavailable()
    host = None if why_not else HostTap("root", address=ROUTED_TAP[1])
    if why_not:
        skipped["forwarding_tap"] = why_not
    async with node_process(f"unix://{workdir}/router.sock", stack="router") as (router, _):
        await _configure(router, shmif_end(to_node.bus1), ROUTED_BUS1[0])
        await _configure(router, shmif_end(to_node.bus2), ROUTED_BUS2[0], name="shmif1")
        async with node_process(f"unix://{workdir}/far.sock") as (far, _):
            await _configure(far, shmif_end(to_node.bus2), ROUTED_BUS2[1])
            await far.call("route_add", destination="default", gateway=ROUTED_BUS2[0])
            figures["rumpnet"] = {"round_trip": await _routed_ping(to_node, ROUTED_BUS2[1], settings),
                                  "udp_64": await one_way(to_node, seconds, 64)}
        if host is not None:
            try:
                try:
                    await trio.to_thread.run_sync(host.make)
                    await _router_to_tap(router, host)
                except (ScenarioError, OSError) as e:  # the host's side, not rumpnet's
                    skipped["forwarding_tap"] = f"making the tap: {e}"
                    return
                linux = ROUTED_TAP[1].split("/")[0]
                to_linux = RoutedEnds(workdir, *ROUTED_BUS1[3:5], receiver=linux, netns=host.netns)
                figures["rumpnet_tap"] = {"round_trip": await _routed_ping(to_linux, linux, settings),
                                          "udp_64": await one_way(to_linux, seconds, 64)}
                report["tcp"]["rumpnet_tap"] = await tcp_bulk(to_linux, seconds)
            finally:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(host.close)


# x -- m -- y over two veth pairs, m forwarding, x and y routed through it
FORWARDING = Namespaces((tuple(zip(FORWARD_NETNS[:2], FORWARD_VETH[:2], FORWARD_ADDRESSES[:2])),
                         tuple(zip(FORWARD_NETNS[1:], FORWARD_VETH[2:], FORWARD_ADDRESSES[2:]))),
                        routes=((FORWARD_NETNS[0], FORWARD_ADDRESSES[1]), (FORWARD_NETNS[2], FORWARD_ADDRESSES[2])),
                        forwarder=FORWARD_NETNS[1])


async def linux_forwarding(settings):
    """(e): ping(8) and the kernel's UDP from x to y through m."""
    async with namespaces(FORWARDING) as ends:
        return {"round_trip": await linux_ping(settings, ends),
                "udp_64": await one_way(ends, settings.udp_seconds, 64)}


def added_per_hop(report):
    """What one router adds to a round trip's median: routed minus direct, on each stack measured both ways."""
    trips, forwarded = report["round_trip"], report["forwarding"]
    out = {}
    for stack, direct in (("rumpnet", "stack"), ("linux", "linux")):
        if stack in forwarded and direct in trips:
            out[stack] = forwarded[stack]["round_trip"]["median_us"] - trips[direct]["median_us"]
    return out


# -- start-up of a scenario ----------------------------------------------------------------

STARTUP_HOSTS = 30  # with the two routers, the 32 nodes the start-up figure is for
STARTUP_LIMIT = 120  # seconds the start-up helper may take before the measurement fails


def four_buses(hosts=STARTUP_HOSTS):
    """A scenario's text: four buses, r1 joining b1, b2 and b3, r2 joining b3 and b4, hosts spread over them."""
    lines = ['buses = ["b1", "b2", "b3", "b4"]',
             "[nodes.r1]", 'stack = "router"', 'interfaces.shmif0 = { bus = "b1", inet = "10.0.1.1/24" }',
             'interfaces.shmif1 = { bus = "b2", inet = "10.0.2.1/24" }',
             'interfaces.shmif2 = { bus = "b3", inet = "10.0.3.1/24" }', 'routes = { "10.0.4.0/24" = "10.0.3.2" }',
             "[nodes.r2]", 'stack = "router"', 'interfaces.shmif0 = { bus = "b3", inet = "10.0.3.2/24" }',
             'interfaces.shmif1 = { bus = "b4", inet = "10.0.4.1/24" }', 'routes = { default = "10.0.3.1" }']
    for n in range(hosts):
        bus = n % 4 + 1
        routes = {4: '"10.0.4.1"', 3: '"10.0.3.1", "10.0.4.0/24" = "10.0.3.2"'}.get(bus, f'"10.0.{bus}.1"')
        lines += [f"[nodes.h{n}]", f'interfaces.shmif0 = {{ bus = "b{bus}", inet = "10.0.{bus}.{10 + n}/24" }}',
                  f"routes = {{ default = {routes} }}"]
    return "\n".join(lines) + "\n"


def _startup(spec):
    """Run the four-bus scenario as `rumpnet run` starts it; report when every node answered a ping from r1.

    The nodes are forked from this helper, before any trio loop runs in it.
    """
    from ..scenario import ScenarioError, load  # noqa: PLC0415 (the scenario package imports the commands)
    from ..scenario.pingall import reachability  # noqa: PLC0415
    from ..scenario.runner import Run  # noqa: PLC0415
    path = os.path.join(spec["workdir"], "four-buses.toml")
    with open(path, "w") as file:
        file.write(four_buses())
    run = Run(load(path), os.path.join(spec["workdir"], "four-buses"))
    begin = time.monotonic()
    try:
        run.__enter__()
    except ScenarioError as e:  # a node that could not start: out of descriptors or inotify instances
        _emit({"error": str(e)})
        return
    try:  # entered above (not with `with`, which would start the nodes a second time)
        answered = trio.run(reachability, run.nodes_urls(), STARTUP_LIMIT / 2, ("r1",))["r1"]
        answering = time.monotonic() - begin
        _emit({"nodes": len(run.scenario.nodes), "listening_s": run.started, "configured_s": run.configured,
               "answering_s": answering, "answered": sum(answered.values()), "pinged": len(answered),
               "node_rss_mb": run.resident() / 2**20})
    finally:
        run.stop()


async def startup():
    """The start-up figures of the 32-node scenario, from a helper process of its own."""
    with tempfile.TemporaryDirectory(prefix="rumpnet-bench-") as workdir:
        command = [sys.executable, "-m", "rumpnet.tools.bench", "startup", json.dumps({"workdir": workdir})]
        with tempfile.TemporaryFile() as stderr:  # kept as node_process keeps a node's
            async with _process(command, stderr=stderr) as proc:
                with _within(STARTUP_LIMIT, "starting the 32-node scenario"):
                    try:
                        figures = await _Lines(proc.stdout, "the start-up helper").next()
                    except BenchError:  # it exited before it reported
                        await proc.wait()
                        raise _exited("the start-up helper", proc, stderr) from None
                with _within(STARTUP_LIMIT, "stopping the 32-node scenario"):
                    await proc.wait()  # it stops its nodes: ended early, it would leave them running
    if "error" in figures:
        raise BenchError(f"32-node scenario: {figures['error']}")
    if figures["answered"] != figures["pinged"]:
        raise BenchError(f"32-node scenario: {figures['pinged'] - figures['answered']} of "
                         f"{figures['pinged']} addresses never answered r1")
    return figures


# -- the whole run -------------------------------------------------------------------------

async def run(settings, progress=lambda text: None):
    """Every figure of one run, as a plain dictionary (what --json prints)."""
    report = {"settings": vars(settings).copy(),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "kernel": platform.release(), "cpuidle": cpuidle_driver()},
              "round_trip": {}, "udp": {}, "tcp": {}, "forwarding": {}, "memory": {}, "skipped": {}}
    with cpu_latency(settings.cpu_latency_us):
        await _measure(settings, report, progress)
    report["added_per_hop_us"] = added_per_hop(report)
    report["ratios"] = ratios(report)
    return report


async def _measure(settings, report, progress):
    trips, udp = report["round_trip"], report["udp"]
    with tempfile.TemporaryDirectory(prefix="rumpnet-bench-") as workdir:
        progress(f"(a) the bus alone: {settings.pings} round trips, without and with trio")
        trips.update(await bus_round_trips(workdir, settings.pings, settings.interval))
        progress(f"(a) back to back: {BACK_TO_BACK * settings.pings} round trips")
        report["bus_back_to_back"] = await bus_back_to_back(workdir, BACK_TO_BACK * settings.pings)
        progress(f"(b) ping between two nodes: {settings.pings} pings, three ways")
        pings, report["memory"]["idle_node_rss_mb"] = await node_ping(workdir, settings)
        trips.update(pings)
        progress("UDP between two node processes")
        ends = NodeEnds(workdir)  # one for both, so that each figure gets a fresh bus
        udp["rumpnet"] = await udp_figures(settings, ends)
        progress("TCP between two node processes")
        report["tcp"]["rumpnet"] = await tcp_bulk(ends, settings.udp_seconds)
        progress(f"ping and UDP over an xvif pair (dom0 and a guest): {settings.pings} pings")
        trips["xvif"] = await xvif_ping(workdir, settings)
        udp["xvif"] = await udp_figures(settings, NodeEnds(workdir, xvif_pair))
        progress(f"(d) forwarding through a router node: {settings.pings} pings and UDP, across two buses and a tap")
        await forwarding(workdir, settings, report)
    progress(f"start-up of {STARTUP_HOSTS + 2} nodes on four buses joined by two routers")
    report["startup"] = await startup()
    why_not = linux_unavailable()
    if why_not:
        report["skipped"]["linux"] = report["skipped"]["forwarding_linux"] = why_not
    else:
        try:
            async with namespaces(VETH_PAIR) as ends:
                if shutil.which("ping") is None:
                    report["skipped"]["linux_ping"] = "no ping command (iputils-ping)"
                else:
                    progress(f"(c) the kernel's ping over veth: {settings.pings} pings")
                    trips["linux"] = await linux_ping(settings, ends)
                progress("UDP between the namespaces")
                udp["linux"] = await udp_figures(settings, ends)
                progress("TCP between the namespaces")
                try:
                    report["tcp"]["linux"] = await tcp_bulk(ends, settings.udp_seconds)
                except BenchError as e:
                    report["skipped"]["tcp_linux"] = str(e)
        except BenchError as e:
            report["skipped"]["linux"] = str(e)
        try:
            progress(f"(e) Linux forwarding between three namespaces: {settings.pings} pings and UDP")
            report["forwarding"]["linux"] = await linux_forwarding(settings)
        except BenchError as e:
            report["skipped"]["forwarding_linux"] = str(e)


def tcp_ratios(tcp):
    """Linux's TCP throughput over each of ours (node to node, node to Linux through the router)."""
    if "linux" not in tcp:
        return {}
    return {f"linux/{name} tcp Mbit/s": ratio(tcp["linux"]["mbit_per_s"], tcp[name]["mbit_per_s"])
            for name in ("rumpnet", "rumpnet_tap") if name in tcp}


def ratios(report):
    trips, udp = report["round_trip"], report["udp"]
    floor = report["bus_back_to_back"]["round_trips_per_s"]
    median = {name: figures["median_us"] for name, figures in trips.items()}
    out = {f"{name}/a": ratio(median[name], median["bus"]) for name in ("bus_trio", "stack", "control", "cli", "xvif")}
    for stack, added in report["added_per_hop_us"].items():
        out[f"{stack} hop added/a"] = ratio(added, median["bus"])
    if "linux" in median:
        out.update({f"{name}/c": ratio(median[name], median["linux"]) for name in ("stack", "cli")})
    if "linux" in udp:
        ours, theirs = udp["rumpnet"], udp["linux"]
        for size in UDP_SIZES:
            key = f"one_way_{size}"
            out[f"linux/rumpnet udp {size} B received/s"] = ratio(theirs[key]["received_per_s"],
                                                                  ours[key]["received_per_s"])
        for key, name in (("request_response", ""), ("request_response_busy_poll", ", busy_poll")):
            out[f"linux/rumpnet udp request/response/s{name}"] = ratio(
                theirs["request_response"]["round_trips_per_s"], ours[key]["round_trips_per_s"])
        out["linux/a request/response/s"] = ratio(theirs["request_response"]["round_trips_per_s"], floor)
    out["a/rumpnet udp request/response/s"] = ratio(floor, udp["rumpnet"]["request_response"]["round_trips_per_s"])
    out.update(tcp_ratios(report["tcp"]))
    return out


# -- the text report -----------------------------------------------------------------------

TRIP_LABELS = [("bus", "(a) the bus alone, no event loop"), ("bus_trio", "(a') the bus alone, awaited in trio"),
               ("stack", "(b) ping node to node, the stack"), ("control", "    a raw socket over a control socket"),
               ("cli", "    rumpnet ping, the command"),
               ("xvif", "(b') ping over an xvif pair, the stack"), ("linux", "(c) Linux ping over veth")]


TCP_LABELS = [("rumpnet", "node -> node, one bus"), ("rumpnet_tap", "node -> router -> Linux, a tap"),
              ("linux", "Linux -> Linux, veth")]


def format_tcp(tcp):
    """The TCP rows: one connection's bulk throughput on each path measured."""
    lines = ["", f"{'TCP bulk, one connection':40} {'Mbit/s':>10} {'MBytes':>8} {'retransmits':>12}"]
    for key, label in TCP_LABELS:
        f = tcp.get(key)
        if f:
            lines.append(f"{label:40} {f['mbit_per_s']:10.1f} {f['bytes'] / 2**20:8.1f} {f['retransmits']:12}")
    return lines


FORWARD_LABELS = [("rumpnet", "(d) node -> router -> node, two buses"), ("rumpnet_tap", "    node -> router -> Linux, a tap"),
                  ("linux", "(e) Linux forwarding, three namespaces")]


def format_report(report):
    s = report["settings"]
    m = report["machine"]
    lines = [f"rumpnet bench: {s['pings']} round trips {s['interval'] * 1000:g} ms apart; UDP and TCP {s['udp_seconds']:g} s "
             f"per figure ({m['cpus']} CPUs, Python {m['python']}, Linux {m['kernel']}, cpuidle {m['cpuidle'] or 'not shown'})",
             *([] if s["cpu_latency_us"] is None else
               [f"CPU latency held at {s['cpu_latency_us']} µs ({CPU_DMA_LATENCY}) for the run"]), "",
             f"{'round trip':40} {'min µs':>8} {'median µs':>10} {'p99 µs':>8} {'lost':>5}"]
    for key, label in TRIP_LABELS:
        f = report["round_trip"].get(key)
        if f:
            lines.append(f"{label:40} {f['min_us']:8.0f} {f['median_us']:10.0f} {f['p99_us']:8.0f} {f['lost']:5}")
    lines += ["", f"{'UDP':40} {'sent/s':>10} {'received/s':>11} {'loss %':>7}",
              f"{'(a) back to back, round trips/s':40} {report['bus_back_to_back']['round_trips_per_s']:10.0f}"]
    for stack, figures in report["udp"].items():
        for key, label in [(f"{kind}_{size}", f"{size} B {text}") for size in UDP_SIZES
                           for kind, text in (("one_way", "flat out"), ("paced", "paced"))]:
            f = figures.get(key)
            if f:
                lines.append(f"{stack + ' ' + label:40} {f['sent_per_s']:10.0f} {f['received_per_s']:11.0f} "
                             f"{f['loss_pct']:7.2f}")
        for key, label in (("request_response", "request/response, round trips/s"),
                           ("request_response_busy_poll", f"  the same, busy_poll {BUSY_POLL_US} µs")):
            if key in figures:
                lines.append(f"{stack + ' ' + label:40} {figures[key]['round_trips_per_s']:10.0f}")
    lines += format_tcp(report["tcp"])
    lines += ["", f"{'forwarding through one router':40} {'min µs':>8} {'median µs':>10} {'p99 µs':>8} {'lost':>5} "
                  f"{'64 B received/s':>16} {'hop adds µs':>12}"]
    for key, label in FORWARD_LABELS:
        f = report["forwarding"].get(key)
        if f:
            t, added = f["round_trip"], report["added_per_hop_us"].get(key)
            row = (f"{label:40} {t['min_us']:8.0f} {t['median_us']:10.0f} {t['p99_us']:8.0f} {t['lost']:5} "
                   f"{f['udp_64']['received_per_s']:16.0f}")
            lines.append(row if added is None else f"{row} {added:12.0f}")
    rss = report["memory"].get("idle_node_rss_mb")
    if rss is not None:
        lines += ["", f"{'resident memory of an idle node, MB':40} {rss:10.1f}"]
    up = report["startup"]
    lines += ["", f"start-up of {up['nodes']} nodes on four buses, s", f"{'    every node listening':40} "
              f"{up['listening_s']:10.2f}", f"{'    every node configured':40} {up['configured_s']:10.2f}",
              f"{'    every node answering a ping':40} {up['answering_s']:10.2f}",
              f"{'resident memory per node (median), MB':40} {up['node_rss_mb']:10.1f}"]
    lines += ["", "ratios (medians for round trips; a is the bus alone, no event loop):"]
    lines += [f"  {name:40} {value:8.2f}" for name, value in report["ratios"].items() if value is not None]
    for what, why in report["skipped"].items():
        lines.append(f"skipped {what}: {why}")
    return "\n".join(lines)


# -- helper processes' entry point ---------------------------------------------------------

HELPERS = {"bounce": _bounce, "bounce_pinger": _bounce_pinger, "udp": lambda spec: trio.run(_udp_helper, spec),
           "startup": _startup}

if __name__ == "__main__":
    HELPERS[sys.argv[1]](json.loads(sys.argv[2]))
