"""rumpnet down: stop the nodes that `rumpnet run --keep` left running in a run directory.

    rumpnet down RUNDIR

Each node still answering is halted through its control socket, and the
taps the run made are removed; the run directory and what it holds (pcaps,
logs) stay.
"""

import trio

from ..client import NodeUnreachable, connect
from ..scenario import hostside
from ..scenario.runner import read_run_file
from ..scenario.schema import ScenarioError
from .common import Parser, fail

HALT_WAIT = 5.0  # seconds to wait for the halted nodes' sockets to go


def main(argv, server):
    parser = Parser("down", "Stop the nodes of a run directory.", node=False)
    parser.add_argument("rundir")
    args = parser.parse_args(argv)
    try:
        run = read_run_file(args.rundir)
    except ScenarioError as e:
        return fail("down", str(e))
    halted = trio.run(halt_all, [node["url"] for node in run["nodes"].values()])
    print(f"{halted} of {len(run['nodes'])} nodes were running and are stopped")
    host = run.get("host") or {}
    if host.get("kept") and host.get("taps"):  # a run that ended removed its own
        hostside.remove(host.get("netns"), host["taps"])
    return 0


async def halt_all(urls):
    halted = 0
    for url in urls:
        try:
            async with connect(url) as node:
                await node.call("halt")
                halted += 1
        except (NodeUnreachable, OSError):
            continue  # stopped already
    with trio.move_on_after(HALT_WAIT):
        for url in urls:
            while await _answers(url):
                await trio.sleep(0.02)
    return halted


async def _answers(url):
    try:
        async with connect(url):
            return True
    except NodeUnreachable:
        return False
