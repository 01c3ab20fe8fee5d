"""net.core.busy_poll: a socket that waits keeps its node's event loop polling instead of sleeping."""

import pytest
import trio

from rumpnet import SOCK_DGRAM, open_node
from rumpnet.kern.sysctl import SysctlError
from rumpnet.testing import open_pair
from rumpnet.tools import echo


class IoWaits(trio.abc.Instrument):
    """Every wait of the event loop for I/O: (when, the longest it may block)."""

    def __init__(self):
        self.waits = []

    def before_io_wait(self, timeout):
        self.waits.append((trio.current_time(), timeout))


async def io_waits_while_receiving(node, seconds):
    """The event loop's I/O waits while a socket of node waits seconds for a datagram that never comes,
    and when that wait began."""
    sock = node.socket(SOCK_DGRAM)
    await sock.bind(("0.0.0.0", 9))
    waits = IoWaits()
    trio.lowlevel.add_instrument(waits)
    try:
        began = trio.current_time()
        with trio.move_on_after(seconds):
            await sock.recvfrom()
    finally:
        trio.lowlevel.remove_instrument(waits)
        sock.close()
    return began, waits.waits


async def test_a_waiting_socket_keeps_the_loop_polling_for_the_window():
    async with open_node() as node:
        node.sysctl.set("net.core.busy_poll", 30000)  # 30 ms
        # a wait far longer than the window: on a loaded machine the last polling pass may end late
        began, waits = await io_waits_while_receiving(node, 1.0)
    window = [timeout for when, timeout in waits if when < began + 0.03]
    assert len(window) > 1 and set(window) == {0}  # polled, never slept, while the window lasted
    assert any(timeout > 0 for when, timeout in waits if when > began + 0.03)  # then slept


async def test_without_busy_polling_the_loop_sleeps_while_a_socket_waits():
    async with open_node() as node:
        assert node.sysctl["net.core.busy_poll"] == 0
        began, waits = await io_waits_while_receiving(node, 0.3)
    assert waits and all(timeout > 0 for _, timeout in waits)


async def test_round_trips_with_busy_polling_on_both_nodes(tmp_path):
    """What busy polling is for (request/response) still works, and both nodes end cleanly."""
    async with open_pair(tmp_path / "bus") as (a, b):
        for node in (a, b):
            node.sysctl.set("net.core.busy_poll", 1000)
        await echo.start(b, 5001)
        done, _ = await echo.round_trips(a, "10.0.0.2", 5001, seconds=0.5)
    assert done > 0


@pytest.mark.parametrize("value", ["-1", "100001", "1.5"])
def test_the_window_is_bounded(value):
    from rumpnet.kern.sysctl import Sysctl
    with pytest.raises(SysctlError, match="net.core.busy_poll"):
        Sysctl().set("net.core.busy_poll", value)
