"""Every lesson in scenarios/ runs as written, and every expectation in it holds; graph draws them."""

import os
from pathlib import Path
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from rumpnet.scenario import load
from rumpnet.testing import can_make_taps, run

SCENARIOS = Path(__file__).parent.parent / "scenarios"
LESSONS = sorted(p.stem for p in SCENARIOS.glob("*.toml"))


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_runs_and_holds(lesson, workdir, user):
    rundir = workdir / "run"
    done = run("run", "--dir", rundir, SCENARIOS / f"{lesson}.toml", user=user, server="", timeout=100)
    assert done.returncode == 0, done.stdout + done.stderr
    steps = len(load(SCENARIOS / f"{lesson}.toml").steps)
    assert f"*** {steps} of {steps} steps held\n" in done.stdout
    assert not list(rundir.glob("*.sock"))


def test_every_lesson_says_what_it_teaches():
    for lesson in LESSONS:
        text = (SCENARIOS / f"{lesson}.toml").read_text()
        assert text.startswith("# "), lesson
        assert f"`{lesson}.toml`" in (SCENARIOS / "README.md").read_text(), lesson
    assert {p.name for p in SCENARIOS.glob("*.sh")} == {"router-to-host.sh"}  # root only: it makes its own tap


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


def run_scenario(name, workdir, netns=None, timeout=60):
    """Run a script as a user would, with the `rumpnet` of this Python first on PATH (an unactivated venv's too);
    inside the network namespace netns if one is named."""
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}")
    inside = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run([*inside, "sh", str(SCENARIOS / name), str(workdir)], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.skipif(not can_make_taps(), reason="making a tap and a network namespace needs root")
def test_router_to_host(tmp_path):
    """Run inside a network namespace of its own, where the tap is made and its host side configured."""
    netns = f"rumpnet-scenario-{os.getpid()}"
    try:
        for argv in (["ip", "netns", "add", netns], ["ip", "-n", netns, "link", "set", "lo", "up"],
                     ["ip", "-n", netns, "tuntap", "add", "tap0", "mode", "tap"],
                     ["ip", "-n", netns, "addr", "add", "192.168.77.2/24", "dev", "tap0"],
                     ["ip", "-n", netns, "link", "set", "tap0", "up"]):
            subprocess.run(argv, check=True, capture_output=True)
        done = run_scenario("router-to-host.sh", tmp_path, netns, timeout=100)  # 3 nodes, 7 s of pings
    finally:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count("3 packets transmitted, 3 packets received, 0.0% packet loss") == 2
    assert "64 bytes from 192.168.77.2: icmp_seq=0 ttl=63" in out  # Linux answers with 64, the router takes one
    assert "\t6 packets whose source was translated on the way out" in out
    assert "\t6 packets translated back on the way in" in out
