#!/usr/bin/env python3
"""Opens N connections to HOST:PORT, sends one request on each, and holds them open.

Used by the benchmarks until `throng attack` exists. Prints `held N` once every request is
sent, then `closed N at T` (connections the server closed so far, at the event loop's clock) as
it changes, and exits when killed or after --max-seconds. Reads (and drops) whatever
the server sends, so that a finished response costs the server nothing on our account.
"""
import argparse
import asyncio
import ssl
import sys


async def hold_one(host, port, source, request, counts, connect_gate, tls):
    async with connect_gate:
        try:
            reader, writer = await asyncio.open_connection(
                host, port, local_addr=(source, 0) if source else None, ssl=tls)
        except OSError as error:
            counts["failed"] += 1
            if counts["failed"] <= 5:
                print(f"connect failed: {error}", file=sys.stderr, flush=True)
            return
        writer.write(request)
        await writer.drain()
        counts["sent"] += 1
    try:
        while await reader.read(4096):
            pass
    except OSError:
        pass
    counts["closed"] += 1


async def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("-n", type=int, default=15000, help="connections to hold")
    parser.add_argument("--header", action="append", default=[], help="extra request header")
    parser.add_argument("--source", help="source address to bind")
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--tls", action="store_true", help="TLS, certificate not checked")
    args = parser.parse_args()

    head = "GET / HTTP/1.1\r\nHost: %s\r\n" % args.host
    head += "".join(h + "\r\n" for h in args.header)
    request = (head + "\r\n").encode()
    counts = {"sent": 0, "failed": 0, "closed": 0}
    gate = asyncio.Semaphore(256)
    tls = None
    if args.tls:
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    tasks = [asyncio.create_task(hold_one(args.host, args.port, args.source, request, counts, gate, tls))
             for _ in range(args.n)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.max_seconds
    announced = False
    closed = 0
    while loop.time() < deadline:
        await asyncio.sleep(0.5)
        if not announced and counts["sent"] + counts["failed"] == args.n:
            print(f"held {counts['sent']} failed {counts['failed']}", flush=True)
            announced = True
        if counts["closed"] != closed:
            closed = counts["closed"]
            print(f"closed {closed} at {loop.time():.1f}", flush=True)
    for task in tasks:
        task.cancel()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
