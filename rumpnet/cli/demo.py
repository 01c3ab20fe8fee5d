"""rumpnet demo: the quickstart lesson, two nodes on one shmif bus pinging each other.

It is `rumpnet run` of scenarios/quickstart.toml, in a temporary run
directory that it removes afterwards. No root needed.
"""

from importlib import resources
from pathlib import Path
import shutil
import tempfile

from . import run
from .common import Parser


def quickstart():
    """The quickstart lesson: installed as rumpnet.lessons, or in the checkout's scenarios/."""
    try:
        return resources.files("rumpnet.lessons") / "quickstart.toml"
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.toml"


def main(argv, server):
    Parser("demo", "Run the quickstart lesson: two nodes on a bus in a temporary directory, pinging.",
           node=False).parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="rumpnet-demo-")
    try:
        with resources.as_file(quickstart()) as lesson:
            status = run.main(["-v", "--dir", f"{workdir}/run", str(lesson)], None)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nThat was two unprivileged processes, each with its own TCP/IP stack, on one bus file.")
    print("Next: scenarios/ holds more lessons (rumpnet run FILE); docs/tutorial.md walks through them by hand.")
    return status
