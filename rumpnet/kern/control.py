"""The node's side of the control socket: each request becomes a call on the node.

A connection is like a client process: the sockets it opens get descriptor
numbers of its own and are closed when it goes away.
"""

from dataclasses import asdict
import errno
import inspect
import logging
import os
import socket as pysocket
import stat
import typing

import trio

from ..net.if_bridge import parse_mac
from ..net.ifnet import InterfaceError
from ..netinet.ip import IPPROTO_ICMP, MAXTTL
from ..tools import echo, perf, perf_tcp
from ..tools.perf_tcp import PerfTcpRun
from ..tools.ping import PingRun, check_options
from .protocol import MAX_REPLY_DATA, MAX_REPLY_HEADER, PROTOCOL_VERSION, MessageStream, ProtocolError, encode
from .sockets import SOCK_RAW, SOMAXCONN, closed_on_error
from .sysctl import SysctlError

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64  # clients served at once; the next one is told so and closed
MAX_CALLS_IN_FLIGHT = 32  # waiting calls per connection; beyond them the node stops reading it
LAST_WORD_TIMEOUT = 1.0  # seconds to deliver a final error to a client that may not read it
MAX_RUNS = 8  # pings, and TCP perf senders, running at once for one connection (of each kind)

# Calls that may wait for the network or a timer (data, room, a connection, a test's end).
WAITING_CALLS = {"connect", "accept", "recvfrom", "wait_readable", "wait_writable", "perf_report", "perf_client",
                 "perf_tcp_start", "perf_tcp_output", "ping_output"}


class WithData(typing.NamedTuple):
    """What a call returns that sends bytes back: its result, and the data after the reply's JSON header.

    A call that does so says it in its signature (`-> WithData`), as one that
    takes the request's data names a `data: bytes` argument.
    """

    result: object
    data: bytes


