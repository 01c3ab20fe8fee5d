"""rumpnet run: start a scenario's nodes, run its steps, and say which expectations held.

    rumpnet run [-v] [--keep] [--taps-on-host] [--dir RUNDIR] SCENARIO

The nodes start in a run directory (a new one in the temporary directory
unless --dir names one), with a pcap of every bus and a log per node. The
summary table ends the run; the exit status is 0 only when every step held
and no node died. --keep leaves the nodes running for exploring by hand;
`rumpnet down RUNDIR` stops them. Ctrl-C stops everything and leaves the run
directory. -v prints every step's output, not only a failed step's.
"""


import trio

from ..kern.tasks import only
from ..net import pcap
from ..net.bus import Bus, Cursor
from ..net.inotify import ModifyWatch
from ..scenario.runner import Result, Run
from ..scenario.schema import ScenarioError, load
from .common import Parser, fail
from .dumpbus import Tally, _follow

WATCH_EVERY = 0.1  # seconds between looks for nodes that died


def main(argv, server):
    parser = Parser("run", "Start a scenario's nodes, run its steps and print a summary.", node=False)
    parser.add_argument("--keep", action="store_true", help="leave the nodes running (stop them with rumpnet down)")
    parser.add_argument("-v", dest="verbose", action="store_true", help="print every step's output")
    parser.add_argument("--dir", metavar="RUNDIR", help="the run directory (default: a new one in $TMPDIR)")
    parser.add_argument("--taps-on-host", action="store_true",
                        help="make the scenario's [[taps]] on this host, not in a network namespace of the run")
    parser.add_argument("scenario")
    args = parser.parse_args(argv)
    try:
        scenario = load(args.scenario)
        run = Run(scenario, args.dir, args.taps_on_host)
    except ScenarioError as e:
        return fail("run", str(e))
    print(f"*** {scenario.name}: {scenario.description}" if scenario.description else f"*** {scenario.name}")
    print(f"*** run directory {run.dir}", flush=True)
    try:  # the nodes are stopped whatever happens, from the first fork on
        try:
            run.spawn()
        except (ScenarioError, OSError) as e:
            return fail("run", str(e))
        results = trio.run(session, run, args.verbose)
        if results is None:
            return 1
        if args.keep:
            run.keep()
            print("*** the nodes keep running; explore with:")
            for name in scenario.nodes:
                print(f"export RUMP_SERVER={run.url(name)}   # {name}")
            print(f"*** stop them with: rumpnet down {run.dir}")
        return 0 if all(r.ok for r in results) else 1
    except BaseException as error:
        if only(error, KeyboardInterrupt):
            print(f"\n*** interrupted: nodes stopped; the run directory is left: {run.dir}", flush=True)
        raise
    finally:
        if not run.kept:
            run.stop()


async def session(run, verbose=False):
    """Capture the buses, configure the nodes and run the steps; the Results, or None when set-up failed."""
    async with trio.open_nursery() as nursery:
        for name in run.scenario.buses:
            await nursery.start(capture, run.bus(name), run.dir / f"{name}.pcap")
        nursery.start_soon(watch, run)
        try:
            await run.configure()
        except ScenarioError as e:
            fail("run", str(e))
            nursery.cancel_scope.cancel()
            return None
        count = len(run.scenario.nodes)
        print(f"*** {count} node{'s' if count != 1 else ''} started in {run.started:.2f} s, "
              f"configured in {run.configured:.2f} s, {run.resident() / 2 ** 20:.0f} MB resident each (median)",
              flush=True)
        results = []
        total = len(run.scenario.steps)
        for step in run.scenario.steps:
            where = f"{step.node}: " if step.node else ""
            print(f"[{step.number}/{total}] {where}{step.text} ...", end=" ", flush=True)
            result = await run.step(step)
            print(f"{'ok' if result.ok else 'FAILED'}: {result.got} ({result.seconds:.1f} s)", flush=True)
            whole = verbose or step.run is not None and step.run[0] == "pingall"
            if result.output and (whole or not result.ok):  # else the end of a failed step's output
                lines = result.output.splitlines()
                print("".join(f"    {line}\n" for line in (lines if whole else lines[-10:])), end="")
            results.append(result)
        results += await run.finish_background()
        run.reap()
        results += [Result(None, f"{name}: {how}", False, 0.0) for name, how in run.deaths.items()]
        nursery.cancel_scope.cancel()
    print_summary(results)
    return results


async def capture(bus_path, pcap_path, task_status=trio.TASK_STATUS_IGNORED):
    """Write every frame that appears on a bus to a pcap file, until cancelled."""
    with Bus(bus_path, readonly=True) as bus, open(pcap_path, "wb") as out:
        writer = pcap.Writer(out)
        watch = ModifyWatch(bus.path)
        try:
            cursor = Cursor(bus)
            task_status.started()
            await _follow(cursor, watch, lambda r: writer.write(r.frame, r.sec, r.usec), out.flush, Tally())
        finally:
            watch.close()


async def watch(run):
    while True:
        for name in run.reap():
            print(f"\n*** node {name}: {run.deaths[name]}", flush=True)
        await trio.sleep(WATCH_EVERY)


def print_summary(results):
    rows = [("step", "node", "command", "expected", "got", "time")]
    for r in results:
        if r.step is None:  # a node that died
            rows.append(("-", r.got.split(":")[0], "(its process)", "running", r.got.split(": ", 1)[1], "-"))
            continue
        expected = r.step.expect + (f", output /{r.step.output.pattern}/" if r.step.output else "")
        rows.append((str(r.step.number), r.step.node or "-", _cut(r.step.text, 40), _cut(expected, 50) if r.step.run else "-",
                     r.got + ("" if r.ok else "  <-- FAILED"), f"{r.seconds:.1f} s"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    print("\n*** Summary")
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    held = sum(r.ok for r in results if r.step is not None)
    steps = sum(r.step is not None for r in results)
    dead = len(results) - steps
    print(f"*** {held} of {steps} steps held" + (f"; {dead} node{'s' if dead > 1 else ''} died" if dead else ""))


def _cut(text, width):
    return text if len(text) <= width else text[:width - 3] + "..."
