"""The control socket's wire format: any bytes in, a message or one clear error out; the node survives."""

import socket
import struct

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from rumpnet.kern.protocol import PROTOCOL_VERSION, MessageStream, ProtocolError, decode_header, encode, parse_url

headers = st.dictionaries(st.text(max_size=10), st.one_of(st.integers(), st.text(max_size=20), st.none()),
                          max_size=5)


class Bytes:
    """A receive-only trio stream over fixed bytes, delivered in chunks."""

    def __init__(self, data, chunk):
        self.data, self.chunk = data, chunk

    async def receive_some(self, _max):
        piece, self.data = self.data[:self.chunk], self.data[self.chunk:]
        return piece


@given(header=headers, data=st.binary(max_size=300), chunk=st.integers(1, 64))
def test_round_trip(header, data, chunk):
    async def main():
        return await MessageStream(Bytes(encode(header, data), chunk)).receive()

    assert trio.run(main) == (header, data)


@given(raw=st.binary(max_size=200), chunk=st.integers(1, 64))
def test_any_bytes_give_a_message_none_or_protocol_error(raw, chunk):
    async def main():
        stream = MessageStream(Bytes(raw, chunk))
        while True:
            message = await stream.receive()
            if message is None:
                return
            assert isinstance(message[0], dict) and isinstance(message[1], bytes)

    try:
        trio.run(main)
    except ProtocolError:
        pass


@pytest.mark.parametrize("url, path", [("unix:///tmp/x.sock", "/tmp/x.sock"), ("unix://rel/x.sock", "rel/x.sock")])
def test_parse_url(url, path):
    assert parse_url(url) == path


def test_node_survives_garbage_and_unknown_calls(nodes):
    a = nodes("a")
    for junk in (b"\xff" * 64, struct.pack("!II", 5, 0) + b"nojsn", struct.pack("!II", 1 << 30, 0)):
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(a.path)
            raw.sendall(junk)
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(a.path)
        raw.sendall(encode({"id": 0, "call": "hello", "args": {"version": PROTOCOL_VERSION}}))
        assert b'"result":{"version":' in raw.recv(4096)
        raw.sendall(encode({"id": 1, "call": "reboot", "args": {}}))
        reply = raw.recv(4096)
        assert b"unknown call" in reply and b'"errno":38' in reply
        raw.sendall(encode({"id": 2, "call": "if_create", "args": {"nonsense": 1}}))
        assert b'"errno":22' in raw.recv(4096)
    assert a.run("ifconfig", "-l").returncode == 0


json_text = st.recursive(st.sampled_from(["1", "1.5", "true", "null", '"x"', "NaN", "-Infinity", "1e999", "[", "{"]),
                         lambda inner: st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]")
                         | st.lists(inner, max_size=3).map(lambda xs: "{" + ",".join(f'"k{i}":{x}' for i, x in
                                                                                      enumerate(xs)) + "}"))


@given(raw=st.one_of(st.binary(max_size=300), json_text.map(str.encode),
                     st.integers(1, 60000).map(lambda n: b"[" * n + b"]" * n)))
def test_header_is_one_finite_json_object_or_a_protocol_error(raw):
    try:
        header = decode_header(raw)
    except ProtocolError:
        return
    assert isinstance(header, dict)
    encode(header)  # no NaN or infinity got through: it encodes as strict JSON again
