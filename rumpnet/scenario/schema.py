"""A scenario file (TOML) read and checked: buses, nodes, their interfaces, and the steps.

Everything a run needs is checked here, before any node starts: unknown keys,
names that refer to nothing, addresses given twice, profiles that do not load,
commands that do not exist. A mistake is a ScenarioError naming the file, the
line and what to fix. tomllib gives lines only for syntax errors, so the line
of a key is found by scanning the text for it (Locator).
"""

from dataclasses import dataclass, field
import difflib
import ipaddress
import os
from pathlib import Path
import pwd
import re
import shlex
import tempfile
import tomllib

from ..cli import COMMANDS
from ..cli.common import Usage
from ..cli.ifconfig import parse_impairment
from ..kern.profile import ProfileError
from ..kern.profile import load as load_profile
from ..kern.sysctl import Sysctl, SysctlError
from ..net.ifnet import parse_address

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
INTERFACE = re.compile(r"(shmif|virt)(0|[1-9][0-9]?)")
NOT_IN_A_NODE = {"server", "dumpbus", "pcapin", "bench", "demo", "run", "down", "pingall", "graph"}
RUN_WITHOUT_NODE = {"pingall"}  # steps that act on every node of the run
MAX_WAIT = 3600.0  # seconds a step may wait or run
DEFAULT_TIMEOUT = 60.0
MAX_NODES = 256
MAX_STEPS = 1024
MAX_TAPS = 256
TOP_KEYS = ("name", "description", "buses", "taps", "nodes", "steps")
NODE_KEYS = ("stack", "interfaces", "routes", "sysctl")
INTERFACE_KEYS = ("bus", "tap", "inet", "impair")
TAP_KEYS = ("name", "user", "inet")
TAP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,14}")  # a Linux interface name: at most 15 characters
STEP_KEYS = ("node", "run", "input", "background", "wait", "expect", "output", "timeout")


class ScenarioError(Exception):
    """A scenario that cannot run: `FILE:LINE: what is wrong and what to do`."""


@dataclass
class Interface:
    name: str
    bus: str | None = None  # shmif: the bus's name
    tap: str | None = None  # virt: the host's tap device
    address: str | None = None  # A.B.C.D/N
    impair: dict = field(default_factory=dict)  # the if_impair call's arguments

    @property
    def network(self):
        return ipaddress.IPv4Interface(self.address).network if self.address else None


@dataclass
class Tap:
    """A tap the run makes on the host's side (as root) for a virt interface."""

    name: str
    user: str  # who may open it: the nodes' user
    address: str | None = None  # the host side's A.B.C.D/N


@dataclass
class Node:
    name: str
    stack: str = "host"
    interfaces: list = field(default_factory=list)
    routes: list = field(default_factory=list)  # (destination, gateway)
    sysctl: dict = field(default_factory=dict)

    def addresses(self):
        return [i.address.split("/")[0] for i in self.interfaces if i.address]


@dataclass
class Step:
    number: int  # from 1, as the summary shows it
    line: int
    node: str | None = None
    run: list | None = None  # the command's words, without "rumpnet"
    input: str = ""  # its standard input
    background: bool = False
    wait: float = 0.0  # seconds to wait after the command (or alone)
    expect: str = "success"
    output: re.Pattern | None = None
    timeout: float = DEFAULT_TIMEOUT

    @property
    def text(self):
        return shlex.join(self.run) if self.run else f"wait {self.wait:g}s"


@dataclass
class Scenario:
    """A checked scenario. `with scenario as run:` starts its nodes (a runner.Run) and stops them after."""

    path: Path
    name: str
    description: str
    buses: list
    nodes: dict  # name -> Node, in the file's order
    steps: list
    taps: list = field(default_factory=list)
    rundir: Path | None = None  # where `with` runs it: None is a new temporary directory

    def new_rundir(self):
        """A new run directory in $TMPDIR, named after the scenario (short: sockets' paths are bounded)."""
        return Path(tempfile.mkdtemp(prefix="rumpnet-" + re.sub(r"[^A-Za-z0-9_-]", "_", self.name)[:24] + "-"))

    def __enter__(self):
        from .runner import Run  # noqa: PLC0415 (the runner imports this module)
        self._run = Run(self, self.rundir)
        return self._run.__enter__()

    def __exit__(self, *exc):
        self._run.__exit__(*exc)


