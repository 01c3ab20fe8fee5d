"""inotify(7) on one file, awaited from trio: how shmif readers sleep until a writer's wake-up
(or until the file is removed, renamed over or has its attributes changed)."""

import ctypes
import os
import struct

import trio

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004  # also a change of the link count: the file was removed or renamed over
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_BUFFER = 4096
_EVENT = struct.Struct("=iIII")  # struct inotify_event: wd, mask, cookie, len (then len bytes of name)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]


class ModifyWatch:
    """A non-blocking inotify descriptor watching one path for IN_MODIFY and IN_ATTRIB."""

    def __init__(self, path):
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        if _libc.inotify_add_watch(self.fd, os.fsencode(path), IN_MODIFY | IN_ATTRIB) < 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(err, f"{path}: inotify_add_watch: {os.strerror(err)}")

    def drain(self):
        """Consume every queued event; returns the OR of their masks (0: there were none).

        One read takes every queued event that fits (and identical events
        coalesce into one), so only a nearly full buffer calls for another.
        The kernel writes whole events; a watch on a file gets no names, but
        an event's name length is stepped over all the same.
        """
        mask = 0
        while True:
            try:
                events = os.read(self.fd, _BUFFER)
            except BlockingIOError:
                return mask
            offset = 0
            while offset + _EVENT.size <= len(events):
                _wd, event_mask, _cookie, name_length = _EVENT.unpack_from(events, offset)
                mask |= event_mask
                offset += _EVENT.size + name_length
            if len(events) < _BUFFER // 2:
                return mask

    async def wait(self):
        """Sleep until a write after the last drain(); the caller drains before reading the bus."""
        await trio.lowlevel.wait_readable(self.fd)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

