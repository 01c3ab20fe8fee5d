"""Every command page's "Errors" section, run as written.

Each `$ rumpnet ...` line of a page's Errors section is run against a fresh
node (unprivileged when the tests run as root) in a directory that stands for
the pages' /tmp/lesson; the line printed under it must be what the command
prints on standard error, and the exit status 1. What an example needs first
(an interface, a file, a second node) is set up from SETUP below, keyed by
the example's own text, so that the pages cannot drift from the code.
"""

import os
import pwd
import re
import shlex
from pathlib import Path

import dpkt
import pytest

from rumpnet.net.bus import BUS_SIZE, DATA_SIZE, HEADER, MAGIC
from rumpnet.testing import NodeProcess, run

PAGES = Path(__file__).parent.parent / "docs" / "commands"
LESSON = "/tmp/lesson"
_EXAMPLE = re.compile(r"^    \$ (?P<command>.*?)(?:\s+#\s*(?P<note>.*))?$")


def examples():
    """(page, command as written, its note, expected stderr line, whether output precedes it), every example."""
    found = []
    for page in sorted(PAGES.glob("*.md")):
        section = page.read_text().split("\n## Errors\n", 1)
        if len(section) < 2:
            continue
        lines = section[1].split("\n## ", 1)[0].splitlines()
        for n, line in enumerate(lines):
            match = _EXAMPLE.match(line)
            if not match:
                continue
            answer = []
            for following in lines[n + 1:]:
                if not following.startswith("    ") or following.startswith("    $ "):
                    break
                answer.append(following[4:])
            found.append((page.stem, match.group("command"), match.group("note"), answer[-1],
                          answer[:-1] == ["..."]))
    return found


# -- what an example needs before it runs -------------------------------------------------------

def bus_header(path, version=3, first=DATA_SIZE, last=0, size=BUS_SIZE):
    with open(path, "wb") as f:
        f.write(HEADER.pack(MAGIC, version, 0, first, last, 0, 0).ljust(size, b"\0"))


def pcap_file(path, frames, linktype=dpkt.pcap.DLT_EN10MB):
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=65535, linktype=linktype)
        for frame in frames:
            writer.writepkt(frame, ts=1_700_000_000)


def truncated_pcap(path):
    pcap_file(path, [b"\xff" * 42])
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 22)


def text_file(content):
    def write(path):
        Path(path).write_text(content)
    return write


ETHER_FRAME = b"\xff" * 6 + b"\x02\0\0\0\0\x01" + b"\x08\x06" + bytes(28)
FILES = {
    "half-a-bus": lambda p: bus_header(p, size=4096),
    "bus": bus_header,
    "short.bus": lambda p: bus_header(p, size=4096),
    "v2.bus": lambda p: bus_header(p, version=2),
    "bad.bus": lambda p: bus_header(p, first=1048544, last=2000000),
    "cut.pcap": truncated_pcap,
    "any.pcap": lambda p: pcap_file(p, [ETHER_FRAME + bytes(2)], linktype=113),
    "fcs.pcap": lambda p: pcap_file(p, [ETHER_FRAME.ljust(1518, b"\0")]),
    "ping.pcap": lambda p: pcap_file(p, [ETHER_FRAME]),
    "odd.toml": text_file('protocols = ["ether"]\n'),
    "big": lambda p: Path(p).write_bytes(bytes(2 * BUS_SIZE)),
    "fifo": os.mkfifo,
    "passwd": text_file("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"),
}