class Connection:
    def __init__(self, node, messages):
        self.node = node
        self.messages = messages
        self.files = {}
        self.perf_servers = {}  # descriptor of a receiver's socket -> perf.PerfServer
        self.runs = {}  # descriptor -> PingRun or PerfTcpRun, until its last output is collected
        self._next_fd = 3

    def _socket(self, fd):
        sock = self.files.get(fd)
        if sock is None:
            raise OSError(errno.EBADF, f"bad descriptor {fd}")
        return sock

    def _descriptor(self):
        fd = self._next_fd
        self._next_fd += 1
        return fd

    def _open(self, sock):
        fd = self._descriptor()
        self.files[fd] = sock
        return fd

    def _run(self, fd, kind, what):
        """The run of kind at fd (EBADF naming what it should be)."""
        run = self.runs.get(fd)
        if not isinstance(run, kind):
            raise OSError(errno.EBADF, f"descriptor {fd} is not {what}")
        return run

    def _room_for(self, kind, what):
        if sum(isinstance(run, kind) for run in self.runs.values()) >= MAX_RUNS:
            raise OSError(errno.EAGAIN, f"this connection runs {MAX_RUNS} {what} already")

    def _start(self, run):
        fd = self._descriptor()
        self.runs[fd] = run
        self.node.nursery.start_soon(run.run)
        return fd

    async def _output(self, fd, kind, what):
        """The run at fd and what it put since the last call, (items, done); after done its descriptor is gone."""
        run = self._run(fd, kind, what)
        items, done = await run.output()
        if done:
            self.runs.pop(fd, None)
        return run, items, done

    # Each handler takes the request's args (and data) and returns its result. The
    # annotations are the JSON types each argument may have, checked before the call.

    async def call_hello(self, version: int):
        """The first call of every connection: both sides must speak one protocol version."""
        if version != PROTOCOL_VERSION:
            raise OSError(errno.EPROTONOSUPPORT, f"the client speaks protocol version {version}, "
                                                 f"this node version {PROTOCOL_VERSION}")
        return {"version": PROTOCOL_VERSION}

    async def call_socket(self, kind: int, proto: int = 0):
        return self._open(self.node.socket(kind, proto))

    async def call_bind(self, fd: int, address: list):
        await self._socket(fd).bind(tuple(address))

    async def call_connect(self, fd: int, address: list):
        """Waits, for a stream socket, until it is connected."""
        await self._socket(fd).connect(tuple(address))

    async def call_listen(self, fd: int, backlog: int = SOMAXCONN):
        await self._socket(fd).listen(backlog)

    async def call_accept(self, fd: int, timeout: float | None = None):
        """Waits for a connection: [its descriptor, [host, port] of its peer]."""
        sock, peer = await self._socket(fd).accept(timeout)
        return [self._open(sock), list(peer)]

    async def call_sendto(self, fd: int, address: list | None = None, *, data: bytes):
        """Never waits: a stream takes what fits (EAGAIN when nothing does); the client waits with wait_writable."""
        return self._socket(fd).send_nowait(data, tuple(address) if address else None)

    async def call_recvfrom(self, fd: int, bufsize: int = 65535, timeout: float | None = None) -> WithData:
        """[host, port], and the data received after the reply's header (at most what a client reads)."""
        if bufsize < 0:
            raise OSError(errno.EINVAL, "recvfrom: bufsize must not be negative")
        data, address = await self._socket(fd).recvfrom(min(bufsize, MAX_REPLY_DATA), timeout)
        return WithData(list(address), data)

    async def call_shutdown(self, fd: int, how: int):
        await self._socket(fd).shutdown(how)

    async def call_wait_readable(self, fd: int):
        await self._socket(fd).wait_readable()

    async def call_wait_writable(self, fd: int):
        await self._socket(fd).wait_writable()

    async def call_setsockopt(self, fd: int, name: str, value: bool | int | float | str | None):
        if name in OPTION_TYPES:
            check_field("setsockopt", name, value, OPTION_TYPES[name])
        self._socket(fd).setsockopt(name, value)

    async def call_getsockname(self, fd: int):
        return list(self._socket(fd).getsockname())

    async def call_getpeername(self, fd: int):
        return list(self._socket(fd).getpeername())

    async def call_close(self, fd: int):
        self._socket(fd).close()
        del self.files[fd]
        self.perf_servers.pop(fd, None)

    # -- services that run in the node ---------------------------------------

    async def call_echo_start(self, port: int = echo.ECHO_PORT):
        """Start the echo service; it outlives this connection (stop it with echo_stop)."""
        await echo.start(self.node, port)

    async def call_echo_stop(self, port: int = echo.ECHO_PORT):
        echo.stop(self.node, port)

    async def call_perf_server(self, port: int = perf.DEFAULT_PORT, rcvbuf: int = perf.SERVER_RCVBUF,
                               tcp: bool = False):
        """Start a receiver (UDP, or TCP) whose socket is this connection's descriptor: it stops when the client goes."""
        start = perf_tcp.start_server if tcp else perf.start_server
        server = await start(self.node, port, rcvbuf=rcvbuf)
        fd = self._open(server.sock)
        self.perf_servers[fd] = server
        return fd

    async def call_perf_report(self, fd: int):
        """Wait for the next test the receiver at fd finishes; its report."""
        server = self.perf_servers.get(fd)
        if server is None:
            raise OSError(errno.EBADF, f"descriptor {fd} is not a perf receiver")
        try:
            return asdict(await server.reports.receive())
        except trio.EndOfChannel:
            raise OSError(errno.EBADF, "the receiver has stopped") from None

    async def call_perf_client(self, host: str, port: int = perf.DEFAULT_PORT, length: int = perf.DEFAULT_LENGTH,
                               duration: float = perf.DEFAULT_DURATION,
                               bits_per_second: float = perf.DEFAULT_RATE):
        """Run a sender in the node for the test's duration; the report."""
        report = await perf.run_client(self.node, host, port, length=length, duration=duration,
                                       bits_per_second=bits_per_second)
        return asdict(report)

    async def call_perf_tcp_start(self, host: str, port: int = perf.DEFAULT_PORT,
                                  length: int = perf_tcp.DEFAULT_LENGTH,
                                  duration: float = perf_tcp.DEFAULT_DURATION,
                                  interval: float = perf_tcp.DEFAULT_INTERVAL):
        """Connect, and run a TCP sender in the node; its descriptor (for perf_tcp_output and perf_tcp_stop) and local end.

        The local end comes with the descriptor so that the command prints
        iperf's "connected with" line when the connection is made.
        """
        perf_tcp.check_parameters(length, duration, interval)
        self._room_for(PerfTcpRun, "TCP perf senders")
        with closed_on_error(await perf_tcp.connect(self.node, host, port)) as sock:
            self._room_for(PerfTcpRun, "TCP perf senders")  # another start may have taken the room meanwhile
        run = PerfTcpRun(sock, self.node.stats.tcp, length=length, duration=duration, interval=interval)
        return {"fd": self._start(run), "local": list(run.local)}

    async def call_perf_tcp_output(self, fd: int):
        """Wait for the intervals of the sender at fd that ended since the last call; with done, its report."""
        run, intervals, done = await self._output(fd, PerfTcpRun, "a TCP perf sender")
        if run.error is not None:
            raise OSError(run.error.errno, run.error.strerror)
        return {"intervals": [asdict(i) for i in intervals], "done": done,
                "report": asdict(run.report) if run.report else None}

    async def call_perf_tcp_stop(self, fd: int):
        """As Ctrl-C: the sender at fd stops, closes, and its report covers what it sent."""
        self._run(fd, PerfTcpRun, "a TCP perf sender").interrupt()

    async def call_ping_start(self, host: str, ident: int, count: int = 0, interval: float = 1.0, size: int = 56,
                              ttl: int = MAXTTL, deadline: float | None = None, flood: bool = False,
                              summary_only: bool = False):
        """Run a ping in the node (a raw ICMP socket of its own); its descriptor, for ping_output and ping_stop."""
        check_options(host, count, interval, size, ttl, deadline, ident)
        self._room_for(PingRun, "pings")
        sock = self.node.socket(SOCK_RAW, IPPROTO_ICMP)
        sock.setsockopt("IP_TTL", ttl)
        return self._start(PingRun(sock, host, count=count, interval=interval, size=size, deadline=deadline,
                                   flood=flood, summary_only=summary_only, ident=ident))

    async def call_ping_output(self, fd: int):
        """Wait for lines of the ping at fd: {"lines": [[text, end], ...], "done": ..., "received": replies so far}."""
        run, lines, done = await self._output(fd, PingRun, "a ping")
        return {"lines": lines, "done": done, "received": run.stats.received}

    async def call_ping_stop(self, fd: int):
        """As Ctrl-C: the ping at fd stops, and its statistics are its last lines."""
        self._run(fd, PingRun, "a ping").interrupt()

    async def call_if_list(self):
        return [ifp.describe() for ifp in self.node.interfaces.values()]

    async def call_if_create(self, name: str):
        self.node.create_interface(name)

    async def call_if_destroy(self, name: str):
        self.node.destroy_interface(name)

    async def call_if_linkstr(self, name: str, path: str):
        self.node.set_linkstr(name, path)

    async def call_if_address(self, name: str, address: str, prefixlen: int | None = None,
                              netmask: str | None = None):
        self.node.add_address(name, address, prefixlen, netmask)

    async def call_if_delete_address(self, name: str):
        self.node.delete_address(name)

    async def call_if_up(self, name: str, up: bool):
        self.node.set_up(name, up)

    async def call_if_capabilities(self, name: str, enable: int = 0, disable: int = 0):
        self.node.set_capabilities(name, enable, disable)

    async def call_if_pcap(self, name: str, path: str | None = None):
        self.node.set_pcap(name, path)

    async def call_if_impair(self, name: str, loss: float = 0.0, delay: float = 0.0, jitter: float = 0.0,
                             duplicate: float = 0.0, reorder: float = 0.0, corrupt: float = 0.0, rate: int = 0,
                             seed: int = 0):
        self.node.set_impairment(name, {"loss": loss, "delay": delay, "jitter": jitter, "duplicate": duplicate,
                                        "reorder": reorder, "corrupt": corrupt, "rate": rate, "seed": seed})

    async def call_bridge_list(self):
        """Every bridge, as brconfig -a shows them."""
        now = self.node.now()
        return [ifp.driver.describe_bridge(now) for ifp in self.node.interfaces.values() if ifp.kind == "bridge"]

    async def call_bridge_show(self, name: str):
        return self.node.bridge(name).describe_bridge(self.node.now())

    async def call_bridge_add(self, name: str, member: str):
        self.node.bridge_add(name, member)

    async def call_bridge_delete(self, name: str, member: str):
        self.node.bridge(name).delete(member)

    async def call_bridge_maxaddr(self, name: str, size: int):
        self.node.bridge(name).set_maxaddr(size)

    async def call_bridge_timeout(self, name: str, seconds: int):
        self.node.bridge(name).set_timeout(seconds, self.node.now())

    async def call_bridge_flush(self, name: str):
        self.node.bridge(name).flush()

    async def call_bridge_deladdr(self, name: str, address: str):
        try:
            mac = parse_mac(address)
        except ValueError as e:
            raise OSError(errno.EINVAL, f"deladdr: {e}") from None
        self.node.bridge(name).delete_address(mac)

    async def call_route_list(self):
        return [route.describe() for route in self.node.routes.routes]

    async def call_route_add(self, destination: str, gateway: str):
        self.node.add_route(destination, gateway)

    async def call_route_get(self, address: str):
        return self.node.get_route(address).describe()

    async def call_route_delete(self, destination: str):
        self.node.delete_route(destination)

    async def call_arp_list(self):
        return self.node.arp.describe()

    async def call_arp_delete(self, address: str):
        try:
            self.node.arp.delete(address)
        except LookupError as e:
            raise OSError(errno.ENOENT, str(e)) from None
        except ValueError:
            raise OSError(errno.EINVAL, f"{address!r} is not an IPv4 address") from None

    async def call_sysctl_get(self, prefix: str | None = None):
        return self.node.sysctl.matching(prefix)

    async def call_sysctl_set(self, name: str, value: int | str):
        return self.node.sysctl.set(name, value)

    async def call_stats(self):
        return self.node.stats.snapshot()

    async def call_sockets(self):
        return [sock.describe() for sock in self.node.sockets()]

    async def call_halt(self):
        self.node.nursery.start_soon(_halt_soon, self.node)

    # -- the loop ------------------------------------------------------------

    async def serve(self):
        """Answer requests until the client goes, fails to say hello, or breaks the protocol.

        Calls that wait (WAITING_CALLS) run alongside the others, at most
        MAX_CALLS_IN_FLIGHT at once; every other call is answered in turn, so a
        client that does not read its replies stops the node reading its requests.
        A waiting call keeps only its checked arguments, never the request's bytes.
        """
        slots = trio.Semaphore(MAX_CALLS_IN_FLIGHT)
        greeted = False
        async with trio.open_nursery() as waiting:
            try:
                while (message := await self.messages.receive()) is not None:
                    request, data = message
                    request_id, name = request.get("id"), request.get("call")
                    if type(request_id) is not int:
                        raise ProtocolError("request id must be an integer")
                    if not greeted and name != "hello":
                        raise ProtocolError(f"the first call must be hello (this node speaks protocol "
                                            f"version {PROTOCOL_VERSION})", errno.EPROTONOSUPPORT)
                    try:
                        call = CALLS.get(name) if isinstance(name, str) else None
                        if call is None:
                            raise OSError(errno.ENOSYS, f"unknown call {name!r}")
                        args = call.arguments(name, request.get("args"), data)
                    except OSError as e:
                        reply = await self.send_reply({"id": request_id, **_error(e)})
                    else:
                        if name in WAITING_CALLS:
                            await slots.acquire()
                            waiting.start_soon(self._answer_in_slot, slots, request_id, name, call, args)
                            continue
                        reply = await self.answer(request_id, name, call, args)
                    if not greeted and "errno" in reply:
                        break
                    greeted = True
            except ProtocolError as e:
                with trio.move_on_after(LAST_WORD_TIMEOUT):
                    await self.messages.send({"id": None, "errno": e.errno, "message": str(e)})
            waiting.cancel_scope.cancel()

    async def _answer_in_slot(self, slots, request_id, name, call, args):
        try:
            await self.answer(request_id, name, call, args)
        finally:
            slots.release()

    async def answer(self, request_id, name, call, args):
        """Make a call with checked arguments and send its reply; the reply's header."""
        out = b""
        try:
            result = await call.handler(self, **args)
            if call.gives_data:
                result, out = result
            reply = {"id": request_id, "result": result}
        except (OSError, InterfaceError, SysctlError) as e:
            reply = {"id": request_id, **_error(e)}
        except Exception as e:  # a fault of the node's own: say so, and leave its trace in the log
            log.exception("call %s failed inside the node", name)
            reply = {"id": request_id, "errno": errno.EIO, "message": f"{name}: internal error: {type(e).__name__}: {e}"}
        return await self.send_reply(reply, out)

    async def send_reply(self, reply, out=b""):
        """Send a reply whole; the header sent (an error instead when the reply cannot go)."""
        try:
            message = encode(reply, out)
        except (TypeError, ValueError) as e:
            log.exception("the reply to request %s cannot be encoded", reply["id"])
            reply = {"id": reply["id"], "errno": errno.EIO, "message": f"internal error: bad reply: {e}"}
            message = encode(reply)
        if len(message) > MAX_REPLY_HEADER:
            reply = {"id": reply["id"], "errno": errno.E2BIG,
                     "message": f"the reply ({len(message)} bytes) is longer than a client takes ({MAX_REPLY_HEADER})"}
            message = encode(reply)
        await self.messages.send_raw(message)
        return reply

    def close(self):
        for sock in self.files.values():
            sock.close()
        self.files.clear()
        for run in self.runs.values():
            run.cancel()
        self.runs.clear()


