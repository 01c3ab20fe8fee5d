"""The XenStore stand-in: keys as files, atomic writes, watches, hostile contents, and its commands."""

import os

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest
import trio

from rumpnet.testing import run
from rumpnet.xen.store import MAX_VALUE, StoreError, XenStore
from rumpnet.xen.xenbus import backend_mac, parse_mac


@pytest.fixture
def store(tmp_path):
    s = XenStore(str(tmp_path / "xs"))
    s.ensure()
    return s


def test_keys_values_and_children(store):
    store.write("/local/domain/1/device/vif/0/mac", "00:16:3e:12:34:56")
    assert store.read("/local/domain/1/device/vif/0/mac") == "00:16:3e:12:34:56"
    assert store.read("/local/domain/1") == ""
    assert store.ls("/local/domain/1/device/vif/0") == ["mac"]
    store.write("/local/domain/1/device/vif/0/mac", "changed")
    assert store.read("/local/domain/1/device/vif/0/mac") == "changed"
    assert [n for n in os.listdir(os.path.join(store.root, "local/domain/1/device/vif/0"))] == ["mac"]
    store.rm("/local/domain/1")
    with pytest.raises(StoreError, match="No such file"):
        store.read("/local/domain/1/device/vif/0/mac")


@pytest.mark.parametrize("path", ["relative", "/a/../b", "/a/.hidden", "/a b", "/" + "x" * 3100])
def test_bad_paths_are_refused(store, path):
    with pytest.raises(StoreError):
        store.write(path, "1")


def test_hostile_contents_are_refused_with_the_key_named(store, tmp_path):
    store.write("/a/ok", "1")
    base = os.path.join(store.root, "a")
    (tmp_path / "secret").write_text("not for the store")
    os.symlink(tmp_path / "secret", os.path.join(base, "link"))
    os.symlink(tmp_path, os.path.join(base, "dirlink"))
    with open(os.path.join(base, "huge"), "wb") as f:
        f.write(b"x" * (MAX_VALUE + 1))
    with open(os.path.join(base, "binary"), "wb") as f:
        f.write(b"\xff\xfe")
    os.mkfifo(os.path.join(base, "fifo"))
    with pytest.raises(StoreError, match="/a/link: a symbolic link"):
        store.read("/a/link")
    with pytest.raises(StoreError, match="/a/dirlink"):
        store.read("/a/dirlink/secret")
    with pytest.raises(StoreError, match="/a/huge: value longer than 4096"):
        store.read("/a/huge")
    with pytest.raises(StoreError, match="/a/binary: value is not UTF-8"):
        store.read("/a/binary")
    with pytest.raises(StoreError, match="/a/fifo: not a key"):
        store.read("/a/fifo")
    with pytest.raises(StoreError, match="at most 4096"):
        store.write("/a/big", "x" * (MAX_VALUE + 1))
    assert (tmp_path / "secret").read_text() == "not for the store"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=MAX_VALUE + 10))
def test_any_value_file_reads_as_text_or_a_store_error(tmp_path_factory, data):
    store = XenStore(str(tmp_path_factory.mktemp("xs")))
    store.write("/k", "")
    with open(os.path.join(store.root, "k"), "wb") as f:
        f.write(data)
    try:
        value = store.read("/k")
    except StoreError:
        return
    assert value.encode() == data and len(data) <= MAX_VALUE and "\0" not in value


@given(st.text(max_size=40))
def test_parse_mac_takes_six_hex_bytes_or_nothing(text):
    mac = parse_mac(text)
    assert mac is None or (len(mac) == 6 and parse_mac(mac.hex(":")) == mac)


@pytest.mark.parametrize("guest, backend", [
    ("00:16:3e:12:34:56", "00:16:3e:13:34:56"), ("00:16:3e:ff:34:56", "00:16:3e:00:34:56"),
    ("00:16:3e:ff:ff:ff", "00:16:3e:00:ff:ff")], ids=["plain", "wraps", "no-carry"])
def test_backend_mac_is_byte_3_plus_one(guest, backend):
    assert backend_mac(parse_mac(guest)).hex(":") == backend


async def test_a_watch_wakes_for_keys_made_below_a_path_that_did_not_exist(store):
    with store.watch("/local/domain/0/backend") as watch:
        assert await watch.changes() == ["/local/domain/0/backend"]
        store.write("/local/domain/0/backend/vif/1/0/state", "1")
        seen = set()
        with trio.fail_after(5):
            while "/local/domain/0/backend/vif/1/0/state" not in seen:
                seen.update(await watch.changes())
                store.write("/local/domain/0/backend/vif/1/0/state", "2")  # a later write is seen in any case
        with trio.move_on_after(0.2):
            await watch.changes()  # what the last write queued
        store.write("/local/domain/1/other", "x")  # not under the path: no wake-up
        with trio.move_on_after(0.2) as waited:
            await watch.changes()
        assert waited.cancelled_caught


def test_the_commands_print_as_xen_tools_do(tmp_path):
    root = str(tmp_path / "xs")
    done = run("xenstore-write", "--xenstore", root, "/local/domain/0/name", "Domain-0", "/tool/q", 'say "hi"')
    assert done.returncode == 0 and done.stdout == "", done.stderr
    done = run("xenstore-ls", "--xenstore", root)
    assert done.stdout == ('local = ""\n domain = ""\n  0 = ""\n   name = "Domain-0"\n'
                           'tool = ""\n q = "say \\"hi\\""\n')
    assert run("xenstore-ls", "-f", "--xenstore", root, "/local").stdout == \
        '/local/domain = ""\n/local/domain/0 = ""\n/local/domain/0/name = "Domain-0"\n'
    assert run("xenstore-read", "--xenstore", root, "name", "/tool/q").stdout == 'Domain-0\nsay "hi"\n'
    done = run("xenstore-watch", "-n", "1", "--xenstore", root, "/tool")
    assert done.returncode == 0 and done.stdout == "/tool\n"
