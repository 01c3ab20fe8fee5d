"""The public names, and the README's Python example run as written."""

import re
from pathlib import Path

import trio

import rumpnet

PUBLIC = {
    "Bus", "BusError", "BusHeader", "Cursor", "create",
    "NodeUnreachable", "RemoteNode", "RemoteSocket", "connect",
    "Driver", "Impairment", "InterfaceError", "register_driver", "unregister_driver",
    "Node", "open_node", "serve", "Protosw",
    "PingStats", "ping", "traceroute",
    "Socket", "SocketStream", "UserRequests", "SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "IPPROTO_ICMP",
    "IPPROTO_UDP", "IPPROTO_TCP", "SHUT_RD", "SHUT_WR", "SHUT_RDWR",
}


def test_public_names():
    assert set(rumpnet.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(rumpnet, name) is not None


def test_readme_python_example(tmp_path, capsys):
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    code = re.search(r"## From Python\n\n((?:    .*\n|\n)+)", readme).group(1)
    code = "\n".join(line[4:] for line in code.splitlines()).replace("/tmp/bus", str(tmp_path / "bus"))
    exec(compile(code, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert "3 packets transmitted, 3 packets received, 0.0% packet loss" in lines
    assert lines[-1] == "3 {'input': 3}"  # the three echo replies came in



def test_nodes_opened_together_halt_inside_their_block():
    """Halting an outer node cancels the inner one's tasks too: their Cancelled belong to the outer
    node's scope and must reach it, not come out of the block as a group (trio.run of its own, so that
    no test runner's scope absorbs what escapes)."""
    halted = []

    async def main():
        async with rumpnet.open_node() as outer, rumpnet.open_node() as inner:
            outer.halt()
            inner.halt()
        halted.extend((outer.halted.is_set(), inner.halted.is_set()))

    trio.run(main)
    assert halted == [True, True]
