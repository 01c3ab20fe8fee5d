"""A scenario brought to life in a run directory: its nodes as processes, configured, its steps run.

The run directory holds everything a run leaves: the scenario file, a bus
file per bus (BUS.bus) and its capture (BUS.pcap), a control socket and a log
per node (NODE.sock, NODE.log), and run.json, which `rumpnet down` and
`rumpnet pingall` read.

Nodes are forked from this process before it starts its own trio loop, each
running `rumpnet server`'s node (serve_node) in a session of its own: a fork
shares the interpreter already loaded, so 32 nodes start in a fraction of
what 32 fresh interpreters would take. They are then configured in parallel
over their control sockets, as rumpclient programs would.
"""

from dataclasses import dataclass
import ipaddress
import json
import os
from pathlib import Path
import shlex
import signal
import statistics
import subprocess
import sys
import time

import dpkt
import trio

from ..client import connect
from ..kern.server import report_and_exit, serve_in_child
from ..kern.tasks import only
from ..net.bus import Bus, create
from . import hostside
from .schema import TAP_NAME, ScenarioError

RUN_FILE = "run.json"
RUN_FILE_MAX = 4 * 1024 * 1024  # bytes of run.json read at most
HALT_WAIT = 5.0  # seconds a node has to halt before it is killed
RUNNING = "running"  # what a background step got when it started as expected
BACKGROUND_POLL = 0.05  # seconds between looks at a background step's output
OUTPUT_KEPT = 64 * 1024  # bytes of a step's output kept for its expectation and the log


@dataclass
class Result:
    """What one step did: its expectation, what came, and whether that is what was expected."""

    step: object
    got: str
    ok: bool
    seconds: float
    output: str = ""


def command_argv(words):
    return [sys.executable, "-m", "rumpnet", *words]


