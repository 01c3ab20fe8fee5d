"""Every lesson in scenarios/ runs as written, and every expectation in it holds; graph draws them."""

from pathlib import Path
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from rumpnet.scenario import load
from rumpnet.testing import run

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
    assert not list(SCENARIOS.glob("*.sh"))


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
