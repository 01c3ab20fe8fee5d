"""ifconfig: creating, addressing, showing and destroying interfaces, and refusing bad words."""

import re

import pytest


def test_address_before_linkstr_is_refused(nodes):
    a = nodes("a")
    a.ifconfig("shmif0", "create")
    done = a.run("ifconfig", "shmif0", "inet", "10.0.0.1/24")
    assert done.returncode == 1
    assert "linkstr" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "inet " not in a.ifconfig("shmif0")


def test_step_by_step_configuration(nodes, bus):
    a = nodes("a")
    a.ifconfig("shmif0", "create")
    shown = a.ifconfig("shmif0")
    assert shown.startswith("shmif0: flags=0x8802<BROADCAST,SIMPLEX,MULTICAST> mtu 1500\n")
    a.ifconfig("shmif0", "linkstr", bus)
    a.ifconfig("shmif0", "inet", "10.0.0.1", "netmask", "255.255.255.0")
    shown = a.ifconfig("shmif0")
    assert shown.startswith("shmif0: flags=0x8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n")
    assert re.search(r"\taddress: b2:a0(:[0-9a-f]{2}){4}\n", shown)
    assert f"\tlinkstr: {bus}\n" in shown
    assert "\tinet 10.0.0.1/24 broadcast 10.0.0.255 flags 0x0\n" in shown
    assert re.search(r"\tinput: \d+ packets, \d+ bytes, \d+ multicasts, \d+ errors, \d+ drops", shown)
    assert re.search(r"\toutput: 1 packets, 42 bytes, 1 multicasts, 0 errors", shown)  # the gratuitous ARP


@pytest.mark.parametrize("words, expected", [
    (["10.1.2.3/16"], "inet 10.1.2.3/16 broadcast 10.1.255.255"),
    (["inet", "10.1.2.3", "netmask", "0xffffff00"], "inet 10.1.2.3/24 broadcast 10.1.2.255"),
    (["inet", "10.1.2.3"], "inet 10.1.2.3/8 broadcast 10.255.255.255"),
    (["inet", "192.168.5.1"], "inet 192.168.5.1/24 broadcast 192.168.5.255"),
], ids=["cidr", "hex-netmask", "classful-a", "classful-c"])
def test_address_forms(nodes, bus, words, expected):
    a = nodes("a")
    a.ifconfig("shmif0", "create", "linkstr", bus, *words)
    assert expected in a.ifconfig("shmif0")


def test_down_up_destroy(nodes, bus):
    a = nodes("a")
    a.ifconfig("shmif0", "create", "linkstr", bus, "inet", "10.0.0.1/24")
    a.ifconfig("shmif0", "down")
    assert "flags=0x8802<" in a.ifconfig("shmif0")
    a.ifconfig("shmif0", "up")
    assert "flags=0x8843<" in a.ifconfig("shmif0")
    a.ifconfig("shmif0", "destroy")
    assert a.run("ifconfig", "-l").stdout.strip() == ""
    done = a.run("ifconfig", "shmif0")
    assert done.returncode == 1 and "shmif0: no such interface" in done.stderr


def test_list_and_all(nodes, bus):
    a = nodes("a")
    a.ifconfig("shmif0", "create", "linkstr", bus)
    a.ifconfig("shmif1", "create")
    assert a.run("ifconfig", "-l").stdout.split() == ["shmif0", "shmif1"]
    everything = a.run("ifconfig", "-a").stdout
    assert everything.count("flags=") == 2


@pytest.mark.parametrize("words, message", [
    (["shmif0", "create", "bogus"], "unknown keyword"),
    (["shmif0", "create", "inet", "10.0.0.300/24"], "not an IPv4 address"),
    (["shmif0", "create", "inet"], "inet needs a value"),
    (["shmif0", "create", "inet", "10.0.0.1/24", "netmask", "255.0.0.0"], "not both"),
    (["shmif0", "create", "inet", "10.0.0.1", "netmask", "banana"], "not a netmask"),
    (["shmif0", "create", "linkstr"], "linkstr needs a value"),
    (["shmif0", "create", "-linkstr"], "-linkstr: destroy the interface to leave its bus"),
    (["tun0", "create"], "cannot create"),
    (["-z"], "unknown option"),
], ids=["keyword", "bad-address", "missing-address", "mask-twice", "bad-netmask", "missing-path",
        "leave-bus", "unknown-kind", "unknown-option"])
def test_bad_words_change_nothing(nodes, words, message):
    a = nodes("a")
    done = a.run("ifconfig", *words)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("rumpnet ifconfig: ") and message in done.stderr
    assert a.run("ifconfig", "-l").stdout.strip() == ""


def test_create_twice_and_duplicate_address(nodes, bus):
    a = nodes("a")
    a.ifconfig("shmif0", "create", "linkstr", bus, "inet", "10.0.0.1/24")
    done = a.run("ifconfig", "shmif0", "create")
    assert done.returncode == 1 and "already exists" in done.stderr
    a.ifconfig("shmif1", "create", "linkstr", bus)
    done = a.run("ifconfig", "shmif1", "inet", "10.0.0.1/24")
    assert done.returncode == 1 and "already on shmif0" in done.stderr
    assert "inet " not in a.ifconfig("shmif1")


def test_no_node_gives_clear_error(workdir):
    from rumpnet.testing import run
    done = run("ifconfig", "-a", server=f"unix://{workdir}/nobody-here.sock")
    assert done.returncode == 1
    assert "cannot connect" in done.stderr and "nobody-here.sock" in done.stderr
    done = run("ifconfig", "-a", server="")
    assert done.returncode == 1 and "RUMP_SERVER" in done.stderr
