"""rumpnet run, down and pingall, as a user runs them: real node processes, real bus files."""

import json
import os
from pathlib import Path
import signal
import subprocess
import tempfile

from hypothesis import given, settings, strategies as st
import pytest

from rumpnet.scenario.runner import read_run_file
from rumpnet.scenario.schema import ScenarioError
from rumpnet.testing import rumpnet_command, run
from rumpnet.tools import bench
from conftest import need_tool

SCENARIOS = Path(__file__).parent.parent / "scenarios"
PAIR = """\
buses = ["lan"]
[nodes.a]
interfaces.shmif0 = {{ bus = "lan", inet = "10.0.0.1/24" }}
[nodes.b]
interfaces.shmif0 = {{ bus = "lan", inet = "10.0.0.2/24" }}
{steps}
"""


def scenario(workdir, text, name="lesson.toml"):
    path = workdir / name
    path.write_text(text)
    os.chmod(path, 0o644)
    return path


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def thirty_two():
    """32 nodes on four buses (the benchmark's), with an all-pairs ping step."""
    return bench.four_buses() + "[[steps]]\nrun = \"pingall -w 20\"\noutput = \"Results: 0% dropped\"\n"


def test_quickstart_unprivileged_leaves_pcaps_tcpdump_reads(workdir, user):
    need_tool("tcpdump")
    rundir = workdir / "run"
    done = run("run", "--dir", rundir, SCENARIOS / "quickstart.toml", user=user, server="")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "*** 3 of 3 steps held" in done.stdout
    assert "2 nodes started in" in done.stdout
    read = subprocess.run(["tcpdump", "-nr", str(rundir / "lan.pcap")], capture_output=True, text=True)
    assert read.returncode == 0, read.stderr
    assert "ARP, Reply 10.0.0.2 is-at" in read.stdout
    assert "10.0.0.1 > 10.0.0.2: ICMP echo request" in read.stdout
    assert "$ rumpnet ping -c 3" in (rundir / "a.log").read_text()
    assert not list(rundir.glob("*.sock"))  # the nodes were stopped


def test_thirty_two_nodes_on_four_buses_all_pairs(workdir):
    done = run("run", "--dir", workdir / "run", scenario(workdir, thirty_two()), server="", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "*** 32 nodes started in" in done.stdout
    assert "h0 -> r1(10.0.1.1) r1(10.0.2.1) r1(10.0.3.1) r2(10.0.3.2) r2(10.0.4.1) h1 h2" in done.stdout
    assert "*** Results: 0% dropped (1085/1085 received)" in done.stdout


def test_a_wrong_expectation_exits_1_naming_the_step(workdir):
    steps = ('[[steps]]\nnode = "a"\nrun = "ping -c 1 10.0.0.2"\n'
             '[[steps]]\nnode = "a"\nrun = "ping -c 1 -w 1 10.0.0.9"\nexpect = "success"\n'
             '[[steps]]\nnode = "b"\nrun = "route show"\noutput = "nothing like this"\n')
    done = run("run", "--dir", workdir / "run", scenario(workdir, PAIR.format(steps=steps)), server="")
    assert done.returncode == 1
    table = done.stdout.split("*** Summary\n")[1].splitlines()
    assert table[1].startswith("1 ") and "FAILED" not in table[1]
    assert table[2].startswith("2 ") and "failure (2)  <-- FAILED" in table[2]
    assert table[3].startswith("3 ") and "output did not match  <-- FAILED" in table[3]
    assert "*** 1 of 3 steps held" in done.stdout


def test_a_typo_is_refused_before_any_node_starts(workdir):
    path = scenario(workdir, PAIR.format(steps='[[steps]]\nnode = "bb"\nrun = "arp -a"\n'))
    rundir = workdir / "run"
    done = run("run", "--dir", rundir, path, server="")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"rumpnet run: {path}:7: step 1: no node 'bb' (did you mean 'b'?)\n"
    assert not rundir.exists()


def test_a_node_killed_mid_run_is_its_failure_and_the_run_cleans_up(workdir):
    steps = '[[steps]]\nwait = 30\n[[steps]]\nnode = "a"\nrun = "ping -c 1 -w 1 10.0.0.2"\nexpect = "failure"\n'
    rundir = workdir / "run"
    argv = rumpnet_command("run", "--dir", rundir, scenario(workdir, PAIR.format(steps=steps).replace("30", "3")))
    runner = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in runner.stdout:
            if line.startswith("*** 2 nodes started"):
                break
        pids = {name: node["pid"] for name, node in json.loads((rundir / "run.json").read_text())["nodes"].items()}
        os.kill(pids["b"], signal.SIGKILL)
        out = runner.stdout.read()
        assert runner.wait(timeout=30) == 1
    finally:
        runner.kill()
    assert "*** node b: killed by signal 9" in out
    assert "b     (its process)" in out and "killed by signal 9  <-- FAILED" not in out
    assert "*** 2 of 2 steps held; 1 node died" in out
    assert not alive(pids["a"]) and not list(rundir.glob("*.sock"))


def test_ctrl_c_stops_every_node_and_leaves_the_run_directory(workdir):
    rundir = workdir / "run"
    argv = rumpnet_command("run", "--dir", rundir, scenario(workdir, PAIR.format(steps="[[steps]]\nwait = 60\n")))
    runner = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = ""
        while "\n[1/1]" not in seen:  # the step's line ends only when the step does: read it as it comes
            seen += runner.stdout.read(1) or pytest.fail(f"the run ended before its step began: {seen}")
        pids = [node["pid"] for node in json.loads((rundir / "run.json").read_text())["nodes"].values()]
        runner.send_signal(signal.SIGINT)
        out = runner.stdout.read()
        assert runner.wait(timeout=30) == 130
    finally:
        runner.kill()
    assert f"*** interrupted: nodes stopped; the run directory is left: {rundir}" in out
    assert not any(alive(pid) for pid in pids)
    assert sorted(p.name for p in rundir.iterdir()) == ["a.log", "b.log", "lan.bus", "lan.pcap", "run.json",
                                                       "scenario.toml"]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.builds(lambda d: json.dumps(d).encode(), st.recursive(
    st.none() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["nodes", "url", "addresses", "a", "10.0.0.1"]), inner, max_size=3), max_leaves=12))))
def test_any_run_file_is_read_or_refused_in_one_line(content):
    with tempfile.TemporaryDirectory() as rundir:
        (Path(rundir) / "run.json").write_bytes(content)
        try:
            read_run_file(rundir)
        except ScenarioError as e:
            assert str(e) == f"{rundir}/run.json: not a run file of rumpnet run"


def test_keep_then_pingall_then_down(workdir):
    rundir = workdir / "run"
    done = run("run", "--keep", "--dir", rundir, SCENARIOS / "quickstart.toml", server="")
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"export RUMP_SERVER=unix://{rundir}/a.sock   # a" in done.stdout
        assert (rundir / "a.sock").exists()
        pinged = run("pingall", rundir, server="")
        assert pinged.stdout == ("*** Ping: testing ping reachability\na -> b\nb -> a\n"
                                 "*** Results: 0% dropped (2/2 received)\n")
        by_url = run("pingall", f"unix://{rundir}/a.sock", f"unix://{rundir}/b.sock", server="")
        assert by_url.stdout == pinged.stdout
    finally:
        stopped = run("down", rundir, server="")
    assert stopped.stdout == "2 of 2 nodes were running and are stopped\n"
    assert not list(rundir.glob("*.sock"))
    assert run("down", workdir, server="").stderr.startswith(f"rumpnet down: {workdir}/run.json: No such file")