class Run:
    """A scenario's nodes in a run directory. As a context manager: started and configured, then stopped."""

    def __init__(self, scenario, rundir=None, taps_on_host=False):
        hostside.check(scenario, taps_on_host)  # a refused run leaves nothing behind, not even its directory
        self.scenario = scenario
        self.dir = Path(scenario.new_rundir() if rundir is None else rundir).absolute()
        self.pids = {}  # node -> pid of its process, while it may be running
        self.deaths = {}  # node -> how its process ended, when it did before the run stopped it
        self.started = self.configured = 0.0  # seconds each took
        self.background = []  # (step, process) of background steps
        self.taps_on_host = taps_on_host  # make the scenario's taps on the host, not in a namespace of the run
        self.netns = None  # the namespace of the run's taps, while it exists
        self.made_taps = []  # the taps this run made, while they exist
        self.kept = False

    def socket(self, node):
        return self.dir / f"{node}.sock"

    def url(self, node):
        return f"unix://{self.socket(node)}"

    def bus(self, name):
        return self.dir / f"{name}.bus"

    # -- starting and stopping ------------------------------------------------------------------

    def spawn(self):
        """Make the run directory and its buses, fork every node, and wait until all listen.

        Call before any trio loop runs in this process: a forked node runs its own.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        if any(self.dir.glob("*.sock")):
            raise ScenarioError(f"{self.dir}: nodes of another run are here (rumpnet down {self.dir} first)")
        (self.dir / "scenario.toml").write_bytes(self.scenario.path.read_bytes())
        if self.scenario.taps:
            self.netns, self.made_taps = hostside.make(self.scenario, self.taps_on_host)
        for name in self.scenario.buses:
            create(self.bus(name)).close()
        begin = time.monotonic()
        pipes = {name: self._fork(node) for name, node in self.scenario.nodes.items()}
        self._write_run_file()
        problems = []
        for name, pipe in pipes.items():
            with os.fdopen(pipe, "rb") as answer:
                said = answer.read().decode(errors="replace")
            if said != "ready":
                problems.append(f"node {name}: {said or 'exited before it was ready'}")
        self.started = time.monotonic() - begin
        if problems:
            self.stop()
            raise ScenarioError("; ".join(problems))

    def _fork(self, node):
        readable, writable = os.pipe()
        log = os.open(self.dir / f"{node.name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        pid = os.fork()
        if pid:
            os.close(writable)
            os.close(log)
            self.pids[node.name] = pid
            return readable
        try:  # the node: a session of its own, so Ctrl-C in the terminal reaches only the runner
            os.close(readable)
            os.setsid()
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            if self.netns:
                hostside.enter(self.netns)
        except BaseException as e:
            report_and_exit(writable, e)
        serve_in_child(writable, str(self.socket(node.name)), node.stack)

    def _write_run_file(self):
        nodes = {name: {"url": self.url(name), "pid": pid, "addresses": self.scenario.nodes[name].addresses()}
                 for name, pid in self.pids.items()}
        host = {"netns": self.netns, "taps": self.made_taps, "kept": self.kept}  # rumpnet down removes them if kept
        text = json.dumps({"scenario": self.scenario.name, "nodes": nodes, "host": host,
                           "buses": {name: str(self.bus(name)) for name in self.scenario.buses}}, indent=1)
        (self.dir / RUN_FILE).write_text(text + "\n")

    def reap(self):
        """Note the nodes whose process ended; their names, newly dead."""
        died = []
        for name, pid in list(self.pids.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                del self.pids[name]
                self.deaths[name] = _ending(status)
                died.append(name)
        return died

    def stop(self):
        """Halt every node still running (SIGTERM, then SIGKILL after HALT_WAIT) and wait for it."""
        for pid in self.pids.values():
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + HALT_WAIT
        while self.pids and time.monotonic() < deadline:
            for name, pid in list(self.pids.items()):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    del self.pids[name]
            time.sleep(0.01)
        for pid in self.pids.values():
            _signal(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        self.pids.clear()
        for name in self.scenario.nodes:
            self.socket(name).unlink(missing_ok=True)
        if self.made_taps:
            hostside.remove(self.netns, self.made_taps)
            self.made_taps, self.netns = [], None

    def resident(self):
        """The median resident memory of the running nodes, in bytes (Linux's VmRSS); 0 when unknown."""
        sizes = []
        for pid in self.pids.values():
            try:
                with open(f"/proc/{pid}/status") as status:
                    sizes += [int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:")]
            except (OSError, ValueError, IndexError):
                continue
        return statistics.median(sizes) if sizes else 0

    def keep(self):
        """Leave the nodes (and the taps) when this process exits: `rumpnet down` removes them."""
        self.kept = True
        self._write_run_file()
        self.pids.clear()
        self.made_taps = []

    # -- configuring ----------------------------------------------------------------------------

    async def configure(self):
        """Every node's interfaces, sysctls and routes, the nodes in parallel."""
        begin = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                for node in self.scenario.nodes.values():
                    nursery.start_soon(self._configure, node)
        except BaseExceptionGroup as group:  # trio's nurseries always raise groups: the first node's error
            if not only(group, ScenarioError):
                raise
            while isinstance(group, BaseExceptionGroup):
                group = group.exceptions[0]
            raise group from None
        self.configured = trio.current_time() - begin

    async def _configure(self, node):
        try:
            async with connect(self.url(node.name)) as remote:
                for key, value in node.sysctl.items():
                    await remote.call("sysctl_set", name=key, value=value)
                for interface in node.interfaces:
                    await remote.call("if_create", name=interface.name)
                    await remote.call("if_linkstr", name=interface.name,
                                      path=str(self.bus(interface.bus)) if interface.bus else interface.tap)
                    if interface.address:
                        await remote.call("if_address", name=interface.name, address=interface.address)
                    else:
                        await remote.call("if_up", name=interface.name, up=True)
                    if interface.impair:
                        await remote.call("if_impair", name=interface.name, **interface.impair)
                for destination, gateway in node.routes:
                    await remote.call("route_add", destination=destination, gateway=gateway)
        except OSError as e:
            raise ScenarioError(f"node {node.name}: {e.strerror or e}") from None

    # -- steps ----------------------------------------------------------------------------------

    async def step(self, step):
        """Run one step and judge it."""
        begin = trio.current_time()
        if step.run is None:
            await trio.sleep(step.wait)
            return Result(step, "waited", True, trio.current_time() - begin)
        if step.node in self.deaths:
            return Result(step, f"node {self.deaths[step.node]}", False, 0.0)
        if step.run[0] == "pingall":
            from .pingall import pingall_text  # noqa: PLC0415 (pingall imports this module)
            status, output = await pingall_text(self.nodes_urls(), *map(float, step.run[2:3]))
        elif step.background:
            status, output = await self._background(step)
            if status == RUNNING:
                return Result(step, RUNNING, True, trio.current_time() - begin, output)
        else:
            status, output = await self._command(step)
        await trio.sleep(0 if step.background else step.wait)
        return self.judge(step, status, output, trio.current_time() - begin)

    async def _background(self, step):
        """Start a background step: (RUNNING, output) once it runs and printed its pattern, if it has one.

        With a pattern, the step waits until the command has printed it (a
        server saying it listens), so the next step does not race its start.
        """
        env = {**os.environ, "RUMP_SERVER": self.url(step.node)}
        with self._log(step.node) as log:  # the child keeps its own copy of the descriptor
            log.write(f"$ rumpnet {shlex.join(step.run)} &\n".encode())
            log.flush()
            start = log.tell()
            process = await trio.lowlevel.open_process(command_argv(step.run), env=env, stdin=subprocess.DEVNULL,
                                                       stdout=log, stderr=subprocess.STDOUT)
        self.background.append((step, process))
        output = ""
        with trio.move_on_after(step.timeout):
            while process.returncode is None:
                with open(self.dir / f"{step.node}.log", "rb") as log:
                    log.seek(start)
                    output = log.read(OUTPUT_KEPT).decode(errors="replace")
                if step.output is None or step.output.search(output):
                    await trio.sleep(step.wait)
                    break
                await trio.sleep(BACKGROUND_POLL)
        if process.returncode is None and (step.output is None or step.output.search(output)):
            return RUNNING, output
        return process.returncode, output  # ended, or None: no pattern before the timeout

    async def _command(self, step):
        env = {**os.environ, "RUMP_SERVER": self.url(step.node)}
        with self._log(step.node) as log:
            log.write(f"$ rumpnet {shlex.join(step.run)}\n".encode())
        with trio.move_on_after(step.timeout):
            done = await trio.run_process(command_argv(step.run), env=env, stdin=step.input.encode(), capture_stdout=True,
                                          stderr=subprocess.STDOUT, check=False)
            output = done.stdout[-OUTPUT_KEPT:].decode(errors="replace")
            with self._log(step.node) as log:
                log.write(done.stdout[-OUTPUT_KEPT:] + f"[exit status {done.returncode}]\n".encode())
            return done.returncode, output
        return None, f"no end after {step.timeout:g} s"

    def _log(self, node):
        return open(self.dir / f"{node}.log", "ab")

    def judge(self, step, status, output, seconds):
        if status is None:
            return Result(step, "timed out", False, seconds, output)
        if step.node in self.deaths:
            return Result(step, f"node {self.deaths[step.node]}", False, seconds, output)
        got = "success" if status == 0 else f"failure ({status})"
        ok = (status == 0) == (step.expect == "success")
        if step.output is not None:
            matched = step.output.search(output) is not None
            got += ", output matched" if matched else ", output did not match"
            ok = ok and matched
        return Result(step, got, ok, seconds, output)

    async def finish_background(self):
        """End the background steps still running (SIGINT, as Ctrl-C would); a Result for each that failed."""
        results = []
        for step, process in self.background:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
            with trio.move_on_after(HALT_WAIT):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            if process.returncode not in (0, -signal.SIGINT, 130) and step.expect == "success":
                results.append(Result(step, f"ended with status {process.returncode}", False, 0.0))
        self.background = []
        return results

    def nodes_urls(self):
        return {name: (self.url(name), node.addresses()) for name, node in self.scenario.nodes.items()
                if name not in self.deaths}

    # -- the Python API -------------------------------------------------------------------------

    def __enter__(self):
        self.spawn()
        try:
            trio.run(self.configure)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def run(self, node, command, timeout=60):
        """Run a command in a node as typed (`"ping -c 1 10.0.0.2"`): the CompletedProcess, text output."""
        if node not in self.scenario.nodes:
            raise ScenarioError(f"no node {node!r} in {self.scenario.name}")
        words = shlex.split(command)
        if words[:1] == ["rumpnet"]:
            words = words[1:]
        return subprocess.run(command_argv(words), env={**os.environ, "RUMP_SERVER": self.url(node)},
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def frames(self, bus):
        """The frames now on a bus, oldest first, as dpkt Ethernet objects."""
        if bus not in self.scenario.buses:
            raise ScenarioError(f"no bus {bus!r} in {self.scenario.name}")
        with Bus(self.bus(bus), readonly=True) as opened:
            return [dpkt.ethernet.Ethernet(record.frame) for record in opened.records() if record.frame]


def _ending(status):
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def _signal(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _check_host(host):
    """What rumpnet down would remove as root must be what a run makes: its namespace and tap names."""
    if host.get("netns") is not None and not hostside.NETNS_NAME.fullmatch(str(host["netns"])):
        raise ValueError("not a namespace of a run")
    if not isinstance(host.get("taps", []), list) or not all(
            isinstance(tap, str) and TAP_NAME.fullmatch(tap) for tap in host.get("taps", [])):
        raise ValueError("not a list of tap names")


def read_run_file(rundir):
    """run.json of a run directory: {"nodes": {name: {"url", "pid", "addresses"}}, "buses": ...}."""
    path = Path(rundir) / RUN_FILE
    try:
        data = json.loads(path.read_bytes()[:RUN_FILE_MAX])
        for node in data["nodes"].values():
            if not isinstance(node["url"], str):
                raise ValueError("a url is not a string")
            for address in node["addresses"]:
                ipaddress.IPv4Address(address)
        _check_host(data.get("host") or {})
    except OSError as e:
        raise ScenarioError(f"{path}: {e.strerror} (is {rundir} a run directory of rumpnet run?)") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ScenarioError(f"{path}: not a run file of rumpnet run") from None
    return data
