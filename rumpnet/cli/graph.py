"""rumpnet graph: draw a scenario's topology (nodes, buses, taps, addresses) to project in class.

    rumpnet graph SCENARIO [-o FILE.svg | FILE.png | FILE.dot]

SVG is drawn by rumpnet itself; PNG needs Graphviz's dot (apt-get install
graphviz); .dot is the Graphviz source. Without -o the DOT text is printed.
"""

from pathlib import Path
import shutil
import subprocess

from ..scenario.graph import dot, svg
from ..scenario.schema import ScenarioError, load
from .common import Parser, Usage, fail

FORMATS = (".svg", ".png", ".dot")


def main(argv, server):
    parser = Parser("graph", "Draw a scenario's topology as SVG, PNG (with Graphviz's dot) or DOT.", node=False)
    parser.add_argument("-o", dest="output", metavar="FILE", help="FILE.svg, FILE.png or FILE.dot (default: DOT "
                                                                 "on standard output)")
    parser.add_argument("scenario")
    args = parser.parse_args(argv)
    suffix = Path(args.output).suffix.lower() if args.output else ".dot"
    if suffix not in FORMATS:
        raise Usage(f"-o {args.output}: the name must end in .svg, .png or .dot")
    try:
        scenario = load(args.scenario)
    except ScenarioError as e:
        return fail("graph", str(e))
    if not args.output:
        print(dot(scenario), end="")
        return 0
    if suffix == ".png":
        if shutil.which("dot") is None:
            return fail("graph", "PNG needs Graphviz's dot: install it (apt-get install graphviz), or write .svg")
        done = subprocess.run(["dot", "-Tpng", "-o", args.output], input=dot(scenario), text=True,
                              capture_output=True)
        return fail("graph", f"dot: {done.stderr.strip()}") if done.returncode else 0
    try:
        Path(args.output).write_text(svg(scenario) if suffix == ".svg" else dot(scenario))
    except OSError as e:
        return fail("graph", f"{args.output}: {e.strerror}")
    return 0
