"""rumpnet brconfig: configure and show bridges, as NetBSD's brconfig(8).

    brconfig -a
    brconfig bridge0
    brconfig bridge0 add shmif0 add shmif1 up
    brconfig bridge0 delete IF | up | down | addr | maxaddr N | timeout S | flush | deladdr MAC

Create the bridge first with `ifconfig bridge0 create`. Every word of a
command line is checked before the first one is applied.
"""

from ..kern import numbers
from ..net.if_bridge import (BSTP_FWDDELAY, BSTP_HELLOTIME, BSTP_MAXAGE, BSTP_PRIORITY, IFBIF_NAMES, MAX_TIMEOUT,
                             parse_mac)
from ..net.ifnet import IFF_NAMES
from .common import Usage, run_client, take_server

HELP = __doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0]
TAKES_ONE = {"add": "an interface", "delete": "an interface", "maxaddr": "a size", "timeout": "a number of seconds",
             "deladdr": "an Ethernet address"}
ALONE = ("up", "down", "addr", "flush")


def printb(name, value, bits):
    """NetBSD's printb: name=HEX<NAMES>, names of the bits set, in bit order."""
    return f"{name}={value:x}<{','.join(text for bit, text in bits if value & bit)}>"


def check_value(keyword, text):
    """What brconfig's get_val takes: a plain number in the field's range; Usage naming the keyword."""
    try:
        if keyword == "deladdr":
            parse_mac(text)
            return text
        return numbers.integer(text, 0, MAX_TIMEOUT)
    except ValueError:
        kind = "address" if keyword == "deladdr" else "value"
        raise Usage(f"{keyword}: invalid {kind}: {numbers.shown(text)}") from None


def parse_commands(words):
    """The words after the bridge's name, as a list of (keyword, operand or None)."""
    commands = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in TAKES_ONE:
            if i + 1 >= len(words):
                raise Usage(f"{word} needs {TAKES_ONE[word]}")
            operand = words[i + 1]
            commands.append((word, operand if word in ("add", "delete") else check_value(word, operand)))
            i += 2
        elif word in ALONE:
            commands.append((word, None))
            i += 1
        else:
            raise Usage(f"{word!r}: unknown command (known: add IF, delete IF, up, down, addr, maxaddr N, "
                        "timeout S, flush, deladdr MAC)")
    return commands


def format_addresses(info, prefix):
    return [f"{prefix}{a['mac']} {a['member']} {a['expire']} {printb('flags', a['flags'], [])}"
            for a in info["addresses"]]


def format_bridge(info):
    lines = [f"{info['name']}: {printb('flags', info['flags'], IFF_NAMES)}",
             "\tConfiguration:",
             f"\t\tpriority {BSTP_PRIORITY} hellotime {BSTP_HELLOTIME} fwddelay {BSTP_FWDDELAY} "
             f"maxage {BSTP_MAXAGE}",
             "\t\tipfilter disabled flags 0x0",
             "\tInterfaces:"]
    for member in info["members"]:
        lines.append(f"\t\t{member['name']} {printb('flags', member['flags'], IFBIF_NAMES)}")
        lines.append(f"\t\t\tport {member['port']} priority {member['priority']}")
    lines.append(f"\tAddress cache (max cache: {info['maxaddr']}, timeout: {info['timeout']}):")
    lines += format_addresses(info, "\t\t")
    return "\n".join(lines)


async def apply(node, name, commands):
    for keyword, operand in commands:
        if keyword in ("up", "down"):
            await node.call("if_up", name=name, up=keyword == "up")
        elif keyword == "addr":
            for line in format_addresses(await node.call("bridge_show", name=name), "\t"):
                print(line)
        elif keyword in ("add", "delete"):
            await node.call(f"bridge_{keyword}", name=name, member=operand)
        elif keyword == "maxaddr":
            await node.call("bridge_maxaddr", name=name, size=operand)
        elif keyword == "timeout":
            await node.call("bridge_timeout", name=name, seconds=operand)
        elif keyword == "flush":
            await node.call("bridge_flush", name=name)
        elif keyword == "deladdr":
            await node.call("bridge_deladdr", name=name, address=operand)


def main(argv, server):
    words = list(argv)
    server = take_server(words, server)
    if words and words[0] in ("-h", "--help"):
        print("usage: rumpnet brconfig ...\n" + HELP)
        return 0
    if not words:
        raise Usage("name a bridge, or -a for every bridge")
    if words[0] == "-a":
        if words[1:]:
            raise Usage("-a takes no bridge and no command")

        async def show_all(node):
            for info in await node.call("bridge_list"):
                print(format_bridge(info))
        return run_client("brconfig", server, show_all)
    name = words[0]
    if name.startswith("-"):
        raise Usage(f"unknown option {name!r} (known: -a)")
    commands = parse_commands(words[1:])

    async def body(node):
        if commands:
            await apply(node, name, commands)
        else:
            print(format_bridge(await node.call("bridge_show", name=name)))

    return run_client("brconfig", server, body)
