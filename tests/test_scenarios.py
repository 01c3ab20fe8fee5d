"""Every scenario script runs as written, and says what its lesson promises."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rumpnet.testing import can_make_taps

SCENARIOS = Path(__file__).parent.parent / "scenarios"


def run_scenario(name, workdir, netns=None, timeout=60):
    """Run a script as a user would, with the `rumpnet` of this Python first on PATH (an unactivated venv's too);
    inside the network namespace netns if one is named."""
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}")
    inside = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run([*inside, "sh", str(SCENARIOS / name), str(workdir)], capture_output=True, text=True,
                          timeout=timeout, env=env)


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


def test_every_scenario_is_tested():
    tested = {"two-nodes-ping.sh", "router.sh", "router-to-host.sh"}
    assert {p.name for p in SCENARIOS.glob("*.sh")} == tested
