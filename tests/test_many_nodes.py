"""Eight nodes on one bus: everyone reaches everyone, and a ping flood starves no one."""

import trio

import rumpnet

COUNT = 8


def address(i):
    return f"10.0.0.{i + 1}"


async def ping_all(url, targets, **options):
    async with rumpnet.connect(url) as node:
        sock = await node.socket(rumpnet.SOCK_RAW, rumpnet.IPPROTO_ICMP)
        results = {}
        for target in targets:
            results[target] = await rumpnet.ping(sock, target, quiet=True, out=lambda *a, **k: None, **options)
        return results


async def test_eight_nodes_reach_each_other_and_a_flood_starves_no_one(nodes, bus):
    eight = [nodes(f"n{i}") for i in range(COUNT)]
    for i, node in enumerate(eight):
        node.attach(bus, f"{address(i)}/24")

    everyone = {}

    async def from_node(i):
        targets = [address(j) for j in range(COUNT) if j != i]
        everyone[i] = await ping_all(eight[i].url, targets, count=1, deadline=5)

    async with trio.open_nursery() as nursery:
        for i in range(COUNT):
            nursery.start_soon(from_node, i)
    for i, results in everyone.items():
        for target, stats in results.items():
            assert stats.received == 1, f"{address(i)} -> {target}: no reply"

    # node 0 floods node 1 while every other node pings its neighbour once every 50 ms.
    flood = {}
    others = {}

    async def flooder():
        flood["stats"] = (await ping_all(eight[0].url, [address(1)], flood=True, interval=0.01, deadline=4))[address(1)]

    async def pinger(i):
        others[i] = (await ping_all(eight[i].url, [address(2 + (i - 1) % (COUNT - 2))], count=40,
                                    interval=0.05, deadline=10))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(flooder)
        await trio.sleep(0.3)
        for i in range(2, COUNT):
            nursery.start_soon(pinger, i)
    assert flood["stats"].received > 200, "the flood itself should get many replies"
    for i, results in others.items():
        (stats,) = results.values()
        assert stats.transmitted == 40
        assert stats.received >= 38, f"node {i} lost {40 - stats.received} of 40 pings during the flood"
