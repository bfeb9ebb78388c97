"""A strict HTTP/2 server over TLS (ALPN h2 only) that records each request it is sent, for the
generator's differential against vegeta:

    h2_recording_server.py PORT CERT KEY OUT

Each whole request (its pseudo-headers, its fields in order and its body, hex) is appended to
OUT as one JSON line, and answered 200 "ok". python3-h2's state machine checks every frame, so
a request HTTP/2 does not allow ends the connection instead of being recorded. It prints "ready"
once it listens, and serves until killed.
"""

import json
import socket
import ssl
import sys
import threading

import h2.config
import h2.connection
import h2.events

lock = threading.Lock()


def serve(sock, out):
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, validate_inbound_headers=True)
    )
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    requests = {}
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    fields = [(n.decode(), v.decode()) for n, v in event.headers]
                    requests[event.stream_id] = {"fields": fields, "body": b""}
                elif isinstance(event, h2.events.DataReceived):
                    requests[event.stream_id]["body"] += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    request = requests.pop(event.stream_id, None)
                    if request is None:
                        continue
                    request["body"] = request["body"].hex()
                    with lock, open(out, "a") as f:
                        f.write(json.dumps(request) + "\n")
                    conn.send_headers(event.stream_id, [(":status", "200"), ("content-length", "2")])
                    conn.send_data(event.stream_id, b"ok", end_stream=True)
            sock.sendall(conn.data_to_send())
    except (OSError, h2.exceptions.ProtocolError, ssl.SSLError):
        return
    finally:
        sock.close()


def main():
    port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2"])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    print("ready", flush=True)
    while True:
        sock, _ = listener.accept()
        try:
            tls = context.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError):
            continue
        if tls.selected_alpn_protocol() != "h2":
            tls.close()
            continue
        threading.Thread(target=serve, args=(tls, out), daemon=True).start()


main()
