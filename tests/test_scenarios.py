"""Every scenario script runs as written, and says what its lesson promises."""

import os
import subprocess
import sys
from pathlib import Path

SCENARIOS = Path(__file__).parent.parent / "scenarios"


def run_scenario(name, workdir):
    """Run a script as a user would, with the `rumpnet` of this Python first on PATH (an unactivated venv's too)."""
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(["sh", str(SCENARIOS / name), str(workdir)], capture_output=True, text=True, timeout=60,
                          env=env)


def test_two_nodes_ping(tmp_path):
    done = run_scenario("two-nodes-ping.sh", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "3 packets transmitted, 3 packets received, 0.0% packet loss" in done.stdout
    assert not list(tmp_path.glob("*.sock"))  # halted on exit


def test_router(tmp_path):
    done = run_scenario("router.sh", tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "64 bytes from 10.0.2.2: icmp_seq=0 ttl=254" in out  # one hop: the router took one off
    assert "3 packets transmitted, 3 packets received, 0.0% packet loss" in out
    assert "bytes from 10.0.1.1: Time To Live exceeded" in out
    assert "\t6 packets forwarded" in out  # three requests there, three replies back
    assert "1 packets whose TTL ran out while forwarding" in out


def test_every_scenario_is_tested():
    tested = {"two-nodes-ping.sh", "router.sh"}
    assert {p.name for p in SCENARIOS.glob("*.sh")} == tested
