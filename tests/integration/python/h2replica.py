# SPDX-License-Identifier: Apache-2.0
"""A small HTTP/2 server on the python h2 library, standing in for a replica
where infergw-replica cannot misbehave the way a test needs. Every request is
answered: response headers (with x-scheme: the :scheme the request carried),
one empty gRPC message, then <ntrailers> x-trailer-<i> trailers before
grpc-status 0 (so a relay that cuts long trailer lists loses the status).
Optionally over TLS with ALPN h2, or stalling: never answering; <trailers>
(a list of (name, value), changeable between calls) go into every answer's
trailers too, and <replica_id> as x-replica-id in its headers. It records
the request headers it saw."""

import socket
import ssl
import threading

import h2.config
import h2.connection
import h2.events


class H2Replica:
    def __init__(self, ntrailers=0, certfile=None, keyfile=None, stall=False, trailers=(),
                 replica_id=None):
        self.ntrailers = ntrailers
        self.trailers = list(trailers)
        self.replica_id = replica_id
        self.stall = stall
        self.requests = []  # header lists, in arrival order
        self.lock = threading.Lock()
        self.ctx = None
        if certfile:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(certfile, keyfile)
            self.ctx.set_alpn_protocols(["h2"])
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self):
        self.stopped = True
        try:
            self.lsock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopped:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        try:
            if self.ctx:
                s = self.ctx.wrap_socket(s, server_side=True)
            conn = h2.connection.H2Connection(h2.config.H2Configuration(
                client_side=False, header_encoding="utf-8", validate_inbound_headers=False))
            conn.initiate_connection()
            s.sendall(conn.data_to_send())
            heads = {}
            while True:
                data = s.recv(65536)
                if not data:
                    return
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        heads[ev.stream_id] = ev.headers
                        with self.lock:
                            self.requests.append(list(ev.headers))
                    elif isinstance(ev, h2.events.DataReceived):
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        self._answer(conn, ev.stream_id, heads.pop(ev.stream_id, []))
                s.sendall(conn.data_to_send())
        except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
            return
        finally:
            try:
                s.close()
            except OSError:
                pass

    def _answer(self, conn, sid, req):
        if self.stall:
            return
        scheme = dict(req).get(":scheme", "")
        heads = [(":status", "200"), ("content-type", "application/grpc"), ("x-scheme", scheme)]
        if self.replica_id:
            heads.append(("x-replica-id", self.replica_id))
        conn.send_headers(sid, heads)
        conn.send_data(sid, b"\x00\x00\x00\x00\x00")
        trailers = [("x-trailer-%d" % i, "v%d" % i) for i in range(self.ntrailers)]
        trailers += list(self.trailers)
        conn.send_headers(sid, trailers + [("grpc-status", "0")], end_stream=True)
