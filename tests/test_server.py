"""rumpnet server and halt: detaching once ready, one node per socket, clean exits."""

import os
import signal
import stat
import subprocess
import sys

import pytest

from rumpnet.testing import NodeProcess, run


def test_detaches_once_ready_and_halts(workdir):
    url = f"unix://{workdir}/n.sock"
    done = run("server", url, timeout=20)
    try:
        assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
        mode = os.stat(workdir / "n.sock").st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        assert run("ifconfig", "-l", server=url).returncode == 0  # ready the moment server returned
    finally:
        halted = run("halt", server=url)
    assert halted.returncode == 0
    assert not os.path.exists(workdir / "n.sock")


def test_halt_returns_once_the_control_socket_is_gone(workdir):
    """The node answers halt before it stops; halt itself waits, so a script can start
    the next node at the same URL at once. Called in this process: nothing to slow it."""
    from rumpnet.cli import halt
    url = f"unix://{workdir}/n.sock"
    for _ in range(3):
        assert run("server", url).returncode == 0
        assert halt.main([], url) == 0
        assert not os.path.exists(workdir / "n.sock")


def test_relative_url(workdir):
    env = dict(os.environ, RUMP_SERVER="unix://rel.sock")
    cmd = [sys.executable, "-m", "rumpnet"]
    assert subprocess.run(cmd + ["server", "unix://rel.sock"], cwd=workdir, env=env).returncode == 0
    try:
        assert os.path.exists(workdir / "rel.sock")
        assert subprocess.run(cmd + ["ifconfig", "-l"], cwd=workdir, env=env).returncode == 0
    finally:
        subprocess.run(cmd + ["halt"], cwd=workdir, env=env)


def test_second_node_on_same_socket_is_refused(nodes, workdir):
    a = nodes("a")
    done = run("server", a.url)
    assert done.returncode == 1
    assert done.stderr == f"rumpnet server: {a.path}: a node is already serving there\n"
    assert a.run("ifconfig", "-l").returncode == 0


def test_stale_socket_is_replaced(workdir):
    first = NodeProcess(workdir / "s.sock")
    first.kill()  # SIGKILL: the socket file stays behind
    assert os.path.exists(workdir / "s.sock")
    second = NodeProcess(workdir / "s.sock")
    try:
        assert second.run("ifconfig", "-l").returncode == 0
    finally:
        second.stop()


def test_sigterm_removes_socket(workdir):
    node = NodeProcess(workdir / "t.sock")
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(timeout=5) == 0
    assert not os.path.exists(workdir / "t.sock")


@pytest.mark.parametrize("url, message", [
    ("tcp://127.0.0.1:80", "not a control socket URL"),
    ("unix://", "not a control socket URL"),
], ids=["scheme", "empty-path"])
def test_bad_urls(url, message):
    done = run("server", url)
    assert done.returncode == 1 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_socket_in_missing_directory(workdir):
    done = run("server", f"unix://{workdir}/missing/dir/x.sock")
    assert done.returncode == 1
    assert done.stderr == f"rumpnet server: {workdir}/missing/dir/x.sock: No such file or directory\n"


def test_bad_offload_setting_is_refused(workdir):
    env_run = subprocess.run([sys.executable, "-m", "rumpnet", "server", "-f", f"unix://{workdir}/c.sock"],
                             env=dict(os.environ, RUMP_SHMIF_CAPENABLE="lots"), capture_output=True, text=True,
                             timeout=20)
    assert env_run.returncode == 1
    assert env_run.stderr == "rumpnet server: RUMP_SHMIF_CAPENABLE: 'lots' is not a number (try 0x7ff80)\n"


def test_help_lists_commands():
    done = run("--help")
    assert done.returncode == 0
    for command in ("server", "ifconfig", "ping", "arp", "route", "sysctl", "netstat", "halt"):
        assert f"  {command}" in done.stdout
    assert run("frobnicate").returncode == 1
