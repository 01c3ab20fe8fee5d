"""A router node's forwarding, both of its buses real files, in one trio program."""

import dpkt
import trio

from rumpnet import SOCK_DGRAM, open_node
from rumpnet.net.bus import Bus
from rumpnet.testing import inject

FAKE_MAC = b"\x02\x00\x00\x00\x00\x99"
PORT = 7000


def datagram_frame(router_mac, payload):
    """A frame from a host on the near bus to 10.0.1.1 beyond the router, its sums filled in by dpkt."""
    udp = dpkt.udp.UDP(sport=9000, dport=PORT, ulen=8 + len(payload), data=payload)
    ip = dpkt.ip.IP(src=bytes([10, 0, 0, 9]), dst=bytes([10, 0, 1, 1]), p=17, ttl=64, len=28 + len(payload), data=udp)
    return router_mac + FAKE_MAC + b"\x08\x00" + bytes(ip)


async def test_a_batch_forwarded_goes_out_in_one_burst(tmp_path):
    """What a router forwards from one received batch leaves on the other bus in one append (one
    lock and one wake-up, its records sharing one time stamp), not one append a frame."""
    near, far = str(tmp_path / "near"), str(tmp_path / "far")
    async with open_node(stack="router") as router, open_node() as host:
        router.add_address(router.create_shmif(near), "10.0.0.254/24")
        router.add_address(router.create_shmif(far), "10.0.1.254/24")
        host.add_address(host.create_shmif(far), "10.0.1.1/24")
        server = host.socket(SOCK_DGRAM)
        await server.bind(("0.0.0.0", PORT))
        await trio.sleep(0.1)  # the drivers watching their buses
        mac, out_mac = router.interfaces["shmif0"].mac, router.interfaces["shmif1"].mac
        inject(near, datagram_frame(mac, b"first"))  # the router learns the host's address
        assert await server.recv(timeout=5) == b"first"
        payloads = [b"datagram %d" % n for n in range(20)]
        inject(near, *[datagram_frame(mac, payload) for payload in payloads])  # read by the router as one batch
        with trio.fail_after(5):
            assert [await server.recv() for _ in payloads] == payloads
        assert router.stats.ip["forwarded"] == 21
        with Bus(far) as bus:
            sent = [r for r in bus.records() if r.frame[6:12] == out_mac and r.frame[12:14] == b"\x08\x00"]
        assert [r.frame[14 + 28:] for r in sent[-20:]] == payloads
        assert len({(r.sec, r.usec) for r in sent[-20:]}) == 1
