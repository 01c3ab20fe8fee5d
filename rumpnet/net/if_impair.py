"""A fault injector on an interface's output: loss, delay with jitter, duplication, reordering,
corruption and a rate limit (smoltcp's FaultInjector, Linux's netem).

Each impairment is a probability per frame, or an amount of time, drawn from
a generator seeded by the user so that a run can be repeated. It acts on
frames as they leave, before the pcap tap records them, so a capture shows
what reached the wire. Held frames wait in a bounded heap and go out on trio's
clock, so tests can run it under a MockClock.

Jitter moves each frame's delay by up to that much either way, uniformly, so
frames may pass each other, as with netem's jitter. The rate limit is a
link of that speed: a frame leaves once the frames before it have been
serialised, after its delay, so the queue of a busy link shows as delay
until HELD frames wait and the next are dropped.
"""

from collections import Counter
from dataclasses import astuple, dataclass, fields
import heapq
import itertools
import random

import trio

from .ifnet import Layer

MAX_DELAY = 10.0  # seconds a frame may be held
MAX_RATE = 100 * 10 ** 9  # bits per second: 100gbit
REORDER_HOLD = 0.010  # seconds a reordered frame waits longer than the others, so later ones pass it
HELD = 1024  # frames held back at most; more are dropped and counted
ETHER_HDR_LEN = 14


@dataclass(frozen=True)
class Impairment:
    """What to do to outgoing frames: probabilities from 0 to 1, a delay in seconds, a seed."""

    loss: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    rate: int = 0  # bits per second; 0 is no limit
    seed: int = 0

    def __post_init__(self):
        for name in ("loss", "duplicate", "reorder", "corrupt"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} {value!r} is not a probability from 0 to 1")
        for name in ("delay", "jitter"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= MAX_DELAY:
                raise ValueError(f"{name} {value!r} is not a time from 0 to {MAX_DELAY:g} seconds")
        if not isinstance(self.rate, int) or isinstance(self.rate, bool) or not 0 <= self.rate <= MAX_RATE:
            raise ValueError(f"rate {self.rate!r} is not bits per second from 0 to {MAX_RATE}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed {self.seed!r} is not a whole number from 0 up")

    @property
    def none(self):
        return not any(astuple(self)[:-1])

    def describe(self):
        """As ifconfig shows it and takes it back: `loss 5% delay 20ms jitter 5ms rate 1mbit`."""
        words = []
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name in ("delay", "jitter") and value:
                words.append(f"{spec.name} {value * 1000:g}ms")
            elif spec.name == "rate" and value:
                words.append(f"rate {rate_text(value)}")
            elif spec.name == "seed":
                words.append(f"seed {value}")
            elif value:
                words.append(f"{spec.name} {value * 100:g}%")
        return " ".join(words)


RATE_UNITS = {"gbit": 10 ** 9, "mbit": 10 ** 6, "kbit": 10 ** 3, "bit": 1}  # as tc and netem write rates


def rate_text(bits):
    """A rate as tc writes it: 1mbit, 1500kbit, 64bit."""
    for unit, size in RATE_UNITS.items():
        if bits % size == 0:
            return f"{bits // size}{unit}"
    return f"{bits}bit"


class FaultInjector(Layer):
    depth = 1
    kind = "impair"  # its counters are netstat -s's block of that name

    def __init__(self, impairment, nursery):
        self.impairment = impairment
        self.rng = random.Random(impairment.seed)
        self.stats = Counter()
        self._held = []  # heap of (when due, order, frame, where it goes on)
        self._order = itertools.count()
        self._wake = trio.Event()
        self._link_free = 0.0  # when the rate-limited link has sent what it holds
        self._scope = trio.CancelScope()
        nursery.start_soon(self._release_loop)

    def output(self, frames, down):
        impairment, rng = self.impairment, self.rng
        now = trio.current_time()
        passed = []
        for frame in frames:
            if rng.random() < impairment.loss:
                self.stats["dropped"] += 1
                continue
            copies = 2 if rng.random() < impairment.duplicate else 1
            self.stats["duplicated"] += copies - 1
            if rng.random() < impairment.corrupt and len(frame) > ETHER_HDR_LEN:
                frame = self._corrupt(frame)
            hold = impairment.delay
            if impairment.jitter:
                hold = max(0.0, hold + rng.uniform(-impairment.jitter, impairment.jitter))
            self.stats["delayed"] += hold > 0
            if rng.random() < impairment.reorder:
                hold += REORDER_HOLD
                self.stats["reordered"] += 1
            for _ in range(copies):
                due = now + hold
                if impairment.rate and len(self._held) < HELD:  # a frame dropped takes no time on the link
                    due = self._serialise(due, len(frame))
                if due > now:
                    self._hold(due, frame, down)
                else:
                    passed.append(frame)
        if passed:
            down(passed)

    def _serialise(self, ready, length):
        """When a frame ready to go at `ready` has left a link of the rate: after those before it."""
        start = max(ready, self._link_free)
        if start > ready:
            self.stats["rate_limited"] += 1
        self._link_free = start + length * 8 / self.impairment.rate
        return self._link_free

    def _corrupt(self, frame):
        """One bit flipped past the Ethernet header, so the frame still reaches its host and its sums catch it."""
        self.stats["corrupted"] += 1
        at = self.rng.randrange(ETHER_HDR_LEN, len(frame))
        damaged = bytearray(frame)
        damaged[at] ^= 1 << self.rng.randrange(8)
        return bytes(damaged)

    def _hold(self, due, frame, down):
        if len(self._held) >= HELD:
            self.stats["overflow"] += 1
            return
        heapq.heappush(self._held, (due, next(self._order), frame, down))
        self._wake.set()

    async def _release_loop(self):
        """Send each held frame when it is due, those due together as one batch."""
        with self._scope:
            while True:
                with trio.move_on_at(self._held[0][0] if self._held else float("inf")):
                    await self._wake.wait()
                self._wake = trio.Event()
                now = trio.current_time()
                batch, down = [], None
                while self._held and self._held[0][0] <= now:
                    _, _, frame, to = heapq.heappop(self._held)
                    if to is not down and batch:
                        down(batch)
                        batch = []
                    down = to
                    batch.append(frame)
                if batch:
                    down(batch)

    def describe(self):
        return {"impair": self.impairment.describe(), "impair_counters": dict(self.stats)}

    def close(self):
        self.stats["discarded"] += len(self._held)
        self._held = []
        self._scope.cancel()
