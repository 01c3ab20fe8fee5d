import os
import pathlib
import pwd
import shutil
import tempfile

import pytest

from rumpnet.testing import NodeProcess, can_drop_privileges

UNPRIVILEGED = "nobody"


@pytest.fixture
def workdir():
    """A directory for buses and sockets, owned by the unprivileged user when we are root.

    Not under pytest's tmp_path: pytest keeps that tree private to its owner.
    """
    path = pathlib.Path(tempfile.mkdtemp(prefix="rumpnet-test-"))
    if can_drop_privileges():
        entry = pwd.getpwnam(UNPRIVILEGED)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(path, 0o755)
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


def need_tool(name):
    if shutil.which(name) is None:
        pytest.skip(f"{name} is not installed (.ci/run installs it)")
