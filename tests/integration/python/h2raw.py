# SPDX-License-Identifier: Apache-2.0
"""Raw HTTP/2 frames for hostile-client tests: a client that writes frames
byte by byte (so it can do what no well-behaved library would), reads the
gateway's frames back and decodes its header blocks with python3-hpack.
Frames and header fields are built with rawh2's builders."""

import socket
import struct
import time

import hpack

import rawh2

PREFACE = rawh2.PREFACE

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4

GRPC_PATH = b"/inference.GRPCInferenceService/ModelInfer"


def frame(ftype, flags, sid, payload=b""):
    return rawh2.frame(ftype, flags, sid & 0x7FFFFFFF, payload)


def settings(pairs=()):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def literal(name, value, index=False):
    """A literal header field with a literal name, no Huffman coding:
    'with incremental indexing' (it enters the dynamic table) when <index>,
    else 'without indexing'."""
    return (rawh2.hpack_literal_indexed if index else rawh2.hpack_literal)(name, value)


def grpc_request_block(path=GRPC_PATH, extra=(), content_type=b"application/grpc", authority=b"gw",
                       method_get=False):
    """A request header block (no Huffman, no indexing)."""
    out = (b"\x82" if method_get else b"\x83") + b"\x86"  # :method GET/POST, :scheme http
    out += literal(b":path", path) + literal(b":authority", authority)
    if content_type is not None:
        out += literal(b"content-type", content_type)
    out += literal(b"te", b"trailers")
    for n, v in extra:
        out += literal(n, v)
    return out


class RawClient:
    """One TCP connection speaking HTTP/2 by hand."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0, preface=True):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 30
        self.auto_ack = preface  # a client that sent no preface stays silent
        if preface:
            self.send(PREFACE + settings())

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def read_frame(self, timeout=5.0):
        """The next frame as (type, flags, sid, payload), or None when the
        connection closed (or nothing came within <timeout>)."""
        end = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 9:
                n = struct.unpack(">I", b"\0" + self.buf[:3])[0]
                if len(self.buf) >= 9 + n:
                    ftype, flags = self.buf[3], self.buf[4]
                    sid = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
                    payload = self.buf[9:9 + n]
                    self.buf = self.buf[9 + n:]
                    if ftype == SETTINGS and not flags & ACK and self.auto_ack:
                        self.send(frame(SETTINGS, ACK, 0))
                    return ftype, flags, sid, payload
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            except OSError:
                return None
            if not chunk:
                return None
            self.buf += chunk

    def headers_of(self, payload, flags):
        """Decodes a HEADERS payload (padding and priority stripped)."""
        if flags & 0x8:
            pad = payload[0]
            payload = payload[1:len(payload) - pad]
        if flags & 0x20:
            payload = payload[5:]
        return [(n.decode() if isinstance(n, bytes) else n, v.decode() if isinstance(v, bytes) else v)
                for n, v in self.decoder.decode(payload, raw=True)]

    def collect(self, sids, timeout=5.0):
        """Reads frames until every stream in <sids> ended (END_STREAM or
        RST_STREAM) or the connection closed. Returns ({sid: [header lists]},
        {sid: rst error code}, goaway (last_sid, code) or None, closed)."""
        heads, rsts, goaway = {}, {}, None
        left = set(sids)
        end = time.monotonic() + timeout
        while left and time.monotonic() < end:
            f = self.read_frame(end - time.monotonic())
            if f is None:
                return heads, rsts, goaway, True
            ftype, flags, sid, payload = f
            if ftype == HEADERS:
                heads.setdefault(sid, []).append(dict(self.headers_of(payload, flags)))
                if flags & END_STREAM:
                    left.discard(sid)
            elif ftype == DATA and flags & END_STREAM:
                left.discard(sid)
            elif ftype == RST_STREAM:
                rsts[sid] = struct.unpack(">I", payload)[0]
                left.discard(sid)
            elif ftype == GOAWAY:
                goaway = struct.unpack(">II", payload[:8])
                goaway = (goaway[0] & 0x7FFFFFFF, goaway[1])
        return heads, rsts, goaway, False

    def until_goaway(self, timeout=5.0):
        """Reads until a GOAWAY arrives (returns (last_sid, code, debug)) or
        the connection closes (None)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            f = self.read_frame(end - time.monotonic())
            if f is None:
                return None
            if f[0] == GOAWAY:
                last, code = struct.unpack(">II", f[3][:8])
                return last & 0x7FFFFFFF, code, f[3][8:]
        return None