def _error(e):
    """An exception the stack raises for a bad request, as a reply's errno and message."""
    if isinstance(e, SysctlError):
        return {"errno": errno.EINVAL, "message": str(e)}
    return {"errno": e.errno or errno.EIO, "message": e.strerror if isinstance(e, OSError) and e.strerror else str(e)}


# -- what a call may be given ------------------------------------------------------

_JSON_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               list: "an array", dict: "an object", type(None): "null"}

# setsockopt's value, by option: its type depends on the option's name.
OPTION_TYPES = {"SO_BROADCAST": (bool, int), "SO_REUSEADDR": (bool, int), "SO_RCVBUF": (int,), "SO_SNDBUF": (int,),
                "SO_RCVTIMEO": (float, type(None)), "IP_TTL": (int,),
                "TCP_NODELAY": (bool, int)}


def check_field(call, field, value, types):
    """EINVAL naming the field unless value is of one of the JSON types (bool is not a number)."""
    if isinstance(value, bool):
        ok = bool in types
    elif isinstance(value, int):
        ok = int in types or float in types
    else:
        ok = isinstance(value, types)
    if not ok:
        wanted = " or ".join(_JSON_NAMES[t] for t in types)
        raise OSError(errno.EINVAL, f"{call}: {field} must be {wanted}, not {_JSON_NAMES.get(type(value), '?')}")
    if isinstance(value, str) and ("\0" in value or not value.isascii() and not _is_utf8(value)):
        raise OSError(errno.EINVAL, f"{call}: {field} must be text without NUL or lone surrogates")


