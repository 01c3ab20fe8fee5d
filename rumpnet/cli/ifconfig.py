"""rumpnet ifconfig: create, configure and show interfaces, as NetBSD's ifconfig(8).

    ifconfig shmif0 create
    ifconfig shmif0 linkstr /tmp/bus
    ifconfig virt0 create [linkstr tap3]           (the host's tap0, or the tap named)
    ifconfig shmif0 inet 10.0.0.1 netmask 255.255.255.0     (or 10.0.0.1/24)
    ifconfig shmif0 up | down | destroy | delete | ip4csum | -udp4csum ...
    ifconfig shmif0 pcap FILE | -pcap
    ifconfig shmif0 impair loss 5% delay 20ms jitter 5ms duplicate 1% reorder 1% corrupt 1% rate 1mbit seed 7
    ifconfig shmif0 impair none
    ifconfig -a [-v] | ifconfig shmif0 [-v] | ifconfig -l

Every word of a command line is checked before the first one is applied.
"""

import ipaddress
import os
import re

from ..kern import numbers
from ..net import offload
from ..net.if_impair import MAX_DELAY, MAX_RATE, RATE_UNITS, Impairment
from ..net.ifnet import flag_names, netmask_prefixlen, parse_address
from .common import Usage, fail, run_client, take_server

HELP = __doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0]


def parse_netmask(text):
    """A netmask as the node takes it (dotted); Usage unless it is ones then zeros."""
    try:
        prefixlen = netmask_prefixlen(text)
    except ValueError:
        raise Usage(f"netmask {numbers.shown(text)} is not a netmask (255.255.255.0 or 0xffffff00)") from None
    return str(ipaddress.IPv4Network(f"0.0.0.0/{prefixlen}").netmask)


IMPAIR_KEYS = ("loss", "delay", "jitter", "duplicate", "reorder", "corrupt", "rate", "seed")
_TIME = re.compile(r"([0-9]+(?:\.[0-9]+)?)(us|ms|s)")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
_RATE = re.compile(r"([0-9]+)(" + "|".join(RATE_UNITS) + ")")


