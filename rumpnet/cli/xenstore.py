"""rumpnet xenstore-ls, xenstore-read, xenstore-write, xenstore-watch: Xen's store tools, on the stand-in.

They act on the store directory itself (--xenstore DIR, else
$RUMPNET_XENSTORE, else the default of docs/xen.md), not on a node. A
relative key is taken from /local/domain/0, as these tools run in dom0 do.
"""

import errno

import trio

from ..xen.store import MAX_VALUE, StoreError, XenStore, default_root, join
from .common import Parser, fail, ranged


def _parser(command, description):
    parser = Parser(command, description, node=False)
    parser.add_argument("--xenstore", metavar="DIR", help="the store directory (default: $RUMPNET_XENSTORE, "
                                                          "else under $XDG_RUNTIME_DIR or /tmp)")
    return parser


def _store(args):
    return XenStore(args.xenstore or default_root())


def absolute(key):
    return key if key.startswith("/") else join("/local/domain/0", key)


def quoted(value):
    """A value as xenstore-ls prints it: in double quotes, with C escapes for what is not plain text."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        else:
            out.append("\\x%02x" % ord(char) if ord(char) < 256 else char)
    return '"' + "".join(out) + '"'


def read_main(argv, server):
    parser = _parser("xenstore-read", "Print the value of each KEY, one a line.")
    parser.add_argument("key", nargs="+")
    args = parser.parse_args(argv)
    store = _store(args)
    for key in args.key:
        try:
            print(store.read(absolute(key)))
        except StoreError as e:
            return fail("xenstore-read", f"couldn't read path {key}" if e.errno == errno.ENOENT else e.strerror)
    return 0


def write_main(argv, server):
    parser = _parser("xenstore-write", f"Set each KEY to its VALUE (at most {MAX_VALUE} bytes), "
                                       "making the keys above it.")
    parser.add_argument("pairs", nargs="+", metavar="KEY VALUE")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        return fail("xenstore-write", f"{args.pairs[-1]}: a key needs a value (KEY VALUE [KEY VALUE ...])")
    store = _store(args)
    try:
        store.ensure()
        for key, value in zip(args.pairs[::2], args.pairs[1::2]):
            store.write(absolute(key), value)
    except StoreError as e:
        return fail("xenstore-write", e.strerror)
    return 0


def ls_main(argv, server):
    parser = _parser("xenstore-ls", "Print the keys under PATH (default /) as a tree, one space of indent "
                                    "a level, or with -f by full path.")
    parser.add_argument("-f", "--full", action="store_true", help="print every key's full path")
    parser.add_argument("path", nargs="?", default="/")
    args = parser.parse_args(argv)
    store = _store(args)
    top = absolute(args.path)
    try:
        if not store.is_dir(top):
            store.read(top)  # the reason: missing, or a value rather than children
            raise StoreError(errno.ENOTDIR, f"{top}: has a value, not children")
        depth0 = len([p for p in top.split("/") if p]) + 1
        for key, value in store.walk(top):
            if key == top:
                continue
            depth = len([p for p in key.split("/") if p])
            shown = quoted(value) if isinstance(value, str) else f"(unreadable: {value.strerror})"
            if args.full:
                print(f"{key} = {shown}")
            else:
                print(f"{' ' * (depth - depth0)}{key.rsplit('/', 1)[1]} = {shown}")
    except StoreError as e:
        return fail("xenstore-ls", e.strerror)
    return 0


def watch_main(argv, server):
    parser = _parser("xenstore-watch", "Print PATH, then every key under it that changes, one a line, "
                                       "until interrupted (or -n times).")
    parser.add_argument("-n", "--count", type=ranged(int, 1), default=None, metavar="N",
                        help="exit after N lines (the first is PATH itself)")
    parser.add_argument("path")
    args = parser.parse_args(argv)
    store = _store(args)

    async def watch():
        printed = 0
        with store.watch(absolute(args.path)) as watching:
            while args.count is None or printed < args.count:
                for key in await watching.changes():
                    print(key, flush=True)
                    printed += 1
                    if printed == args.count:
                        break

    try:
        store.ensure()
        trio.run(watch, restrict_keyboard_interrupt_to_checkpoints=True)
    except StoreError as e:
        return fail("xenstore-watch", e.strerror)
    return 0