def _is_utf8(text):
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class Call:
    """A handler and the JSON types of its arguments, read once from its signature."""

    def __init__(self, handler):
        self.handler = handler
        signature = inspect.signature(handler)
        self.takes_data = any(p.annotation is bytes for p in signature.parameters.values())
        self.gives_data = signature.return_annotation is WithData
        self.fields = {}
        self.required = set()
        for p in signature.parameters.values():
            if p.name == "self" or p.annotation is bytes:
                continue
            if p.annotation is p.empty:
                raise TypeError(f"{handler.__name__}: argument {p.name!r} has no JSON type")
            self.fields[p.name] = typing.get_args(p.annotation) or (p.annotation,)
            if p.default is p.empty:
                self.required.add(p.name)

    def arguments(self, name, args, data):
        """The keyword arguments for the handler; EINVAL naming whatever is missing, unknown or mistyped."""
        if args is None:
            args = {}
        elif not isinstance(args, dict):
            raise OSError(errno.EINVAL, f"{name}: args must be an object")
        for field, value in args.items():
            types = self.fields.get(field)
            if types is None:
                raise OSError(errno.EINVAL, f"{name}: unknown argument {field!r}")
            check_field(name, field, value, types)
        missing = self.required.difference(args)
        if missing:
            raise OSError(errno.EINVAL, f"{name}: missing argument {min(missing)!r}")
        if self.takes_data:
            args["data"] = data
        elif data:
            raise OSError(errno.EINVAL, f"{name}: takes no data, and the request has {len(data)} bytes of it")
        return args