# (page, example as written) -> what comes first: "file NAME", "stack NAME" (the node's profile),
# "peer ADDRESS/N" (a second node on the bus), "no-node", or the arguments of a rumpnet command run
# against the node; every step must succeed.
SETUP = {
    ("brconfig", "rumpnet brconfig shmif0"): ["ifconfig shmif0 create"],
    ("brconfig", "rumpnet brconfig bridge0 add shmif7"): ["ifconfig bridge0 create"],
    ("brconfig", "rumpnet brconfig bridge0 add bridge0"): ["ifconfig bridge0 create"],
    ("brconfig", "rumpnet brconfig bridge0 delete shmif0"): ["ifconfig bridge0 create"],
    ("brconfig", "rumpnet brconfig bridge0 maxaddr 100000"): ["ifconfig bridge0 create"],
    ("brconfig", "rumpnet brconfig bridge0 deladdr b2:a0:00:00:00:01"): ["ifconfig bridge0 create"],
    ("brconfig", "rumpnet ifconfig bridge0 inet 10.0.0.9/24"): ["ifconfig bridge0 create"],
    ("dumpbus", "rumpnet dumpbus half-a-bus"): ["file half-a-bus"],
    ("dumpbus", "rumpnet dumpbus -p bus bus"): ["file bus"],
    ("echo", "rumpnet echo -u"): ["echo -u"],
    ("echo", "rumpnet echo -u", "a node started with -s minimal"): ["stack minimal"],
    ("ifconfig", "rumpnet ifconfig shmif0 create"): ["ifconfig shmif0 create"],
    ("ifconfig", "rumpnet ifconfig shmif0 inet 10.0.0.1/24"): ["ifconfig shmif0 create"],
    ("ifconfig", "rumpnet ifconfig shmif1 linkstr /tmp/lesson/bus"):
        ["ifconfig shmif1 create linkstr /tmp/lesson/bus2 up"],
    ("ifconfig", "rumpnet ifconfig shmif1 linkstr /tmp/lesson/bus", "after ifconfig shmif1 down"):
        ["ifconfig shmif1 create linkstr /tmp/lesson/bus2"],
    ("ifconfig", "rumpnet ifconfig shmif1 inet 10.0.5.255/24"): ["ifconfig shmif1 create linkstr /tmp/lesson/bus"],
    ("ifconfig", "rumpnet ifconfig shmif1 inet 224.0.0.1"): ["ifconfig shmif1 create linkstr /tmp/lesson/bus"],
    ("ifconfig", "rumpnet ifconfig shmif1 inet 0.0.0.0"): ["ifconfig shmif1 create linkstr /tmp/lesson/bus"],
    ("ifconfig", "rumpnet ifconfig shmif1 inet 10.0.0.1/24"):
        ["ifconfig shmif0 create linkstr /tmp/lesson/bus inet 10.0.0.1/24",
         "ifconfig shmif1 create linkstr /tmp/lesson/bus2"],
    ("ifconfig", "rumpnet ifconfig shmif1 delete"): ["ifconfig shmif1 create"],
    ("ifconfig", "rumpnet ifconfig shmif0 pcap /tmp/lesson/no/such.pcap"): ["ifconfig shmif0 create"],
    ("ifconfig", "rumpnet ifconfig shmif2 create linkstr /tmp/lesson/passwd"): ["file passwd"],
    ("ifconfig", "rumpnet ifconfig shmif5 create linkstr /tmp/lesson/short.bus"): ["file short.bus"],
    ("ifconfig", "rumpnet ifconfig shmif5 create linkstr /tmp/lesson/v2.bus"): ["file v2.bus"],
    ("ifconfig", "rumpnet ifconfig shmif5 create linkstr /tmp/lesson/bad.bus"): ["file bad.bus"],
    ("ifconfig", "rumpnet ifconfig shmif5 create linkstr /tmp/lesson/big"): ["file big"],
    ("ifconfig", "rumpnet ifconfig shmif5 create linkstr /tmp/lesson/fifo"): ["file fifo"],
    ("nc", "rumpnet nc -u 10.0.0.1 9000"): ["stack minimal"],
    ("pcapin", "rumpnet pcapin cut.pcap bus"): ["file cut.pcap"],
    ("pcapin", "rumpnet pcapin any.pcap bus"): ["file any.pcap"],
    ("pcapin", "rumpnet pcapin fcs.pcap bus"): ["file fcs.pcap"],
    ("pcapin", "rumpnet pcapin ping.pcap passwd"): ["file ping.pcap", "file passwd"],
    ("perf", "rumpnet perf -c 10.0.0.1 -u -t 1"):
        ["ifconfig shmif0 create linkstr /tmp/lesson/bus inet 10.0.0.2/24", "peer 10.0.0.1/24"],
    ("perf", "rumpnet perf -c 10.0.0.1 -t 1"):
        ["ifconfig shmif0 create linkstr /tmp/lesson/bus inet 10.0.0.2/24", "peer 10.0.0.1/24"],
    ("perf", "rumpnet perf -s -u"): ["echo -u 5001"],
    ("route", "rumpnet route add default 10.0.1.1"):
        ["ifconfig shmif0 create linkstr /tmp/lesson/bus inet 10.0.1.2/24", "route add default 10.0.1.1"],
    ("server", "rumpnet server unix:///tmp/lesson/bus"): ["file bus"],
    ("server", "rumpnet server -s /tmp/lesson/odd.toml unix:///tmp/lesson/c.sock"): ["file odd.toml"],
    ("server", "rumpnet server --domid 0 --xenstore /tmp/lesson/passwd unix:///tmp/lesson/c.sock"): ["file passwd"],
    ("xl", "rumpnet xl --xenstore /tmp/lesson/xs network-attach 1 handle=0"):
        ["xl --xenstore /tmp/lesson/xs network-attach 1 handle=0"],
    ("xenstore", "rumpnet xenstore-ls --xenstore /tmp/lesson/xs /vm/name"):
        ["xenstore-write --xenstore /tmp/lesson/xs /vm/name lesson"],
    ("xenstore", "rumpnet xenstore-ls --xenstore /tmp/lesson/xs /nosuch"):
        ["xenstore-write --xenstore /tmp/lesson/xs /vm/name lesson"],
}
NOTES = {"RUMP_SERVER not set": ["no-node"]}