def parse_impair_value(key, text):
    """One impairment's value as ifconfig takes it: 5% (probabilities), 20ms (delay, jitter), 1mbit (rate), 7 (seed)."""
    try:
        if key == "seed":
            return numbers.integer(text, 0, 2 ** 32 - 1)
        if key == "rate":
            match = _RATE.fullmatch(text)
            if not match:
                raise Usage(f"impair rate {numbers.shown(text)} is not a rate (1mbit, 512kbit, 10gbit or 9600bit)")
            unit = RATE_UNITS[match.group(2)]
            return numbers.integer(match.group(1), 1, MAX_RATE // unit) * unit
        if key in ("delay", "jitter"):
            match = _TIME.fullmatch(text)
            if not match:
                raise Usage(f"impair {key} {numbers.shown(text)} is not a time (20ms, 1.5s or 500us)")
            return numbers.decimal(match.group(1), 0, MAX_DELAY / _UNITS[match.group(2)]) * _UNITS[match.group(2)]
        if not text.endswith("%"):
            raise Usage(f"impair {key} {numbers.shown(text)} is not a percentage (5% or 0.5%)")
        return numbers.decimal(text[:-1], 0, 100) / 100
    except ValueError as e:
        raise Usage(f"impair {key}: {e}") from None


def parse_impairment(words, i):
    """The words after `impair` from index i: (its arguments, the index of its last word)."""
    if i < len(words) and words[i] == "none":
        return {}, i
    args = {}
    while i < len(words) and words[i] in IMPAIR_KEYS:
        key = words[i]
        if i + 1 >= len(words):
            raise Usage(f"impair {key} needs a value")
        args[key] = parse_impair_value(key, words[i + 1])
        i += 2
    if not args:
        raise Usage(f"impair needs none or one or more of: {', '.join(IMPAIR_KEYS)}")
    try:
        Impairment(**args)
    except ValueError as e:
        raise Usage(f"impair: {e}") from None
    return args, i - 1


def parse_operations(words, name=""):
    """The words after the interface name, as a list of (call, args) to make in order.

    A linkstr is a bus file's path, made absolute here (the node has its own
    working directory), except for virt, whose linkstr is a tap's name.
    """
    ops = []
    i = 0

    def operand(keyword):
        if i + 1 >= len(words):
            raise Usage(f"{keyword} needs a value")
        return words[i + 1]

    while i < len(words):
        word = words[i]
        if word in ("create", "destroy", "up", "down", "delete"):
            ops.append((word, {}))
        elif word == "-linkstr":
            raise Usage("-linkstr: destroy the interface to leave its bus")
        elif word == "linkstr":
            link = operand(word)
            ops.append(("linkstr", {"path": link if name.startswith("virt") else os.path.abspath(link)}))
            i += 1
        elif word in ("inet", "netmask") or word[0].isdigit():
            if word == "netmask":
                raise Usage("netmask must follow an address")
            if word == "inet":
                address = operand(word)
                i += 1
            else:
                address = word
            args = {"address": address}
            try:
                parse_address(address)
            except ValueError:
                raise Usage(f"{address!r} is not an IPv4 address (A.B.C.D or A.B.C.D/N)") from None
            if i + 1 < len(words) and words[i + 1] == "netmask":
                if "/" in address:
                    raise Usage("give either A.B.C.D/N or a netmask, not both")
                i += 1
                args["netmask"] = parse_netmask(operand("netmask"))
                i += 1
            ops.append(("inet", args))
        elif word == "pcap":
            ops.append(("pcap", {"path": os.path.abspath(operand(word))}))
            i += 1
        elif word == "-pcap":
            ops.append(("pcap", {}))
        elif word == "impair":
            args, i = parse_impairment(words, i + 1)
            ops.append(("impair", args))
        elif word.lstrip("-") in offload.KEYWORDS:
            bits = offload.KEYWORDS[word.lstrip("-")]
            ops.append(("capabilities", {"disable": bits} if word.startswith("-") else {"enable": bits}))
        else:
            raise Usage(f"{word!r}: unknown keyword (known: create, destroy, linkstr PATH|TAP, inet ADDR [netmask M], "
                        "up, down, delete, pcap FILE, -pcap, impair ..., "
                        "ip4csum, udp4csum, tcp4csum, tso4 and their -negations)")
        i += 1
    return ops


async def apply(node, name, ops):
    created = False
    try:
        for call, args in ops:
            if call == "create":
                await node.call("if_create", name=name)
                created = True
            elif call == "destroy":
                await node.call("if_destroy", name=name)
            elif call == "linkstr":
                await node.call("if_linkstr", name=name, path=args["path"])
            elif call == "inet":
                await node.call("if_address", name=name, **args)
            elif call == "delete":
                await node.call("if_delete_address", name=name)
            elif call in ("up", "down"):
                await node.call("if_up", name=name, up=call == "up")
            elif call == "capabilities":
                await node.call("if_capabilities", name=name, **args)
            elif call == "pcap":
                await node.call("if_pcap", name=name, **args)
            elif call == "impair":
                await node.call("if_impair", name=name, **args)
    except OSError:
        if created:
            await node.call("if_destroy", name=name)
        raise


def format_interface(info, verbose=False):
    lines = [f"{info['name']}: flags=0x{info['flags']:x}<{flag_names(info['flags'])}> mtu {info['mtu']}"]
    if info["capabilities"]:
        lines.append(f"\tcapabilities=0x{info['capabilities']:x}<{offload.cap_names(info['capabilities'])}>")
        enabled = info["capenable"]
        lines.append(f"\tenabled=0x{enabled:x}<{offload.cap_names(enabled)}>" if enabled else "\tenabled=0")
    lines.append(f"\taddress: {info['mac']}")
    if info["linkstr"]:
        lines.append(f"\tlinkstr: {info['linkstr']}")
    if info.get("link_state"):
        lines.append("\tstatus: " + ("active" if info["link_state"] == "up" else "no carrier"))
    if info.get("pcap"):
        lines.append(f"\tpcap: {info['pcap']}")
    if info.get("impair"):
        lines.append(f"\timpair: {info['impair']}")
    for a in info["addresses"]:
        lines.append(f"\tinet {a['address']}/{a['prefixlen']} broadcast {a['broadcast']} flags 0x0")
    c = info["counters"]
    lines.append(f"\tinput: {c['ipackets']} packets, {c['ibytes']} bytes, {c['imcasts']} multicasts, "
                 f"{c['ierrors']} errors, {c['iqdrops']} drops")
    lines.append(f"\toutput: {c['opackets']} packets, {c['obytes']} bytes, {c['omcasts']} multicasts, "
                 f"{c['oerrors']} errors")
    if verbose:
        lines.append(f"\tkind: {info['kind']}")
    return "\n".join(lines)


def main(argv, server):
    words = list(argv)
    server = take_server(words, server)
    if words and words[0] in ("-h", "--help"):
        print("usage: rumpnet ifconfig ...\n" + HELP)
        return 0
    flags = set()
    while words and words[0].startswith("-") and words[0][1:] and set(words[0][1:]) <= set("alv"):
        flags |= set(words.pop(0)[1:])
    if "-v" in words[1:]:  # `ifconfig shmif0 -v` as well as `ifconfig -v shmif0`
        words.remove("-v")
        flags.add("v")
    if "l" in flags:
        if words:
            raise Usage("-l takes no interface")

        async def list_names(node):
            print(" ".join(i["name"] for i in await node.call("if_list")))
        return run_client("ifconfig", server, list_names)
    if not words or "a" in flags:
        if words:
            raise Usage("-a takes no interface")

        async def show_all(node):
            for info in await node.call("if_list"):
                print(format_interface(info, "v" in flags))
        return run_client("ifconfig", server, show_all)
    name, ops = words[0], parse_operations(words[1:], words[0])
    if name.startswith("-"):
        raise Usage(f"unknown option {name!r} (known: -a, -l, -v)")

    async def body(node):
        if ops:
            await apply(node, name, ops)
            return
        for info in await node.call("if_list"):
            if info["name"] == name:
                print(format_interface(info, "v" in flags))
                return
        return fail("ifconfig", f"{name}: no such interface")

    return run_client("ifconfig", server, body)
