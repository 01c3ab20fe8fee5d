"""rumpnet bench --quick end to end: the report's structure, and every figure a positive number.

A benchmark prints figures; this test never compares one with a threshold.
"""

import json
import math
import os
import struct
import subprocess

import pytest
import trio

from rumpnet.tools import bench, echo, perf, perf_tcp
from rumpnet.testing import can_drop_privileges, rumpnet_command, run

TRIP_FIELDS = {"count", "lost", "min_us", "median_us", "p99_us"}
ONE_WAY_FIELDS = {"sent_per_s", "received_per_s", "loss_pct"}


def positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


pytestmark = pytest.mark.timeout(300)  # the first test waits for a whole `bench --quick`, about a minute


@pytest.fixture(scope="module")
def bench_run():
    """One `rumpnet bench --quick --json`: its process id (its namespaces are named after it) and its report."""
    with subprocess.Popen(rumpnet_command("bench", "--quick", "--json"), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        try:
            out, err = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, err
    return proc.pid, json.loads(out)


@pytest.fixture(scope="module")
def report(bench_run):
    return bench_run[1]


def test_round_trips(report):
    pings = report["settings"]["pings"]
    assert pings == bench.QUICK.pings
    trips = report["round_trip"]
    expected = {"bus", "bus_trio", "stack", "control", "cli", "xvif"} | ({"linux"} if "linux" not in report["skipped"] else set())
    assert expected <= set(trips)
    for name, figures in trips.items():
        assert set(figures) == TRIP_FIELDS, name
        assert all(positive(figures[key]) for key in ("count", "min_us", "median_us", "p99_us")), name
        assert figures["min_us"] <= figures["median_us"] <= figures["p99_us"], name
        assert figures["lost"] >= 0
    for name in ("bus", "bus_trio", "stack", "control", "cli", "xvif"):
        assert trips[name]["count"] + trips[name]["lost"] == pings


def test_the_bus_alone_back_to_back(report):
    """(a) back to back: the request/response floor, a rate of bounces with one frame outstanding."""
    back = report["bus_back_to_back"]
    assert set(back) == {"count", "round_trips_per_s"}
    assert 0 < back["count"] <= bench.BACK_TO_BACK * report["settings"]["pings"]
    assert positive(back["round_trips_per_s"])


def test_udp(report):
    stacks = report["udp"]
    assert "rumpnet" in stacks and "xvif" in stacks  # shmif and an xvif pair, in the same run
    assert ("linux" in stacks) != ("linux" in report["skipped"])
    for stack, figures in stacks.items():
        for size in bench.UDP_SIZES:
            one_way = figures[f"one_way_{size}"]
            assert set(one_way) == ONE_WAY_FIELDS
            assert positive(one_way["sent_per_s"]) and positive(one_way["received_per_s"]), (stack, size)
            assert 0 <= one_way["loss_pct"] <= 100
            assert one_way["received_per_s"] <= one_way["sent_per_s"], (stack, size)
        assert positive(figures["request_response"]["round_trips_per_s"]), stack
        assert ("request_response_busy_poll" in figures) == (stack != "linux"), stack  # nodes only
        if stack != "linux":
            assert positive(figures["request_response_busy_poll"]["round_trips_per_s"]), stack
    for stack, size in ((stack, size) for stack in ("rumpnet", "xvif") for size in bench.UDP_SIZES):
        paced = stacks[stack][f"paced_{size}"]
        assert set(paced) == ONE_WAY_FIELDS | {"rate"}
        assert positive(paced["rate"]) and positive(paced["received_per_s"])
        assert paced["received_per_s"] <= paced["sent_per_s"]


def test_tcp(report):
    tcp, skipped = report["tcp"], report["skipped"]
    assert "rumpnet" in tcp
    assert ("linux" in tcp) != ("linux" in skipped)
    assert ("rumpnet_tap" in tcp) == ("rumpnet_tap" in report["forwarding"])  # the tap's router carries both
    for name, figures in tcp.items():
        assert set(figures) == {"mbit_per_s", "bytes", "seconds", "retransmits"}, name
        assert positive(figures["bytes"]) and positive(figures["seconds"]), name
        assert figures["mbit_per_s"] == pytest.approx(figures["bytes"] * 8 / figures["seconds"] / 1e6), name
        assert isinstance(figures["retransmits"], int) and figures["retransmits"] >= 0, name
    for name in ("rumpnet", "rumpnet_tap"):
        if "linux" in tcp and name in tcp:
            assert report["ratios"][f"linux/{name} tcp Mbit/s"] == pytest.approx(
                tcp["linux"]["mbit_per_s"] / tcp[name]["mbit_per_s"])
    lines = bench.format_report(report).splitlines()
    assert any(line.startswith("TCP bulk, one connection") for line in lines)
    for name, label in bench.TCP_LABELS:
        assert any(line.startswith(label) for line in lines) == (name in tcp), name


def test_ratios_are_computed_from_the_rows_shown(report):
    ratios, trips = report["ratios"], report["round_trip"]
    for name in ("bus_trio", "stack", "control", "cli", "xvif"):
        assert ratios[f"{name}/a"] == pytest.approx(trips[name]["median_us"] / trips["bus"]["median_us"])
    if "linux" in trips:
        for name in ("stack", "cli"):
            assert ratios[f"{name}/c"] == pytest.approx(trips[name]["median_us"] / trips["linux"]["median_us"])
    if "linux" in report["udp"]:
        udp = report["udp"]
        for size in bench.UDP_SIZES:
            key = f"one_way_{size}"
            assert ratios[f"linux/rumpnet udp {size} B received/s"] == pytest.approx(
                udp["linux"][key]["received_per_s"] / udp["rumpnet"][key]["received_per_s"])
        for key, name in (("request_response", ""), ("request_response_busy_poll", ", busy_poll")):
            assert ratios[f"linux/rumpnet udp request/response/s{name}"] == pytest.approx(
                udp["linux"]["request_response"]["round_trips_per_s"] / udp["rumpnet"][key]["round_trips_per_s"])
        assert ratios["linux/a request/response/s"] == pytest.approx(
            udp["linux"]["request_response"]["round_trips_per_s"] / report["bus_back_to_back"]["round_trips_per_s"])
    assert ratios["a/rumpnet udp request/response/s"] == pytest.approx(
        report["bus_back_to_back"]["round_trips_per_s"] / report["udp"]["rumpnet"]["request_response"]["round_trips_per_s"])


def test_idle_node_memory_is_reported(report):
    assert positive(report["memory"]["idle_node_rss_mb"])


def test_startup_of_the_32_node_scenario(report):
    up = report["startup"]
    assert up["nodes"] == bench.STARTUP_HOSTS + 2 == 32
    assert up["answered"] == up["pinged"] == 32  # r1's own three addresses are not pinged, r2's two are
    assert all(positive(up[key]) for key in ("listening_s", "configured_s", "answering_s", "node_rss_mb"))
    assert up["listening_s"] + up["configured_s"] <= up["answering_s"]


def test_text_report(report):
    text = bench.format_report(report)
    lines = text.splitlines()
    assert lines[0].startswith(f"rumpnet bench: {bench.QUICK.pings} round trips 10 ms apart")
    assert any(line.startswith("(a) the bus alone, no event loop") for line in lines)
    assert any(line.startswith("(a') the bus alone, awaited in trio") for line in lines)
    assert any(line.startswith("(b) ping node to node") for line in lines)
    assert any(line.strip().startswith("rumpnet ping, the command") for line in lines)
    assert any(line.startswith("(b') ping over an xvif pair") for line in lines)
    assert any(line.startswith("(a) back to back, round trips/s") for line in lines)
    assert any(line.startswith("xvif 64 B flat out") for line in lines)
    assert any(line.startswith("rumpnet 64 B flat out") for line in lines)
    assert any(line.startswith(f"rumpnet   the same, busy_poll {bench.BUSY_POLL_US} µs") for line in lines)
    assert any(line.startswith("resident memory of an idle node") for line in lines)
    assert "start-up of 32 nodes on four buses, s" in lines
    assert any(line.strip().startswith("every node answering a ping") for line in lines)
    assert any(line.startswith("resident memory per node (median), MB") for line in lines)
    assert any(line.strip().startswith("stack/a") for line in lines)
    for what in report["skipped"]:
        assert any(line.startswith(f"skipped {what}: ") for line in lines)


@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces are made only when the benchmark runs as root")
def test_namespaces_removed(bench_run):
    """Its own namespaces: another run of the benchmark (on another test worker) may be making its own."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"rumpnet-bench-{bench_run[0]}-" not in names


async def test_perf_and_echo_run_unchanged_on_kernel_sockets():
    """The kernel's ends are the nodes' code: perf's receiver and sender, echo's service and client."""
    async with trio.open_nursery() as nursery:
        kernel = bench.KernelStack(nursery)
        server = await perf.start_server(kernel, 0, address="127.0.0.1")
        port = server.sock.getsockname()[1]
        report = await perf.run_client(kernel, "127.0.0.1", port, length=64, duration=0.2, bits_per_second=0)
        assert report.sent > 0 and report.remote == ("127.0.0.1", port)
        assert report.server.total == report.sent and 0 < report.server.received <= report.sent
        service = await echo.start(kernel, 0, address="127.0.0.1")
        done, _ = await echo.round_trips(kernel, "127.0.0.1", service.getsockname()[1], seconds=0.2)
        assert done > 0
        nursery.cancel_scope.cancel()


async def test_kernel_sockets_send_and_take_bursts_as_a_nodes_do():
    """The Linux reference is fair: a burst goes out, and what is queued comes in, in one pass
    through trio's loop, as on a node, not one pass a datagram."""
    passes = 0

    async def count_passes():
        nonlocal passes
        while True:
            await trio.lowlevel.checkpoint()
            passes += 1

    async with trio.open_nursery() as nursery:
        kernel = bench.KernelStack(nursery)
        with kernel.socket(bench.SOCK_DGRAM) as receiver, kernel.socket(bench.SOCK_DGRAM) as sender:
            await receiver.bind(("127.0.0.1", 0))
            await sender.connect(receiver.getsockname())
            nursery.start_soon(count_passes)
            await trio.lowlevel.checkpoint()
            passes = 0
            assert await sender.sendmmsg([bytes([n]) * 64 for n in range(100)]) == 100
            assert passes <= 2
            taken = await receiver.recvmmsg()
            assert [data[0] for data, _ in taken] == list(range(100))
            assert await sender.sendmmsg([b"x"] * 3) == 3
            assert len(await receiver.recvmmsg(vlen=2)) == 2
        nursery.cancel_scope.cancel()


async def test_perf_tcp_runs_unchanged_on_kernel_sockets():
    """The kernel's TCP ends are the nodes' code too, the retransmission count read from /proc/net/snmp."""
    async with trio.open_nursery() as nursery:
        kernel = bench.KernelStack(nursery)
        server = await perf_tcp.start_server(kernel, 0, address="127.0.0.1")
        port = server.sock.getsockname()[1]
        report = await perf_tcp.run_client(kernel, "127.0.0.1", port, duration=0.3, interval=0.1)
        assert report.bytes > 0 and report.server.bytes == report.bytes and report.retransmits >= 0
        assert sum(i.bytes for i in report.intervals) == report.bytes and len(report.intervals) >= 2
        nursery.cancel_scope.cancel()


def test_kernel_figures_need_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "root" in bench.linux_unavailable()


def test_forwarding_rows(report):
    forwarded, skipped = report["forwarding"], report["skipped"]
    expected = {"rumpnet"} | {name for name in ("rumpnet_tap", "linux") if f"forwarding_{name.split('_')[-1]}" not in skipped}
    assert set(forwarded) == expected
    for name, figures in forwarded.items():
        assert set(figures["round_trip"]) == TRIP_FIELDS, name
        assert figures["round_trip"]["count"] + figures["round_trip"]["lost"] == report["settings"]["pings"]
        assert set(figures["udp_64"]) == ONE_WAY_FIELDS, name
        assert positive(figures["udp_64"]["received_per_s"]), name
    if os.geteuid() != 0:
        assert skipped["forwarding_tap"] == "needs root to make a tap"


def test_added_per_hop_is_routed_minus_direct(report):
    added, trips, forwarded = report["added_per_hop_us"], report["round_trip"], report["forwarding"]
    assert added["rumpnet"] == pytest.approx(forwarded["rumpnet"]["round_trip"]["median_us"] - trips["stack"]["median_us"])
    assert report["ratios"]["rumpnet hop added/a"] == pytest.approx(added["rumpnet"] / trips["bus"]["median_us"])
    if "linux" in forwarded:
        assert added["linux"] == pytest.approx(forwarded["linux"]["round_trip"]["median_us"] - trips["linux"]["median_us"])
    text = bench.format_report(report)
    assert any(line.startswith("(d) node -> router -> node, two buses") for line in text.splitlines())


async def test_a_failing_helper_shows_its_error(tmp_path, capfd):
    """A helper's fault reaches bench's standard error, a dom0 node's helper's too."""
    not_a_store = tmp_path / "not-a-directory"
    not_a_store.write_text("")
    spec = {"role": "sink", "link": "xvif", "xenstore": str(not_a_store), "domid": 0, "ifname": "xvif1i0",
            "address": bench.NODE_ADDRESSES[1], "seconds": 5}
    with pytest.raises(bench.BenchError, match="exited before it reported"):
        async with bench.helper("udp", spec):
            pass
    assert "cannot use as a XenStore: Not a directory" in capfd.readouterr().err


async def test_a_benchmark_node_takes_its_ends_sysctl_variables(tmp_path):
    """The busy-polling request/response figure is taken by nodes that really poll."""
    end = {**bench.shmif_end(str(tmp_path / "bus")), "sysctl": {"net.core.busy_poll": bench.BUSY_POLL_US}}
    async with bench._end_node(end, bench.NODE_ADDRESSES[0]) as node:
        assert node.sysctl["net.core.busy_poll"] == bench.BUSY_POLL_US


async def test_a_node_that_cannot_start_says_why(tmp_path):
    """The node's own last words are in the BenchError, not lost."""
    not_a_store = tmp_path / "not-a-directory"
    not_a_store.write_text("")
    expected = r"exited with status 1: rumpnet server: .*cannot use as a XenStore: Not a directory$"
    with pytest.raises(bench.BenchError, match=expected):
        async with bench.node_process(f"unix://{tmp_path}/dom0.sock", {"domid": 0, "xenstore": str(not_a_store)}):
            pass


def current_cpu_latency():
    """The kernel's CPU latency limit now, in µs: what reading /dev/cpu_dma_latency gives."""
    with open(bench.CPU_DMA_LATENCY, "rb") as f:
        return struct.unpack("=i", f.read(4))[0]


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(bench.CPU_DMA_LATENCY),
                    reason="holding the CPU latency needs root and /dev/cpu_dma_latency")
