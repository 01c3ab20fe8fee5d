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
        ("fastforward", "packets fast forwarded"),
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
        ("predicted", "datagrams taken in one step (header prediction)"),
        ("output", "datagrams sent"),
        ("predicted_output", "datagrams sent in one step (header prediction)"),
    ],
    "tcp": [
        ("output", "packets sent"),
        ("data_sent", "data packets sent"),
        ("data_bytes_sent", "data bytes sent"),
        ("retransmitted", "data packets retransmitted"),
        ("retransmitted_bytes", "data bytes retransmitted"),
        ("tso_output", "segments handed to the interface to cut (TSO)"),
        ("acks_sent", "ack-only packets sent"),
        ("delayed_acks", "delayed acks sent"),
        ("probes_sent", "window probes sent"),
        ("syn_sent", "SYN and SYN-ACK packets sent"),
        ("rst_sent", "resets sent"),
        ("rst_rate_limited", "resets not sent because of net.inet.tcp.rstppslimit"),
        ("output_errors", "packets the IP layer refused (sent again later)"),
        ("input", "packets received"),
        ("too_short", "packets shorter than a header (dropped)"),
        ("bad_offset", "packets with a bad header offset (dropped)"),
        ("bad_checksum", "packets with a bad checksum (dropped)"),
        ("bad_flags", "packets with an impossible flag combination (dropped)"),
        ("bad_options", "packets with malformed options (dropped)"),
        ("broadcast", "packets to a broadcast address (dropped)"),
        ("no_port", "packets for a closed port (answered with a reset)"),
        ("acks_received", "acks for new data received"),
        ("bytes_acked", "bytes acked by received acks"),
        ("duplicate_acks", "duplicate acks received"),
        ("ack_too_much", "acks for unsent data (dropped)"),
        ("ack_too_old", "acks older than the send window (dropped, RFC 5961)"),
        ("data_received", "packets received in sequence"),
        ("data_bytes_received", "bytes received in sequence"),
        ("duplicate_bytes", "duplicate bytes received"),
        ("out_of_order", "out-of-order packets received"),
        ("reass_full", "out-of-order packets dropped: the reassembly queue was full"),
        ("beyond_window_bytes", "bytes received beyond the window (dropped)"),
        ("out_of_window", "packets outside the window (answered with an ack)"),
        ("rst_out_of_window", "resets outside the window (ignored)"),
        ("challenge_acks", "challenge acks sent for a reset or SYN in the window (RFC 5961)"),
        ("no_ack", "packets without ACK in a synchronized state (dropped)"),
        ("rst_received", "resets accepted"),
        ("data_after_close", "connections aborted by data after the socket was closed"),
        ("unread_drops", "connections reset on close because of unread data"),
        ("connect_attempts", "connection requests"),
        ("connects", "connections established"),
        ("conn_refused", "connections refused by a reset"),
        ("syncache_added", "SYNs received and cached"),
        ("syncache_overflow", "SYN cache entries dropped to stay within net.inet.tcp.syn_cache_limit"),
        ("syncache_timeout", "SYN cache entries timed out"),
        ("syncache_reset", "SYN cache entries reset by the peer"),
        ("syncache_unknown_ack", "acks to a listener matching no SYN cache entry (reset)"),
        ("listen_overflow", "completed connections refused: listen queue full (reset)"),
        ("rexmt_timeouts", "retransmit timeouts"),
        ("fast_retransmits", "fast retransmits (three duplicate acks)"),
        ("persist_timeouts", "persist timeouts"),
        ("timeout_drops", "connections dropped by retransmit timeout"),
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
        ("wakeups", "times the receive loop woke up to look at the bus"),
    ],
    "bridge": [
        ("forwarded", "frames forwarded to the member their destination was learned on"),
        ("flooded", "frames sent to every other member (destination unknown, broadcast or multicast)"),
        ("same_port", "frames for an address on the member they came in on (not forwarded)"),
        ("own_source", "frames from a member's own address heard on another member (dropped)"),
        ("table_full", "source addresses not learned: the address cache was full (maxaddr)"),
        ("aged", "learned addresses timed out"),
    ],
    "virt": [
        ("runt", "frames from the tap shorter than 14 bytes (dropped)"),
        ("oversized", "frames from the tap longer than its MTU allows (dropped)"),
        ("host_side_down", "frames not written: the host's side of the tap is down"),
        ("send_dropped", "frames not written: the tap's queue was full, or the tap gone"),
        ("tap_gone", "taps that went away while in use (the interface went down)"),
    ],
    "xennet": [
        ("send_dropped", "frames dropped: the transmit ring and the send queue full, or the link down"),
    ],
    "xvif": [
        ("send_dropped", "frames dropped: the transmit ring and the send queue full, or the link down"),
    ],
    "nat": [
        ("translated_out", "packets whose source was translated on the way out"),
        ("translated_in", "packets translated back on the way in"),
        ("errors_translated", "ICMP errors translated back (quoted header rewritten)"),
        ("unsupported", "packets out of a translating interface of no protocol it maps (dropped)"),
        ("table_full", "new flows refused: the translation table was full (dropped)"),
        ("expired", "translations expired"),
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
DRIVER_KINDS = ("shmif", "bridge", "virt", "xennet", "xvif", "impair")  # the blocks drivers and layers keep, not the stack


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
