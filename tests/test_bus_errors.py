"""Bus files that must be refused: clear errors naming the path, files left untouched."""

import hashlib
import os
import struct

import pytest

from rumpnet.net.bus import BUS_SIZE, Bus, BusError


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def foreign(path):
    with open(path, "wb") as f:
        f.write(os.urandom(BUS_SIZE))


def wrong_version(path):
    with open(path, "wb") as f:
        f.write(struct.pack("=IIQIIII", 0xCA11D054, 7, 0, 0, 0, 0, 0) + bytes(BUS_SIZE - 32))


def truncated(path):
    with open(path, "wb") as f:
        f.write(struct.pack("=IIQIIII", 0xCA11D054, 3, 0, 0, 0, 0, 0) + bytes(1000))


def short_foreign(path):
    with open(path, "wb") as f:
        f.write(b"#!/bin/sh\necho this is not a bus\n")


CASES = [(foreign, "not a shmif bus"), (wrong_version, "version 7"), (truncated, "truncated"),
         (short_foreign, "not a shmif bus")]
IDS = ["foreign", "wrong-version", "truncated", "short-text-file"]


@pytest.mark.parametrize("make, message", CASES, ids=IDS)
def test_ifconfig_refuses_and_leaves_file_untouched(nodes, workdir, make, message):
    path = str(workdir / "bad.bus")
    make(path)
    os.chmod(path, 0o666)
    before = digest(path), os.path.getsize(path)
    a = nodes("a")
    a.ifconfig("shmif0", "create")
    done = a.run("ifconfig", "shmif0", "linkstr", path)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1
    assert path in done.stderr and message in done.stderr
    assert (digest(path), os.path.getsize(path)) == before
    assert "linkstr" not in a.ifconfig("shmif0")


@pytest.mark.parametrize("make, message", CASES, ids=IDS)
def test_bus_api_refuses(tmp_path, make, message):
    path = str(tmp_path / "bad.bus")
    make(path)
    before = digest(path)
    with pytest.raises(BusError, match=message):
        Bus(path)
    assert digest(path) == before


def test_failed_create_leaves_no_interface(nodes, workdir):
    path = str(workdir / "bad.bus")
    foreign(path)
    os.chmod(path, 0o666)
    a = nodes("a")
    done = a.run("ifconfig", "shmif0", "create", "linkstr", path, "inet", "10.0.0.1/24")
    assert done.returncode == 1
    assert a.run("ifconfig", "-l").stdout.strip() == ""


def test_unwritable_bus_names_the_path(nodes, workdir, user):
    """A bus the node's user may not write: the error names the path and the reason."""
    path = str(workdir / "private.bus")
    Bus(path).close()
    if user is None:
        os.chmod(path, 0o444)
    else:
        os.chown(path, 0, 0)
        os.chmod(path, 0o600)
    a = nodes("a")
    a.ifconfig("shmif0", "create")
    done = a.run("ifconfig", "shmif0", "linkstr", path)
    assert done.returncode == 1
    assert f"{path}: cannot open bus: Permission denied" in done.stderr
    assert "linkstr" not in a.ifconfig("shmif0")


def test_bus_in_missing_directory(nodes, workdir):
    path = str(workdir / "no" / "such" / "dir" / "bus")
    a = nodes("a")
    done = a.run("ifconfig", "shmif0", "create", "linkstr", path)
    assert done.returncode == 1
    assert f"{path}: cannot open bus: No such file or directory" in done.stderr