def test_the_cpu_latency_is_held_for_the_run_and_let_go_after():
    before = current_cpu_latency()
    with bench.cpu_latency(7):
        assert current_cpu_latency() == min(before, 7)
    assert current_cpu_latency() == before
    with bench.cpu_latency(None):  # the default: the machine as it is
        assert current_cpu_latency() == before


def test_the_report_says_how_the_cpus_idled(report):
    assert report["settings"]["cpu_latency_us"] is None
    assert "cpuidle" in report["machine"]
    assert report["machine"]["cpuidle"] == bench.cpuidle_driver()


def test_a_cpu_latency_out_of_range_is_refused():
    done = run("bench", "--cpu-latency", "-1")
    assert done.returncode == 1
    assert done.stderr == "rumpnet bench: argument --cpu-latency: invalid int from 0 to 2000000000 value: '-1'\n"


@pytest.mark.skipif(not can_drop_privileges(), reason="needs root, to run the command as another user")
def test_holding_the_cpu_latency_unprivileged_says_it_needs_root():
    """Refused before any figure is taken: one line naming the file and why."""
    done = run("bench", "--quick", "--cpu-latency", "0", user="nobody", timeout=60)
    assert done.returncode == 1
    assert done.stderr == "rumpnet bench: --cpu-latency: /dev/cpu_dma_latency: Permission denied (it needs root)\n"
