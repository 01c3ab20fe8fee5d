"""Stack profiles: a router forwards from the start; a node without UDP refuses it."""

import pytest

from rumpnet.kern.profile import ProfileError, available, load
from rumpnet.testing import run


def test_profiles_shipped():
    assert available() == ["gateway", "host", "minimal", "router"]
    protocols, sysctl = load("router")
    assert protocols >= {"ether", "arp", "ip", "icmp", "udp"}
    assert sysctl == {"net.inet.ip.forwarding": 1}


def test_router_profile_forwards(workdir):
    url = f"unix://{workdir}/r.sock"
    assert run("server", "--stack", "router", url).returncode == 0
    try:
        assert run("sysctl", "-n", "net.inet.ip.forwarding", server=url).stdout == "1\n"
    finally:
        run("halt", server=url)


async def test_minimal_profile_has_no_udp(tmp_path):
    import rumpnet
    async with rumpnet.open_node(stack="minimal") as node:
        with pytest.raises(OSError, match="no UDP"):
            node.socket(rumpnet.SOCK_DGRAM)
        assert node.socket(rumpnet.SOCK_RAW, rumpnet.IPPROTO_ICMP)


@pytest.mark.parametrize("text, message", [
    ('protocols = ["ether", "arp"]', "a stack needs"),
    ('protocols = ["ether", "arp", "ip", "tcp6"]', "unknown protocols tcp6"),
    ('protocols = ["ether", "arp", "ip"]\n[sysctl]\n"net.inet.ip.ttl" = 900', "out of range"),
    ("protocols = [", "bad.toml: Invalid value"),
], ids=["missing-ip", "unknown-protocol", "bad-sysctl", "not-toml"])
def test_bad_profiles_refused(workdir, text, message):
    path = workdir / "bad.toml"
    path.write_text(text)
    done = run("server", "--stack", str(path), f"unix://{workdir}/x.sock")
    assert done.returncode == 1
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (workdir / "x.sock").exists()


def test_bad_profile_refused_in_the_foreground_too(workdir):
    path = workdir / "bad.toml"
    path.write_text('protocols = ["ether", "arp", "ip"]\n[sysctl]\n"net.inet.ip.ttl" = 999')
    done = run("server", "-f", "-s", str(path), f"unix://{workdir}/x.sock")
    assert done.returncode == 1
    assert done.stderr == f"rumpnet server: {path}: net.inet.ip.ttl: 999 is out of range (1 to 255)\n"


def test_unknown_profile_name(workdir):
    done = run("server", "-s", "switch", f"unix://{workdir}/x.sock")
    assert done.returncode == 1 and "no such stack profile (known: gateway, host, minimal, router)" in done.stderr


def test_missing_profile_file():
    with pytest.raises(ProfileError, match="/nonexistent/profile.toml: No such file"):
        load("/nonexistent/profile.toml")
