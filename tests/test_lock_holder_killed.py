"""A process killed with SIGKILL while holding the bus lock stalls the bus for about a second, not forever."""

import os
import signal
import subprocess
import sys
import time

from busreader import read_header
from rumpnet.net.bus import LOCK_STEAL_AFTER, Bus
from rumpnet.testing import as_user

HOLD_LOCK = """
import sys, time
from rumpnet.net.bus import Bus
bus = Bus(sys.argv[1])
bus.lock()
print("locked", flush=True)
time.sleep(600)
"""


def hold_lock_then_die(bus, user):
    argv = [sys.executable, "-c", HOLD_LOCK, bus]
    holder = subprocess.Popen(as_user(argv, user) if user else argv, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    assert holder.stdout.readline().strip() == "locked"
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait()


def test_nodes_carry_on_after_lock_holder_dies(pair, bus, user):
    a, _ = pair
    assert a.run("ping", "-c", "1", "10.0.0.2").returncode == 0
    hold_lock_then_die(bus, user)
    with open(bus, "rb") as raw:
        assert read_header(raw.read(32))["lock"] == 1  # the dead process left the lock taken
    started = time.monotonic()
    done = a.run("ping", "-c", "3", "-i", "0.2", "10.0.0.2")
    took = time.monotonic() - started
    assert done.returncode == 0
    assert "3 packets transmitted, 3 packets received" in done.stdout
    first_rtt = float(done.stdout.split("icmp_seq=0 ttl=255 time=")[1].split()[0])
    assert first_rtt < 1500, f"the first reply took {first_rtt} ms"
    assert took < 10
    stolen = [line for line in a.run("netstat", "-s", "-p", "shmif").stdout.splitlines() if "dead holder" in line]
    assert stolen and not stolen[0].strip().startswith("0 ")


def test_lock_taken_over_after_the_steal_delay(tmp_path):
    path = str(tmp_path / "bus")
    Bus(path).close()
    hold_lock_then_die(path, None)
    with Bus(path) as bus:  # opening a bus already made takes no lock: a node must not wait there
        started = time.monotonic()
        bus.lock()
        bus.unlock()
        waited = time.monotonic() - started
        assert LOCK_STEAL_AFTER <= waited < LOCK_STEAL_AFTER + 0.5
        assert bus.locks_stolen == 1
        started = time.monotonic()
        bus.lock()  # free again: no waiting at all
        bus.unlock()
        assert time.monotonic() - started < 0.05


def test_node_killed_mid_traffic_does_not_stop_the_others(nodes, bus):
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    for i, node in enumerate((a, b, c)):
        node.attach(bus, f"10.0.0.{i + 1}/24")
    flood = subprocess.Popen([sys.executable, "-m", "rumpnet", "ping", "-f", "-w", "5", "10.0.0.2"],
                             env=dict(os.environ, RUMP_SERVER=c.url), stdout=subprocess.DEVNULL)
    time.sleep(1.0)
    c.kill()
    flood.wait(timeout=10)
    done = a.run("ping", "-c", "3", "-i", "0.2", "10.0.0.2")
    assert done.returncode == 0 and "3 packets received" in done.stdout


HOLD_LOCK_AND_WRITE = """
import struct, sys, time
from rumpnet.net.bus import Bus
bus = Bus(sys.argv[1])
bus.lock()
print("locked", flush=True)
for i in range(15):  # a slow but live writer: `last` moves every 100 ms
    time.sleep(0.1)
    struct.pack_into("=I", bus.mem, 20, 24 * (i + 1))
bus.unlock()
"""


def test_a_live_holder_is_not_robbed(tmp_path):
    """Only a lock held while the ring stands still is taken over."""
    path = str(tmp_path / "bus")
    Bus(path).close()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK_AND_WRITE, path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with Bus(path) as bus:
            started = time.monotonic()
            bus.lock()
            bus.unlock()
            waited = time.monotonic() - started
            assert bus.locks_stolen == 0
            assert waited >= 1.2  # it waited for the holder's unlock, well past LOCK_STEAL_AFTER
    finally:
        holder.wait(timeout=10)
