#!/usr/bin/env python3
"""Opens N HTTP/2-over-TLS connections (ALPN h2) to HOST:PORT, makes one GET on each, reads its
response to the end, and holds the connections idle.

No HTTP/2 library: the preface, an empty SETTINGS, the server's SETTINGS acknowledged, one
HEADERS frame (HPACK: static indexes and one literal), frames read and dropped after. Prints
`held N` once every response has ended, then waits until killed or --max-seconds.
"""
import argparse
import asyncio
import ssl
import struct
import sys

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


async def hold_one(host, port, authority, counts, gate, tls, done_all):
    async with gate:
        try:
            reader, writer = await asyncio.open_connection(host, port, ssl=tls, server_hostname=authority)
        except OSError as error:
            counts["failed"] += 1
            if counts["failed"] <= 5:
                print(f"connect failed: {error}", file=sys.stderr, flush=True)
            return
        if writer.get_extra_info("ssl_object").selected_alpn_protocol() != "h2":
            counts["failed"] += 1
            print("the server did not choose h2", file=sys.stderr, flush=True)
            return
        block = b"\x82\x87\x84\x01" + bytes([len(authority)]) + authority.encode()
        writer.write(PREFACE + frame(4, 0, 0, b"") + frame(1, 0x5, 1, block))
        await writer.drain()
        buf = b""
        answered = False
        try:
            while not answered:
                data = await reader.read(65536)
                if not data:
                    counts["failed"] += 1
                    return
                buf += data
                while len(buf) >= 9:
                    length = int.from_bytes(buf[:3], "big")
                    if len(buf) < 9 + length:
                        break
                    kind, flags, stream = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                    buf = buf[9 + length:]
                    if kind == 4 and not flags & 1:
                        writer.write(frame(4, 1, 0, b""))
                    if stream == 1 and kind in (0, 1) and flags & 1:
                        answered = True
                    if kind == 3 and stream == 1:
                        counts["failed"] += 1
                        return
        except OSError:
            counts["failed"] += 1
            return
    counts["held"] += 1
    if counts["held"] + counts["failed"] == counts["wanted"]:
        done_all.set()
    try:
        while await reader.read(4096):
            pass
    except OSError:
        pass


async def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("-n", type=int, default=3000)
    parser.add_argument("--authority", default="localhost")
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    tls.set_alpn_protocols(["h2"])
    counts = {"held": 0, "failed": 0, "wanted": args.n}
    done_all = asyncio.Event()
    gate = asyncio.Semaphore(200)
    tasks = [asyncio.create_task(hold_one(args.host, args.port, args.authority, counts, gate, tls, done_all))
             for _ in range(args.n)]
    await asyncio.wait_for(done_all.wait(), timeout=args.max_seconds)
    print(f"held {counts['held']} failed {counts['failed']}", flush=True)
    await asyncio.sleep(args.max_seconds)
    for t in tasks:
        t.cancel()


if __name__ == "__main__":
    asyncio.run(main())
