"""The node's side of the control socket: each request becomes a call on the node.

A connection is like a client process: the sockets it opens get descriptor
numbers of its own and are closed when it goes away.
"""

import errno
import inspect
import os
import socket as pysocket
import stat
from dataclasses import asdict

import trio

from . import echo, perf
from .ifnet import InterfaceError
from .protocol import MessageStream, ProtocolError
from .sysctl import SysctlError


class Connection:
    def __init__(self, node, messages):
        self.node = node
        self.messages = messages
        self.files = {}
        self.perf_servers = {}  # descriptor of a receiver's socket -> perf.PerfServer
        self._next_fd = 3

    def _socket(self, fd):
        sock = self.files.get(fd)
        if sock is None:
            raise OSError(errno.EBADF, f"bad descriptor {fd}")
        return sock

    def _open(self, sock):
        fd = self._next_fd
        self._next_fd += 1
        self.files[fd] = sock
        return fd

    # Each handler takes the request's args (and data) and returns (result, data).

    async def call_socket(self, kind, proto=0):
        return self._open(self.node.socket(kind, proto))

    async def call_bind(self, fd, address):
        self._socket(fd).bind(tuple(address))

    async def call_connect(self, fd, address):
        self._socket(fd).connect(tuple(address))

    async def call_sendto(self, fd, address=None, *, data):
        return await self._socket(fd).sendto(data, tuple(address) if address else None)

    async def call_recvfrom(self, fd, bufsize=65535, timeout=None):
        data, address = await self._socket(fd).recvfrom(bufsize, timeout)
        return list(address), data

    async def call_setsockopt(self, fd, name, value):
        self._socket(fd).setsockopt(name, value)

    async def call_getsockname(self, fd):
        return list(self._socket(fd).getsockname())

    async def call_close(self, fd):
        self._socket(fd).close()
        del self.files[fd]
        self.perf_servers.pop(fd, None)

    # -- services that run in the node ---------------------------------------

    async def call_echo_start(self, port=echo.ECHO_PORT):
        """Start the echo service; it outlives this connection (stop it with echo_stop)."""
        echo.start(self.node, port)

    async def call_echo_stop(self, port=echo.ECHO_PORT):
        echo.stop(self.node, port)

    async def call_perf_server(self, port=perf.DEFAULT_PORT, rcvbuf=perf.SERVER_RCVBUF):
        """Start a receiver whose socket is this connection's descriptor: it stops when the client goes."""
        server = perf.start_server(self.node, port, rcvbuf=rcvbuf)
        fd = self._open(server.sock)
        self.perf_servers[fd] = server
        return fd

    async def call_perf_report(self, fd):
        """Wait for the next test the receiver at fd finishes; its report."""
        server = self.perf_servers.get(fd)
        if server is None:
            raise OSError(errno.EBADF, f"descriptor {fd} is not a perf receiver")
        try:
            return asdict(await server.reports.receive())
        except trio.EndOfChannel:
            raise OSError(errno.EBADF, "the receiver has stopped") from None

    async def call_perf_client(self, host, port=perf.DEFAULT_PORT, length=perf.DEFAULT_LENGTH,
                               duration=perf.DEFAULT_DURATION, bits_per_second=perf.DEFAULT_RATE):
        """Run a sender in the node for the test's duration; the report."""
        report = await perf.run_client(self.node, host, port, length=length, duration=duration,
                                       bits_per_second=bits_per_second)
        return asdict(report)

    async def call_if_list(self):
        return [ifp.describe() for ifp in self.node.interfaces.values()]

    async def call_if_create(self, name):
        self.node.create_interface(name)

    async def call_if_destroy(self, name):
        self.node.destroy_interface(name)

    async def call_if_linkstr(self, name, path):
        self.node.set_linkstr(name, path)

    async def call_if_address(self, name, address, prefixlen=None, netmask=None):
        self.node.add_address(name, address, prefixlen, netmask)

    async def call_if_delete_address(self, name):
        self.node.delete_address(name)

    async def call_if_up(self, name, up):
        self.node.set_up(name, up)

    async def call_if_capabilities(self, name, enable=0, disable=0):
        self.node.set_capabilities(name, enable, disable)

    async def call_route_list(self):
        return [route.describe() for route in self.node.routes.routes]

    async def call_route_add(self, destination, gateway):
        self.node.add_route(destination, gateway)

    async def call_route_get(self, address):
        return self.node.get_route(address).describe()

    async def call_route_delete(self, destination):
        self.node.delete_route(destination)

    async def call_arp_list(self):
        return self.node.arp.describe()

    async def call_arp_delete(self, address):
        try:
            self.node.arp.delete(address)
        except LookupError as e:
            raise OSError(errno.ENOENT, str(e)) from None
        except ValueError:
            raise OSError(errno.EINVAL, f"{address!r} is not an IPv4 address") from None

    async def call_sysctl_get(self, prefix=None):
        return self.node.sysctl.matching(prefix)

    async def call_sysctl_set(self, name, value):
        return self.node.sysctl.set(name, value)

    async def call_stats(self):
        return self.node.stats.snapshot()

    async def call_sockets(self):
        return [sock.describe() for sock in self.node.sockets()]

    async def call_halt(self):
        self.node.nursery.start_soon(_halt_soon, self.node)

    # -- the loop ------------------------------------------------------------

    async def handle(self, request, data):
        call = request.get("call")
        handler = getattr(self, f"call_{call}", None) if isinstance(call, str) else None
        reply = {"id": request.get("id")}
        out = b""
        try:
            if handler is None:
                raise OSError(errno.ENOSYS, f"unknown call {call!r}")
            args = request.get("args") or {}
            if not isinstance(args, dict):
                raise OSError(errno.EINVAL, "args must be an object")
            if call == "sendto":
                args["data"] = data
            try:
                inspect.signature(handler).bind(**args)
            except TypeError as e:
                raise OSError(errno.EINVAL, f"{call}: {e}") from None
            try:
                result = await handler(**args)
            except (TypeError, ValueError) as e:  # an argument of the wrong type or value
                raise OSError(errno.EINVAL, f"{call}: bad argument: {e}") from None
            if call == "recvfrom":
                result, out = result
            reply["result"] = result
        except (OSError, InterfaceError) as e:
            reply["errno"] = e.errno or errno.EIO
            reply["message"] = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        except SysctlError as e:
            reply["errno"] = errno.EINVAL
            reply["message"] = str(e)
        except Exception as e:  # a fault in one call must not take the node down with it
            reply["errno"] = errno.EIO
            reply["message"] = f"{call}: internal error: {type(e).__name__}: {e}"
        await self.messages.send(reply, out)

    def close(self):
        for sock in self.files.values():
            sock.close()
        self.files.clear()


async def _halt_soon(node):
    await trio.sleep(0.01)  # let the reply to halt go out first
    node.halt()


async def _serve_connection(node, stream):
    messages = MessageStream(stream)
    connection = Connection(node, messages)
    try:
        async with trio.open_nursery() as calls:
            while True:
                try:
                    message = await messages.receive()
                except (ProtocolError, trio.BrokenResourceError):
                    break
                if message is None:
                    break
                calls.start_soon(connection.handle, *message)
            calls.cancel_scope.cancel()
    except trio.BrokenResourceError:
        pass
    finally:
        connection.close()
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
    listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        await listener.bind(path)
    except OSError as e:
        raise OSError(e.errno, f"{path}: {e.strerror}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    listener.listen(64)
    try:
        async with trio.open_nursery() as clients:
            task_status.started()
            listeners = [trio.SocketListener(listener)]
            await trio.serve_listeners(lambda stream: _serve_connection(node, stream), listeners,
                                       handler_nursery=clients)
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


