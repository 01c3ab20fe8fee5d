"""Every lesson in scenarios/ runs as written, and every expectation in it holds; graph draws them."""

import json
import os
from pathlib import Path
import shutil
import subprocess
import xml.etree.ElementTree as ET

import dpkt
import pytest

from rumpnet.scenario import load
from rumpnet.testing import can_drop_privileges, can_make_taps, run

SCENARIOS = Path(__file__).parent.parent / "scenarios"
LESSONS = sorted(p.stem for p in SCENARIOS.glob("*.toml"))
ROOT_ONLY = {"router-to-host"}  # it makes its own tap
OWN_TEST = {"tcp"}  # run once by a test that reads its pcap too


@pytest.mark.parametrize("lesson", sorted(set(LESSONS) - ROOT_ONLY - OWN_TEST))
def test_lesson_runs_and_holds(lesson, workdir, user):
    run_lesson(lesson, workdir / "run", user)


def run_lesson(lesson, rundir, user):
    done = run("run", "--dir", rundir, SCENARIOS / f"{lesson}.toml", user=user, server="", timeout=100)
    assert done.returncode == 0, done.stdout + done.stderr
    steps = len(load(SCENARIOS / f"{lesson}.toml").steps)
    assert f"*** {steps} of {steps} steps held\n" in done.stdout
    assert not list(rundir.glob("*.sock"))


def test_the_tcp_lesson_holds_and_its_pcap_shows_the_handshake_the_data_and_the_close(workdir, user):
    rundir = workdir / "run"
    run_lesson("tcp", rundir, user)
    with open(rundir / "lan.pcap", "rb") as f:
        frames = [dpkt.ethernet.Ethernet(frame) for _, frame in dpkt.pcap.Reader(f)]
    segments = [(f.data.src, f.data.data) for f in frames if isinstance(getattr(f.data, "data", None), dpkt.tcp.TCP)]
    a = bytes([10, 0, 0, 1])
    syn, synack, ack = (tcp for _, tcp in segments[:3])
    assert (syn.flags, synack.flags, ack.flags) == (dpkt.tcp.TH_SYN, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, dpkt.tcp.TH_ACK)
    assert dict(dpkt.tcp.parse_opts(syn.opts))[dpkt.tcp.TCP_OPT_MSS] == (1460).to_bytes(2, "big")
    assert synack.ack == syn.seq + 1 and ack.ack == synack.seq + 1
    assert sum(len(tcp.data) for src, tcp in segments if src == a) == 4096  # the lost segment never reached the bus
    fins = [src for src, tcp in segments if tcp.flags & dpkt.tcp.TH_FIN]
    assert fins == [a, bytes([10, 0, 0, 2])]  # a closes first


def test_every_lesson_says_what_it_teaches():
    for lesson in LESSONS:
        text = (SCENARIOS / f"{lesson}.toml").read_text()
        assert text.startswith("# "), lesson
        assert f"`{lesson}.toml`" in (SCENARIOS / "README.md").read_text(), lesson
    assert not list(SCENARIOS.glob("*.sh"))  # every lesson is a scenario file


def test_demo_runs_the_quickstart():
    done = run("demo", server="")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "*** quickstart:" in done.stdout and "3 packets transmitted, 3 packets received" in done.stdout


def test_graph_of_three_buses_shows_every_node_bus_and_address(tmp_path):
    out = tmp_path / "topo.svg"
    done = run("graph", SCENARIOS / "three-buses.toml", "-o", out, server="")
    assert done.returncode == 0, done.stderr
    texts = [t.text for t in ET.parse(out).getroot().iter("{http://www.w3.org/2000/svg}text")]
    scenario = load(SCENARIOS / "three-buses.toml")
    assert set(scenario.nodes) | set(scenario.buses) <= set(texts)
    for node in scenario.nodes.values():
        for interface in node.interfaces:
            assert f"{interface.name} {interface.address}" in texts


def test_graph_png_and_dot(tmp_path):
    done = run("graph", SCENARIOS / "router.toml", server="")
    assert '"r" -- "bus bus2" [label="shmif1 10.0.2.1/24"];' in done.stdout
    png = tmp_path / "topo.png"
    done = run("graph", SCENARIOS / "router.toml", "-o", png, server="")
    if shutil.which("dot") is None:
        assert done.stderr == "rumpnet graph: PNG needs Graphviz's dot: install it (apt-get install graphviz), " \
                              "or write .svg\n"
    else:
        assert done.returncode == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run("graph", SCENARIOS / "router.toml", "-o", tmp_path / "t.jpg", server="").stderr == \
        f"rumpnet graph: -o {tmp_path}/t.jpg: the name must end in .svg, .png or .dot\n"


@pytest.mark.skipif(not can_make_taps(), reason="making a tap and a network namespace needs root")
def test_router_to_host_makes_its_tap_and_removes_it(workdir):
    """As root, the run makes tap0 in a namespace of its own, its nodes reach the host's side, and it goes."""
    rundir = workdir / "run"
    done = run("run", "--dir", rundir, SCENARIOS / "router-to-host.toml", server="", timeout=100)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "*** 4 of 4 steps held\n" in done.stdout
    host = json.loads((rundir / "run.json").read_text())["host"]
    assert host["taps"] == ["tap0"] and host["netns"].startswith("rumpnet-run-")
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert host["netns"] not in namespaces


@pytest.mark.skipif(not can_make_taps(), reason="making a tap and a network namespace needs root")
def test_down_removes_the_taps_of_a_kept_run(workdir):
    """On the host itself, under a name of its own (tap0 may be someone else's there)."""
    rundir, tap = workdir / "run", f"rnt{os.getpid()}"
    lesson = workdir / "router-to-host.toml"
    lesson.write_text((SCENARIOS / "router-to-host.toml").read_text().replace('"tap0"', f'"{tap}"'))
    done = run("run", "--keep", "--taps-on-host", "--dir", rundir, lesson, server="", timeout=100)
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        assert subprocess.run(["ip", "link", "show", tap], capture_output=True).returncode == 0
    finally:
        down = run("down", rundir, server="")
    assert down.stdout == "3 of 3 nodes were running and are stopped\n"
    assert subprocess.run(["ip", "link", "show", tap], capture_output=True).returncode != 0


@pytest.mark.skipif(os.geteuid() == 0 and not can_drop_privileges(), reason="as root, needs setpriv to run as another user")
def test_taps_need_root_and_a_refused_run_leaves_nothing(workdir, user):
    """Refused before the run directory is made: neither --dir's nor a new one in $TMPDIR appears."""
    refusal = f"rumpnet run: {SCENARIOS / 'router-to-host.toml'}: [[taps]] makes taps, which needs " \
              "root: run it with sudo, or make the taps yourself and leave out [[taps]]\n"
    done = run("run", "--dir", workdir / "run", SCENARIOS / "router-to-host.toml", user=user, server="")
    assert (done.returncode, done.stderr, done.stdout) == (1, refusal, "")
    assert not (workdir / "run").exists()
    done = run("run", SCENARIOS / "router-to-host.toml", user=user, server="", env={"TMPDIR": str(workdir)})
    assert (done.returncode, done.stderr, done.stdout) == (1, refusal, "")
    assert list(workdir.iterdir()) == []