CALLS = {name[len("call_"):]: Call(method) for name, method in vars(Connection).items() if name.startswith("call_")}


async def _halt_soon(node):
    await trio.sleep(0.01)  # let the reply to halt go out first
    node.halt()


async def _serve_connection(node, stream):
    connection = Connection(node, MessageStream(stream))
    try:
        await connection.serve()
    except* (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the client went away with replies unread
    except* Exception:  # a fault of the node's own: this client loses its connection, nobody else anything
        log.exception("a control connection failed")
    finally:
        connection.close()
        await trio.aclose_forcefully(stream)


async def _refuse(stream, message):
    """Tell a client in one reply why it is not served, and hang up."""
    try:
        with trio.move_on_after(LAST_WORD_TIMEOUT):
            await stream.send_all(encode({"id": None, "errno": errno.EAGAIN, "message": message}))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    await trio.aclose_forcefully(stream)


def claim_socket_path(path):
    """Remove a stale control socket at path; refuse a live one or anything else."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, f"{path}: exists and is not a socket")
    probe = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"{path}: a node is already serving there")


async def serve(node, path, *, task_status=trio.TASK_STATUS_IGNORED):
    """Listen on path (mode 0600) and serve every client until the node halts."""
    claim_socket_path(path)
    # The umask is the whole process's: bound without yielding, so that no other task makes a file under it.
    sock = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(path)
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"{path}: {e.strerror}") from None
    finally:
        os.umask(old_umask)
    listener = trio.socket.from_stdlib_socket(sock)
    os.chmod(path, 0o600)
    listener.listen(64)
    connections = trio.CapacityLimiter(MAX_CONNECTIONS)

    async def serve_one(stream):
        try:
            connections.acquire_nowait()
        except trio.WouldBlock:
            await _refuse(stream, f"too many connections: the node serves at most {MAX_CONNECTIONS} at once")
            return
        try:
            await _serve_connection(node, stream)
        finally:
            connections.release()

    try:
        async with trio.open_nursery() as clients:
            task_status.started()
            await trio.serve_listeners(serve_one, [trio.SocketListener(listener)], handler_nursery=clients)
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


