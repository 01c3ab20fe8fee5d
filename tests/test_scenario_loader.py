"""Scenario files are checked before anything starts: every mistake names its line and the fix."""

import os
from pathlib import Path
import pwd

from hypothesis import given, settings, strategies as st
import pytest

from rumpnet.scenario.schema import ScenarioError, load, parse

SCENARIOS = Path(__file__).parent.parent / "scenarios"
GOOD = """\
buses = ["lan"]

[nodes.a]
interfaces.shmif0 = { bus = "lan", inet = "10.0.0.1/24" }

[nodes.b]
stack = "router"
interfaces.shmif0 = { bus = "lan", inet = "10.0.0.2/24", impair = "delay 20ms loss 5%" }
routes = { default = "10.0.0.1" }

[[steps]]
node = "a"
run = "ping -c 1 10.0.0.2"

[[steps]]
wait = 0.5
"""


def test_a_good_scenario():
    scenario = parse(GOOD)
    assert list(scenario.nodes) == ["a", "b"]
    b = scenario.nodes["b"]
    assert (b.stack, b.routes, b.interfaces[0].impair) == ("router", [("default", "10.0.0.1")],
                                                            {"delay": 0.02, "loss": 0.05})
    assert [(s.number, s.line, s.node, s.run) for s in scenario.steps] == \
        [(1, 11, "a", ["ping", "-c", "1", "10.0.0.2"]), (2, 15, None, None)]


@pytest.mark.parametrize("old, new, line, message", [
    ('stack = "router"', 'stakc = "router"', 7, "unknown key 'stakc' in node b (did you mean 'stack'?)"),
    ('bus = "lan", inet = "10.0.0.2/24"', 'bus = "lam", inet = "10.0.0.2/24"', 8,
     "b's shmif0: no bus 'lam' (did you mean 'lan'?); add it to buses = [...]"),
    ('inet = "10.0.0.2/24"', 'inet = "10.0.0.1/24"', 8, "10.0.0.1 is given twice: a's shmif0 and b's shmif0"),
    ('node = "a"', 'node = "c"', 12, "step 1: no node 'c'"),
    ('run = "ping', 'run = "pnig', 13, "step 1: 'pnig' is not a command a node runs (did you mean 'ping'?)"),
    ('stack = "router"', 'stack = "routre"', 7, "node b: routre: no such stack profile"),
    ('loss 5%', 'loss 500%', 8, "b's shmif0: impair 'delay 20ms loss 500%': impair loss: "),
    ('default = "10.0.0.1"', 'default = "10.9.0.1"', 9, "gateway 10.9.0.1 is on none of its networks"),
    ('wait = 0.5', 'wiat = 0.5', 16, "unknown key 'wiat' in step 2 (did you mean 'wait'?)"),
    ('[nodes.a]', '[nodes.a', 3, "(this is not valid TOML)"),
], ids=["key typo", "bus typo", "duplicate address", "node typo", "command typo", "profile", "impairment",
        "unreachable gateway", "step key", "syntax"])
def test_mistakes_name_the_line(old, new, line, message, tmp_path):
    path = tmp_path / "lesson.toml"
    assert old in GOOD
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(ScenarioError) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert message in str(caught.value)


TAPS = """\
[[taps]]
name = "tap0"
inet = "192.168.77.2/24"

[nodes.r]
interfaces.virt0 = { tap = "tap0", inet = "192.168.77.1/24" }
"""


def test_taps():
    tap, = parse(TAPS).taps
    assert (tap.name, tap.address, tap.user) == ("tap0", "192.168.77.2/24", pwd.getpwuid(os.getuid()).pw_name)
    assert parse(TAPS.replace('inet = "192', 'user = "root"\ninet = "192', 1)).taps[0].user == "root"
    assert parse(GOOD).taps == []


@pytest.mark.parametrize("old, new, line, message", [
    ('name = "tap0"', 'nmae = "tap0"', 2, "unknown key 'nmae' in tap 1 (did you mean 'name'?) (known: name, user, inet)"),
    ('name = "tap0"', '', 1, 'tap 1 needs name = "tapN": the tap a virt interface names'),
    ('name = "tap0"', 'name = "a-much-too-long-name"', 2, "'a-much-too-long-name' is not an interface name"),
    ('inet = "192.168.77.2/24"', 'inet = "192.168.77.2"', 3, "tap tap0: inet '192.168.77.2' is not A.B.C.D/N"),
    ('inet = "192.168.77.2/24"', 'user = "nosuchuser-rumpnet"', 3, "tap tap0: no user 'nosuchuser-rumpnet'"),
    ('[[taps]]\nname = "tap0"\n', '[[taps]]\nname = "tap0"\n[[taps]]\nname = "tap0"\n', 1,
     "a tap is named twice in [[taps]]"),
    ('tap = "tap0"', 'tap = "tap1"', 2, 'tap tap0: no virt interface uses it: give one tap = "tap0", '
                                        'or leave out this [[taps]] table'),
    ('[[taps]]\nname = "tap0"\n', "".join(f'[[taps]]\nname = "tap{i}"\n' for i in range(257)), 1,
     "more than 256 taps"),
], ids=["key typo", "no name", "long name", "no prefix", "no user", "twice", "unused", "too many"])
def test_tap_mistakes_name_the_line(old, new, line, message):
    with pytest.raises(ScenarioError) as caught:
        parse(TAPS.replace(old, new, 1))
    assert str(caught.value).startswith(f"scenario.toml:{line}: ")
    assert message in str(caught.value)


def test_every_lesson_loads():
    for path in SCENARIOS.glob("*.toml"):
        assert load(path).nodes, path


_TOKENS = list('[]{}=".,#\' \n0123456789/%') + [
    "nodes", "buses", "steps", "interfaces", "shmif0", "inet", "run", "node", "bus", "lan", "10.0.0.1/24",
    "[[steps]]", "[nodes.a]", "wait", "impair", "loss", "routes", "default", "sysctl", "stack", "true", "a",
    "[[taps]]", "taps", "name", "user", "tap0", "virt0", "tap", "root"]
_TOMLISH = st.lists(st.sampled_from(_TOKENS), max_size=60).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_TOMLISH, st.text(max_size=200), st.builds(lambda cut: GOOD[:cut], st.integers(0, len(GOOD)))))
def test_any_text_is_a_scenario_or_a_scenario_error(text):
    try:
        parse(text)
    except ScenarioError as e:
        assert str(e).startswith("scenario.toml:")
