import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile

import pytest

from rumpnet.testing import NodeProcess, as_user, can_drop_privileges, rumpnet_command

UNPRIVILEGED = "nobody"


def make_workdir():
    """A directory for buses and sockets, owned by the unprivileged user when we are root.

    Not under pytest's tmp_path: pytest keeps that tree private to its owner.
    """
    path = pathlib.Path(tempfile.mkdtemp(prefix="rumpnet-test-"))
    if can_drop_privileges():
        entry = pwd.getpwnam(UNPRIVILEGED)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(path, 0o755)
    return path


@pytest.fixture
def workdir():
    path = make_workdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def user():
    """The user nodes run as: 'nobody' when the tests run as root, else ourselves (None)."""
    return UNPRIVILEGED if can_drop_privileges() else None


@pytest.fixture
def nodes(workdir, user):
    """make(name) starts a real node process (unprivileged when we are root); all are stopped after."""
    started = []

    def make(name):
        node = NodeProcess(workdir / f"{name}.sock", user=user)
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()


@pytest.fixture
def bus(workdir):
    return str(workdir / "bus")


@pytest.fixture
def pair(nodes, bus):
    """Two nodes on one bus: 10.0.0.1/24 and 10.0.0.2/24."""
    a, b = nodes("a"), nodes("b")
    a.attach(bus, "10.0.0.1/24")
    b.attach(bus, "10.0.0.2/24")
    return a, b


def cpu_seconds(node):
    """CPU time a NodeProcess has used so far (utime + stime): how a test sees a node spin."""
    with open(f"/proc/{node.proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def need_tool(name):
    if shutil.which(name) is None:
        pytest.skip(f"{name} is not installed (.ci/run installs it)")


@pytest.fixture
def background(user):
    """start(node, *args, stdin=...) runs `rumpnet ARGS` against node without waiting; all are stopped after."""
    started = []

    def start(node, *args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE):
        argv = rumpnet_command(*args)
        proc = subprocess.Popen(as_user(argv, user) if user else argv, env={**os.environ, "RUMP_SERVER": node.url},
                                stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                stream.close()
