"""The node's address sets follow every change of address or interface."""

import errno

import pytest

import rumpnet


async def bind_error(node, address):
    sock = node.socket(rumpnet.SOCK_DGRAM)
    try:
        await sock.bind((address, 0))
        return 0
    except OSError as e:
        return e.errno
    finally:
        sock.close()


async def test_addresses_and_broadcasts_follow_ifconfig(tmp_path):
    async with rumpnet.open_node() as node:
        name = node.create_shmif(str(tmp_path / "bus"))
        assert await bind_error(node, "10.0.0.1") == errno.EADDRNOTAVAIL
        node.add_address(name, "10.0.0.1/24")
        assert await bind_error(node, "10.0.0.1") == await bind_error(node, "10.0.0.255") == 0
        node.add_address(name, "10.0.1.1/16")  # replaces the first
        assert await bind_error(node, "10.0.0.1") == await bind_error(node, "10.0.0.255") == errno.EADDRNOTAVAIL
        assert await bind_error(node, "10.0.1.1") == await bind_error(node, "10.0.255.255") == 0
        node.delete_address(name)
        assert await bind_error(node, "10.0.1.1") == errno.EADDRNOTAVAIL
        node.add_address(name, "10.0.2.1/24")
        node.destroy_interface(name)
        assert await bind_error(node, "10.0.2.1") == await bind_error(node, "10.0.2.255") == errno.EADDRNOTAVAIL


async def test_a_ping_to_a_replaced_address_goes_unanswered(tmp_path):
    from rumpnet.testing import open_pair, ping_once
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        assert await ping_once(a, "10.0.0.2")
        b.add_address("shmif0", "10.0.0.3/24")
        assert await ping_once(a, "10.0.0.3")
        assert not await ping_once(a, "10.0.0.2", timeout=0.5)


@pytest.mark.parametrize("address", ["10.0.0.1", "10.0.0.255", "255.255.255.255"])
async def test_a_node_without_interfaces_owns_no_address(address):
    async with rumpnet.open_node() as node:
        assert await bind_error(node, address) == errno.EADDRNOTAVAIL
