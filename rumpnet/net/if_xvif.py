"""xvif(4): dom0's end of a Xen paravirtualised link, named xvif<domid>i<handle>.

The same ring pair as xennet(4) seen from the other side: the backend
receives what the guest put on the tx ring and transmits on the rx ring.
Its MAC address is the frontend's with byte 3 incremented (xenbus.py).
"""

from . import xenring
from .if_xennet import XenNetDriver


class XvifDriver(XenNetDriver):
    """The backend: transmits on the rx ring, receives from the tx ring."""

    kind = "xvif"
    send_ring, receive_ring = xenring.RX, xenring.TX