def load(path):
    """The scenario in the file at path; ScenarioError when it cannot run."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(f"{path}: {getattr(e, 'strerror', None) or e}") from None
    return parse(text, path)


def parse(text, path=Path("scenario.toml")):
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        match = re.search(r"\(at line (\d+), column \d+\)", str(e))
        line = match.group(1) if match else "1"
        raise ScenarioError(f"{path}:{line}: {str(e).split(' (at ')[0]} (this is not valid TOML)") from None
    return _Checker(text, Path(path)).scenario(data)


class _Checker:
    def __init__(self, text, path):
        self.path = path
        self.locate = Locator(text)

    def fail(self, where, message):
        raise ScenarioError(f"{self.path}:{self.locate(where)}: {message}")

    def keys(self, table, allowed, where, what):
        if not isinstance(table, dict):
            self.fail(where, f"{what} must be a table")
        for key in table:
            if key not in allowed:
                self.fail((*where, key), f"unknown key {key!r} in {what}{_suggest(key, allowed)} "
                                         f"(known: {', '.join(allowed)})")

    def typed(self, value, kind, where, what):
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            names = {str: "a string", bool: "true or false", list: "a list", dict: "a table",
                     (int, float): "a number"}
            self.fail(where, f"{what} must be {names.get(kind, kind)}")
        return value

    def scenario(self, data):
        self.keys(data, TOP_KEYS, (), "the scenario")
        name = self.typed(data.get("name", self.path.stem), str, ("name",), "name")
        description = self.typed(data.get("description", ""), str, ("description",), "description")
        buses = self.typed(data.get("buses", []), list, ("buses",), "buses")
        for bus in buses:
            self.named(bus, ("buses",), "a bus name")
        if len(set(buses)) != len(buses):
            self.fail(("buses",), "a bus is named twice in buses")
        nodes_table = self.typed(data.get("nodes", {}), dict, ("nodes",), "[nodes]")
        if not nodes_table:
            self.fail(("nodes",), "no nodes: add a [nodes.NAME] table for each node")
        if len(nodes_table) > MAX_NODES:
            self.fail(("nodes",), f"more than {MAX_NODES} nodes")
        taps_list = self.typed(data.get("taps", []), list, ("taps",), "taps")
        if len(taps_list) > MAX_TAPS:
            self.fail(("taps",), f"more than {MAX_TAPS} taps")
        taps = [self.tap(i, table) for i, table in enumerate(taps_list)]
        if len({tap.name for tap in taps}) != len(taps):
            self.fail(("taps",), "a tap is named twice in [[taps]]")
        nodes = {name: self.node(name, table, buses) for name, table in nodes_table.items()}
        self.used_taps(taps, nodes)
        self.unique_addresses(nodes)
        steps = self.typed(data.get("steps", []), list, ("steps",), "steps")
        if len(steps) > MAX_STEPS:
            self.fail(("steps",), f"more than {MAX_STEPS} steps")
        return Scenario(self.path, name, description, buses, nodes,
                        [self.step(i, table, nodes) for i, table in enumerate(steps)], taps)

    def tap(self, index, table):
        where = ("taps", index)
        self.keys(table, TAP_KEYS, where, f"tap {index + 1}")
        if "name" not in table:
            self.fail(where, f"tap {index + 1} needs name = \"tapN\": the tap a virt interface names")
        name = self.typed(table["name"], str, (*where, "name"), "a tap's name")
        if not TAP_NAME.fullmatch(name):
            self.fail((*where, "name"), f"{name!r} is not an interface name: a letter, then up to 14 letters, "
                                        f"digits, - or _")
        user = self.typed(table.get("user", pwd.getpwuid(os.getuid()).pw_name), str, (*where, "user"), "user")
        try:
            pwd.getpwnam(user)
        except (KeyError, ValueError):  # ValueError: a NUL in the name
            self.fail((*where, "user"), f"tap {name}: no user {user!r} on this machine")
        tap = Tap(name, user)
        if "inet" in table:
            tap.address = self.inet(table["inet"], (*where, "inet"), f"tap {name}")
        return tap

    def used_taps(self, taps, nodes):
        """A tap no virt interface opens is a mistake (a typo in one of the two names, most likely)."""
        used = {interface.tap for node in nodes.values() for interface in node.interfaces}
        for index, tap in enumerate(taps):
            if tap.name not in used:
                self.fail(("taps", index, "name"), f"tap {tap.name}: no virt interface uses it: give one "
                                                   f"tap = \"{tap.name}\", or leave out this [[taps]] table")

    def inet(self, value, where, what):
        address = self.typed(value, str, where, "inet")
        try:
            _, prefixlen = parse_address(address)
        except ValueError:
            prefixlen = None
        if prefixlen is None:
            self.fail(where, f"{what}: inet {address!r} is not A.B.C.D/N")
        return address

    def named(self, name, where, what):
        if not isinstance(name, str) or not NAME.fullmatch(name):
            self.fail(where, f"{name!r} is not {what}: a letter, then up to 31 letters, digits, - or _")
        return name

    def node(self, name, table, buses):
        where = ("nodes", name)
        self.named(name, where, "a node name")
        self.keys(table, NODE_KEYS, where, f"node {name}")
        stack = self.typed(table.get("stack", "host"), str, (*where, "stack"), "stack")
        if stack.endswith(".toml") or "/" in stack:
            stack = str(self.path.parent / stack)
        try:
            load_profile(stack)
        except (ProfileError, TypeError, ValueError) as e:
            self.fail((*where, "stack"), f"node {name}: {e}")
        node = Node(name, stack)
        interfaces = self.typed(table.get("interfaces", {}), dict, (*where, "interfaces"), "interfaces")
        for ifname, spec in interfaces.items():
            node.interfaces.append(self.interface(name, ifname, spec, buses))
        sysctl = self.typed(table.get("sysctl", {}), dict, (*where, "sysctl"), "sysctl")
        check = Sysctl()
        for key, value in sysctl.items():
            try:
                check.set(key, value)
            except SysctlError as e:
                self.fail((*where, "sysctl", key), f"node {name}: sysctl {e}")
            node.sysctl[key] = value
        routes = self.typed(table.get("routes", {}), dict, (*where, "routes"), "routes")
        for destination, gateway in routes.items():
            node.routes.append(self.route(node, destination, gateway, (*where, "routes", destination)))
        return node

    def interface(self, node, ifname, spec, buses):
        where = ("nodes", node, "interfaces", ifname)
        if not INTERFACE.fullmatch(ifname):
            self.fail(where, f"node {node}: {ifname!r} is not an interface name (shmifN or virtN)")
        self.keys(spec, INTERFACE_KEYS, where, f"{node}'s {ifname}")
        interface = Interface(ifname)
        if ifname.startswith("shmif"):
            if "bus" not in spec:
                self.fail(where, f"{node}'s {ifname} needs bus = \"NAME\", one of buses")
            if "tap" in spec:
                self.fail((*where, "tap"), f"{node}'s {ifname}: tap is for virt interfaces")
            bus = self.typed(spec["bus"], str, (*where, "bus"), "bus")
            if bus not in buses:
                self.fail((*where, "bus"), f"{node}'s {ifname}: no bus {bus!r}{_suggest(bus, buses)}; "
                                           f"add it to buses = [...]")
            interface.bus = bus
        else:
            if "bus" in spec:
                self.fail((*where, "bus"), f"{node}'s {ifname}: a virt interface has tap = \"tapN\", not a bus")
            interface.tap = self.typed(spec.get("tap", f"tap{ifname[4:]}"), str, (*where, "tap"), "tap")
        if "inet" in spec:
            interface.address = self.inet(spec["inet"], (*where, "inet"), f"{node}'s {ifname}")
        if "impair" in spec:
            text = self.typed(spec["impair"], str, (*where, "impair"), "impair")
            words = text.split()
            try:
                args, last = parse_impairment(words, 0)
                if last != len(words) - 1:
                    raise Usage(f"{words[last + 1]!r} is not an impairment")
            except Usage as e:
                self.fail((*where, "impair"), f"{node}'s {ifname}: impair {text!r}: {e} (as ifconfig takes it)")
            interface.impair = args
        return interface

    def route(self, node, destination, gateway, where):
        try:
            if destination != "default":
                ipaddress.IPv4Network(destination)
        except ValueError:
            self.fail(where, f"node {node.name}: route {destination!r}: not default, A.B.C.D or A.B.C.D/N")
        try:
            gw = ipaddress.IPv4Address(self.typed(gateway, str, where, "a route's gateway"))
        except ValueError:
            self.fail(where, f"node {node.name}: route {destination}: gateway {gateway!r} is not an IPv4 address")
        if not any(i.network and gw in i.network for i in node.interfaces):
            self.fail(where, f"node {node.name}: route {destination}: gateway {gw} is on none of its networks")
        return destination, str(gw)

    def unique_addresses(self, nodes):
        seen = {}
        for node in nodes.values():
            for interface in node.interfaces:
                if not interface.address:
                    continue
                address = interface.address.split("/")[0]
                if address in seen:
                    self.fail(("nodes", node.name, "interfaces", interface.name, "inet"),
                              f"{address} is given twice: {seen[address]} and {node.name}'s {interface.name}")
                seen[address] = f"{node.name}'s {interface.name}"

    def step(self, index, table, nodes):
        where = ("steps", index)
        self.keys(table, STEP_KEYS, where, f"step {index + 1}")
        step = Step(index + 1, self.locate(where))
        if "node" in table:
            step.node = self.typed(table["node"], str, (*where, "node"), "node")
            if step.node not in nodes:
                self.fail((*where, "node"), f"step {index + 1}: no node {step.node!r}{_suggest(step.node, nodes)}")
        if "run" in table:
            step.run = self.command(step, self.typed(table["run"], str, (*where, "run"), "run"), (*where, "run"))
        for key in ("wait", "timeout"):
            if key in table:
                value = self.typed(table[key], (int, float), (*where, key), key)
                if not 0 <= value <= MAX_WAIT:
                    self.fail((*where, key), f"step {index + 1}: {key} must be seconds from 0 to {MAX_WAIT:g}")
                setattr(step, key, float(value))
        if step.run is None and "wait" not in table:
            self.fail(where, f"step {index + 1}: needs run = \"COMMAND\" (with node = \"NAME\") or wait = SECONDS")
        step.input = self.typed(table.get("input", ""), str, (*where, "input"), "input")
        step.background = self.typed(table.get("background", False), bool, (*where, "background"), "background")
        step.expect = self.typed(table.get("expect", "success"), str, (*where, "expect"), "expect")
        if step.expect not in ("success", "failure"):
            self.fail((*where, "expect"), f"step {index + 1}: expect must be \"success\" or \"failure\"")
        if "output" in table:
            pattern = self.typed(table["output"], str, (*where, "output"), "output")
            try:
                step.output = re.compile(pattern, re.MULTILINE)
            except re.error as e:
                self.fail((*where, "output"), f"step {index + 1}: output {pattern!r} is not a regular expression: {e}")
        if step.run is None and (step.background or step.output or step.input or "expect" in table):
            self.fail(where, f"step {index + 1}: background, expect, input and output need a command to run")
        return step

    def command(self, step, text, where):
        try:
            words = shlex.split(text)
        except ValueError as e:
            self.fail(where, f"step {step.number}: {text!r}: {e}")
        if words[:1] == ["rumpnet"]:
            words = words[1:]
        if not words:
            self.fail(where, f"step {step.number}: run is empty")
        command = words[0]
        if command in RUN_WITHOUT_NODE:
            if step.node:
                self.fail(where, f"step {step.number}: {command} runs from every node: leave out node")
            if not (len(words) == 1 or len(words) == 3 and words[1] == "-w" and _seconds(words[2])):
                self.fail(where, f"step {step.number}: {command} takes only -w SECONDS")
            return words
        if command not in COMMANDS or command in NOT_IN_A_NODE:
            known = sorted(set(COMMANDS) - NOT_IN_A_NODE)
            self.fail(where, f"step {step.number}: {command!r} is not a command a node runs"
                             f"{_suggest(command, known)} (known: {', '.join(known)}, and pingall without a node)")
        if not step.node:
            self.fail(where, f"step {step.number}: {command} needs node = \"NAME\": the node it runs in")
        return words


def _seconds(text):
    try:
        return 0 < float(text) <= MAX_WAIT
    except ValueError:
        return False


def _suggest(word, known):
    close = difflib.get_close_matches(str(word), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Locator:
    """The line of a key in TOML text, found by scanning: tomllib keeps no positions.

    A path is the keys from the top (an int picks an [[array]] table); each
    key is looked for from the line of the one before it, so the first
    match after its parent wins. Good enough to point a person at a mistake.
    """

    def __init__(self, text):
        self.lines = text.splitlines()

    def __call__(self, path):
        at = 0
        parents = []
        for key in path:
            if isinstance(key, int):
                header = re.compile(r"\s*\[\[\s*" + r"\s*\.\s*".join(map(re.escape, parents)) + r"\s*\]\]")
                hits = [n for n, line in enumerate(self.lines) if header.match(line)]
                if key < len(hits):
                    at = hits[key]
                continue
            parents.append(key)
            name = re.escape(key)
            pattern = re.compile(rf"""(^|[\s.{{,\[])("{name}"|'{name}'|{name})\s*[=\].]""")
            for n in range(at, len(self.lines)):
                if not self.lines[n].lstrip().startswith("#") and pattern.search(self.lines[n]):
                    at = n
                    break
        return at + 1