def setup_for(page, command, note):
    return SETUP.get((page, command, note)) or SETUP.get((page, command)) or NOTES.get(note, [])


EXAMPLES = examples()


@pytest.mark.parametrize("page, written, note, expected, after_output",
                         [pytest.param(*example, id=f"{example[0]}: {example[1]}") for example in EXAMPLES])
def test_documented_error(page, written, note, expected, after_output, workdir, user, nodes):
    steps = setup_for(page, written, note)
    lesson = str(workdir)
    here = lambda text: text.replace(LESSON, lesson)  # noqa: E731
    profile = next((s.split()[1] for s in steps if s.startswith("stack ")), None)
    node = NodeProcess(workdir / "a.sock", user=user, stack=profile) if "no-node" not in steps else None
    try:
        for step in steps:
            kind, _, rest = step.partition(" ")
            if kind == "file":
                path = os.path.join(lesson, rest)
                FILES[rest](path)
                if user:  # the user's own file, as in the lesson
                    entry = pwd.getpwnam(user)
                    os.chown(path, entry.pw_uid, entry.pw_gid)
            elif kind == "peer":
                nodes("peer").attach(os.path.join(lesson, "bus"), rest)
            elif kind not in ("stack", "no-node"):
                done = node.run(*shlex.split(here(step)), user=user)
                assert done.returncode == 0, f"setup {step!r}: {done.stderr}"
        words = shlex.split(here(written))
        env = {}
        while "=" in words[0]:
            name, value = words.pop(0).split("=", 1)
            env[name] = value
        assert words.pop(0) == "rumpnet"
        done = run(*words, server=node.url if node else "", user=user, cwd=lesson, env=env, timeout=30)
    finally:
        if node:
            node.stop()
    assert done.stderr == here(expected) + "\n"
    assert done.returncode == 1
    assert bool(done.stdout) == after_output


def test_every_setup_is_used():
    """A setup whose example left the pages would silently test nothing."""
    assert {key[:2] for key in SETUP} <= {example[:2] for example in EXAMPLES}
    assert {key for key in SETUP if len(key) == 3} <= {example[:3] for example in EXAMPLES}
    assert set(NOTES) <= {example[2] for example in EXAMPLES}


def test_every_page_with_a_node_documents_its_errors():
    pages = {example[0] for example in EXAMPLES}
    assert pages >= {"arp", "brconfig", "dumpbus", "echo", "halt", "ifconfig", "nc", "netstat", "pcapin", "perf", "ping",
                     "route", "server", "sysctl"}
