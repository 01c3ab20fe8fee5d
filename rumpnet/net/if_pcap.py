"""A pcap tap on an interface: every frame in and out, to a file tcpdump reads (BSD's bpf, smoltcp's PcapWriter).

The tap is the layer nearest the wire: it records what the driver put on
the medium and what it took off it, before any fault injection on input and
after it on output, as a tap on the cable would. It writes once per batch.
"""

import errno
import logging
import time

from . import pcap
from .ifnet import InterfaceError, Layer

log = logging.getLogger(__name__)  # the node's log


class PcapTap(Layer):
    depth = 2

    def __init__(self, ifname, path):
        try:
            self.file = open(path, "wb")  # noqa: SIM115 -- open until the tap is removed
        except OSError as e:
            raise InterfaceError(e.errno or errno.EIO, f"{ifname}: pcap {path}: {e.strerror}") from None
        self.path = path
        self.writer = pcap.Writer(self.file)
        self.file.flush()

    def _record(self, frames):
        """Append a batch; a file that cannot take more (disk full) ends the capture, not the node."""
        if self.file.closed:
            return
        sec, usec = divmod(time.time_ns() // 1000, 1_000_000)
        try:
            for frame in frames:
                self.writer.write(frame, sec, usec)
            self.file.flush()
        except OSError as e:
            log.warning(f"pcap {self.path}: {e.strerror}; capture stopped")
            self.close()

    def input(self, frames, up):
        self._record(frames)
        up(frames)

    def output(self, frames, down):
        self._record(frames)
        down(frames)

    def describe(self):
        return {"pcap": self.path}

    def close(self):
        try:
            self.file.close()
        except OSError:
            pass  # what the buffer held is lost with the file system's room
