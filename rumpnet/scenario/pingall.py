"""pingall, as Mininet's: every node pings every address of every other node, once, and a matrix says who answered.

Each node sends from one raw ICMP socket, an echo request to every target at
once, each with its own sequence number, and takes a reply only from the
address it was sent to. Requests still unanswered are sent again every
RESEND seconds until the deadline: a router resolving many new neighbours at
once holds one packet for each, as BSD's ARP does, and drops the others.
"""

import os

import trio

from ..client import NodeUnreachable, connect
from ..kern.sockets import SOCK_RAW
from ..tools.ping import echo_request, parse_reply

IPPROTO_ICMP = 1
RESEND = 0.5  # seconds between tries of an unanswered request
DEADLINE = 3.0  # seconds a node waits for all its replies


async def reachability(nodes, deadline=DEADLINE, sources=None):
    """{source: {(target, address): answered}} for nodes {name: (url, [addresses])}, from sources (default all)."""
    results = {}
    async with trio.open_nursery() as nursery:
        for name in sources or nodes:
            url = nodes[name][0]
            targets = [(other, address) for other, (_, addresses) in nodes.items() if other != name
                       for address in addresses]
            nursery.start_soon(_from_node, name, url, targets, deadline, results)
    return results


async def _from_node(name, url, targets, deadline, results):
    answered = {target: False for target in targets}
    results[name] = answered
    ident = (os.getpid() + hash(name)) & 0xFFFF
    try:
        async with connect(url) as node:
            sock = await node.socket(SOCK_RAW, IPPROTO_ICMP)
            end = trio.current_time() + deadline
            while not all(answered.values()) and trio.current_time() < end:
                for seq, target in enumerate(targets):
                    if not answered[target]:
                        try:
                            await sock.sendto(echo_request(ident, seq, 8, trio.current_time()), (target[1], 0))
                        except OSError:
                            pass  # no route, or the interface is down: that target stays unanswered
                resend = min(end, trio.current_time() + RESEND)
                while trio.current_time() < resend:
                    try:
                        packet, (source, _) = await sock.recvfrom(65535, timeout=resend - trio.current_time())
                    except OSError:
                        break
                    got = parse_reply(packet, ident)
                    if got and got[0] == "reply" and 0 <= got[1] < len(targets) and targets[got[1]][1] == source:
                        answered[targets[got[1]]] = True
    except (NodeUnreachable, OSError):
        pass  # a node that cannot be reached reaches nobody


def matrix(nodes, results):
    """Mininet's lines: the header, one line per node (X where no answer came), the tally; and the tally."""
    lines = ["*** Ping: testing ping reachability"]
    sent = received = 0
    for name in nodes:
        cells = []
        for (other, address), ok in results.get(name, {}).items():
            label = other if len(nodes[other][1]) == 1 else f"{other}({address})"
            cells.append(label if ok else "X")
            sent += 1
            received += ok
        lines.append(f"{name} -> {' '.join(cells)}")
    dropped = 100 * (sent - received) // sent if sent else 0
    lines.append(f"*** Results: {dropped}% dropped ({received}/{sent} received)")
    return lines, sent, received


async def pingall_text(nodes, deadline=DEADLINE):
    """(0 when every ping was answered else 1, the matrix as text)."""
    lines, sent, received = matrix(nodes, await reachability(nodes, deadline))
    return (0 if sent == received else 1), "\n".join(lines) + "\n"
