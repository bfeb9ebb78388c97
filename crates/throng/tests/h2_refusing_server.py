"""An h2c server that turns requests down, for the generator's named HTTP/2 errors:

    h2_refusing_server.py PORT MODE

MODE `refuse`: every stream is reset with REFUSED_STREAM. MODE `goaway`: the first stream of
each connection is answered 200, and the streams after it get a GOAWAY whose last stream is the
first; the connection then closes, so that they must go elsewhere. It prints "ready" once it
listens, and serves until killed. Frames come from python3-h2's state machine.
"""

import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events
import h2.errors


def serve(sock, mode):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    answered = None
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if not isinstance(event, h2.events.RequestReceived):
                    continue
                stream = event.stream_id
                if mode == "refuse":
                    conn.reset_stream(stream, h2.errors.ErrorCodes.REFUSED_STREAM)
                elif answered is None:
                    answered = stream
                    conn.send_headers(stream, [(":status", "200"), ("content-length", "2")])
                    conn.send_data(stream, b"ok", end_stream=True)
                else:
                    conn.close_connection(last_stream_id=answered)
                    sock.sendall(conn.data_to_send())
                    return
            sock.sendall(conn.data_to_send())
    except (OSError, h2.exceptions.ProtocolError):
        return
    finally:
        sock.close()


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    print("ready", flush=True)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve, args=(sock, mode), daemon=True).start()


main()
