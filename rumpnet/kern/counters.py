"""Named drop and event counters, one set per protocol, as `netstat -s` prints them."""

from collections import Counter, defaultdict

# Every counter a protocol can show, in the order netstat -s prints them, with its text.
DESCRIPTIONS = {
    "ether": [
        ("input", "frames received"),
        ("short", "frames shorter than an Ethernet header (dropped)"),
        ("unknown_type", "frames of an unknown ethertype (dropped)"),
        ("output", "frames sent"),
    ],
    "arp": [
        ("input", "packets received"),
        ("short", "packets too short (dropped)"),
        ("bad_format", "packets with a bad hardware or protocol format (dropped)"),
        ("bad_op", "packets with an unknown operation (dropped)"),
        ("own_source", "packets from our own hardware address (dropped)"),
        ("dup_address", "packets claiming one of our addresses (duplicate address)"),
        ("not_for_us", "requests for other hosts"),
        ("requests_received", "requests received"),
        ("replies_received", "replies received"),
        ("requests_sent", "requests sent"),
        ("replies_sent", "replies sent"),
        ("gratuitous_sent", "gratuitous requests sent"),
        ("hold_dropped", "packets dropped while waiting for a reply"),
        ("timeouts", "entries timed out"),
        ("evicted", "entries evicted to keep within net.inet.arp.max_entries"),
    ],
    "ip": [
        ("total", "total packets received"),
        ("bad_checksum", "bad header checksums (dropped)"),
        ("too_short", "packets shorter than a header (dropped)"),
        ("bad_version", "packets with a version other than 4 (dropped)"),
        ("bad_header_length", "packets with a bad header length (dropped)"),
        ("bad_length", "packets with a bad total length (dropped)"),
        ("fragment_dropped", "fragments dropped (no reassembly)"),
        ("delivered", "packets for this host"),
        ("unknown_protocol", "packets for an unknown protocol (dropped)"),
        ("not_for_us", "packets not for this host, not forwarding (dropped)"),
        ("forwarded", "packets forwarded"),
        ("ttl_exceeded", "packets whose TTL ran out while forwarding"),
        ("no_route", "packets with no route (dropped)"),
        ("output", "packets sent"),
        ("too_big", "packets too big for the link, not fragmented (EMSGSIZE)"),
        ("bad_source", "packets from a broadcast or multicast source (dropped)"),
        ("loopback_dropped", "packets to this host dropped because the input queue was full"),
    ],
    "icmp": [
        ("input", "messages received"),
        ("too_short", "messages shorter than a header (dropped)"),
        ("bad_checksum", "messages with a bad checksum (dropped)"),
        ("echo_received", "echo requests received"),
        ("echo_reply_sent", "echo replies sent"),
        ("bmcast_echo_ignored", "broadcast or multicast echo requests ignored"),
        ("unreach_received", "destination unreachable received"),
        ("bad_quote", "errors quoting less than a header and 8 bytes (not passed on)"),
        ("errors_sent", "error messages sent"),
        ("error_not_sent", "errors not sent in reply to an error or broadcast"),
        ("rate_limited", "errors not sent because of the rate limit"),
        ("output", "messages sent"),
    ],
    "udp": [
        ("input", "datagrams received"),
        ("too_short", "datagrams shorter than a header (dropped)"),
        ("bad_length", "datagrams with a bad length field (dropped)"),
        ("bad_checksum", "datagrams with a bad checksum (dropped)"),
        ("no_checksum", "datagrams with no checksum"),
        ("no_port", "datagrams for a closed port (dropped)"),
        ("no_port_broadcast", "broadcast datagrams for a closed port (dropped)"),
        ("full_socket", "datagrams dropped because a socket's queue was full"),
        ("delivered", "datagrams delivered"),
        ("output", "datagrams sent"),
    ],
    "shmif": [
        ("bus_laps", "times a reader was lapped by writers and resynchronised"),
        ("bus_corrupt", "times a corrupt record or header made a reader skip to the newest record"),
        ("oversized", "records longer than 1514 bytes (dropped)"),
        ("runt", "records shorter than 14 bytes (skipped)"),
        ("locks_stolen", "bus locks taken over from a dead holder"),
        ("bus_unusable", "times a bus file stopped being a usable bus (shrank, or lost its header)"),
        ("bus_unlinked", "bus files removed or replaced while in use"),
        ("send_dropped", "frames dropped: the bus unusable, or its lock busy while the queue was full"),
    ],
    "impair": [
        ("dropped", "frames dropped by loss"),
        ("duplicated", "frames duplicated"),
        ("reordered", "frames reordered"),
        ("corrupted", "frames corrupted"),
        ("delayed", "frames delayed"),
        ("rate_limited", "frames that waited for the rate limit"),
        ("overflow", "frames dropped: too many held back"),
        ("discarded", "frames held back when the impairment ended (dropped)"),
    ],
}
DRIVER_KINDS = ("shmif", "impair")  # the blocks drivers and layers keep, not the stack


class Counters:
    """Counters per protocol: `stats.ip["bad_checksum"] += 1` and `stats.snapshot()`.

    Drivers keep their own counters (`driver.stats`); the block of a driver's
    kind is their sum over the node's interfaces, those destroyed included.
    """

    def __init__(self):
        self._drivers = []  # the stats of every driver in use
        self._gone = defaultdict(Counter)  # kind -> the sum of the destroyed ones
        for proto in DESCRIPTIONS:
            if proto not in DRIVER_KINDS:
                setattr(self, proto, defaultdict(int))

    def add_driver(self, driver):
        self._drivers.append(driver)

    def remove_driver(self, driver):
        self._drivers.remove(driver)
        self._gone[driver.kind].update(driver.stats)

    def driver(self, kind):
        """The counters of every driver of a kind, summed."""
        total = Counter(self._gone[kind])
        for driver in self._drivers:
            if driver.kind == kind:
                total.update(driver.stats)
        return dict(total)

    def snapshot(self):
        return {proto: self.driver(proto) if proto in DRIVER_KINDS else dict(getattr(self, proto))
                for proto in DESCRIPTIONS}
