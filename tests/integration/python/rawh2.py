# SPDX-License-Identifier: Apache-2.0
"""rawh2 — a raw-frame HTTP/2 client for hostile tests.

grpcio and h2 both play by the rules; a hostile client does not. This module
writes every frame itself, byte for byte, so a test can send what no library
would: SETTINGS with any values (INITIAL_WINDOW_SIZE 0), header blocks built
by hand (a dynamic-table insert followed by thousands of 1-byte indexed
references), CONTINUATION frames that never end a block, HEADERS followed at
once by RST_STREAM, a DATA byte every few seconds, or no reading at all.

- frame(): one frame's bytes (9-byte header + payload); Frame: a frame read.
- hpack_*(): HPACK building blocks without Huffman coding (RFC 7541): integers,
  indexed fields, literals with and without indexing, table size updates;
  request_block(): a gRPC request header block made of them.
- grpc_message() / grpc_messages(): gRPC length-prefixed framing;
  model_infer(): a serialized KServe v2 ModelInferRequest (the stubs the
  harness generates).
- Conn: one TCP connection to the gateway. It sends what it is told
  (preface(), settings(), headers(), continuation(), data(), rst(),
  window_update(), ping(), send_raw()) and reads frames only when asked
  (read_frame(), pump(), wait_stream()); while reading it answers SETTINGS and
  PING like any client (unless passive), tracks the windows the peer grants
  (send_body() respects them), decodes response header blocks with one HPACK
  decoder per connection, and, unless auto_window is off, returns the window
  of every DATA byte it receives. A test that never calls a read method never
  reads; a passive one reads without ever answering.

Responses are decoded with the hpack package (Debian python3-hpack); requests
never go through an encoder, so what is sent is exactly what the test built.
"""

import errno
import select
import socket
import struct
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 §6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
FRAME_NAMES = ("DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING",
               "GOAWAY", "WINDOW_UPDATE", "CONTINUATION")

# Flags.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# SETTINGS identifiers.
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6

# Error codes.
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xb

DEFAULT_WINDOW = 65535
DEFAULT_MAX_FRAME = 16384

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
MODEL_STREAM_INFER = "/inference.GRPCInferenceService/ModelStreamInfer"
SERVER_LIVE = "/inference.GRPCInferenceService/ServerLive"


class ConnectionClosed(Exception):
    """The peer closed (or reset) the TCP connection."""


# --------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------

def frame(ftype, flags, stream_id, payload=b""):
    """The bytes of one frame. Nothing is checked: any length, type or id goes."""
    n = len(payload)
    return struct.pack(">BHBBI", (n >> 16) & 0xFF, n & 0xFFFF, ftype, flags,
                       stream_id & 0xFFFFFFFF) + bytes(payload)


def settings_payload(settings):
    """SETTINGS payload from a dict or a sequence of (id, value) pairs (kept in order,
    repeats allowed)."""
    items = settings.items() if isinstance(settings, dict) else settings
    return b"".join(struct.pack(">HI", k, v) for k, v in items)


class Frame:
    """One frame read from the peer."""

    __slots__ = ("type", "flags", "stream_id", "payload")

    def __init__(self, ftype, flags, stream_id, payload):
        self.type = ftype
        self.flags = flags
        self.stream_id = stream_id
        self.payload = payload

    def __repr__(self):
        name = FRAME_NAMES[self.type] if self.type < len(FRAME_NAMES) else "type%d" % self.type
        return "<%s flags=0x%x stream=%d len=%d>" % (name, self.flags, self.stream_id,
                                                     len(self.payload))

    def settings(self):
        p = self.payload
        return [struct.unpack(">HI", p[i:i + 6]) for i in range(0, len(p) - len(p) % 6, 6)]

    def error_code(self):
        """RST_STREAM's code, or GOAWAY's."""
        if self.type == RST_STREAM:
            return struct.unpack(">I", self.payload[:4])[0]
        if self.type == GOAWAY:
            return struct.unpack(">I", self.payload[4:8])[0]
        raise ValueError("no error code in %r" % self)

    def goaway(self):
        """(last stream id, error code, debug data) of a GOAWAY."""
        last, code = struct.unpack(">II", self.payload[:8])
        return last & 0x7FFFFFFF, code, self.payload[8:]

    def increment(self):
        return struct.unpack(">I", self.payload[:4])[0] & 0x7FFFFFFF

    def body(self):
        """DATA / HEADERS / CONTINUATION payload without padding and priority fields."""
        p = self.payload
        if self.type in (DATA, HEADERS) and self.flags & PADDED:
            pad = p[0]
            p = p[1:len(p) - pad]
        if self.type == HEADERS and self.flags & PRIORITY_FLAG:
            p = p[5:]
        return p


# --------------------------------------------------------------------------
# HPACK building blocks (RFC 7541), never Huffman-coded
# --------------------------------------------------------------------------

def hpack_int(value, prefix_bits, first=0):
    """<value> as an HPACK integer with an N-bit prefix; <first> holds the bits above it."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_str(s):
    b = s if isinstance(s, bytes) else s.encode()
    return hpack_int(len(b), 7) + b


def hpack_indexed(index):
    """Indexed header field: 1 byte for index 1..126 (static 1-61, dynamic 62+)."""
    return hpack_int(index, 7, 0x80)


def hpack_literal_indexed(name, value):
    """Literal with incremental indexing, new name: enters the dynamic table (at index 62)."""
    return b"\x40" + hpack_str(name) + hpack_str(value)


def hpack_literal(name, value):
    """Literal without indexing, new name."""
    return b"\x00" + hpack_str(name) + hpack_str(value)


def hpack_never_indexed(name, value):
    return b"\x10" + hpack_str(name) + hpack_str(value)


def hpack_table_size_update(size):
    return hpack_int(size, 5, 0x20)


def request_block(path, authority="localhost", extra=(), method="POST", scheme="http",
                  grpc=True, timeout=None):
    """A request header block of literals (nothing enters the dynamic table).
    grpc: content-type application/grpc and te: trailers; timeout: a
    grpc-timeout value ("5S"); extra: more (name, value) pairs, in order."""
    fields = [(":method", method), (":scheme", scheme), (":path", path),
              (":authority", authority)]
    if grpc:
        fields += [("content-type", "application/grpc"), ("te", "trailers")]
    if timeout:
        fields.append(("grpc-timeout", timeout))
    fields += list(extra)
    return b"".join(hpack_literal(n, v) for n, v in fields)


# --------------------------------------------------------------------------
# gRPC messages
# --------------------------------------------------------------------------

def grpc_message(payload, compressed=False):
    """One length-prefixed gRPC message."""
    return struct.pack(">BI", 1 if compressed else 0, len(payload)) + bytes(payload)


def grpc_messages(data):
    """The complete messages in <data> and the bytes left over: (list, rest)."""
    out, i = [], 0
    while len(data) - i >= 5:
        n = struct.unpack(">I", data[i + 1:i + 5])[0]
        if len(data) - i - 5 < n:
            break
        out.append(bytes(data[i + 5:i + 5 + n]))
        i += 5 + n
    return out, bytes(data[i:])


def model_infer(model="demo", raw=None, vals=None, rid="raw", params=None):
    """A serialized ModelInferRequest: FP32 input INPUT0 from <raw> bytes
    (raw_input_contents) or from <vals> (fp32_contents); params: int64 parameters."""
    import harness as h  # the generated stubs live in the harness' work dir
    if raw is not None:
        req = h.raw_request(raw, model=model, rid=rid, params=params)
    else:
        req = h.typed_request(vals if vals is not None else h.values(4), model=model, rid=rid,
                              params=params)
    return req.SerializeToString()


def model_infer_response(payload):
    import harness as h
    r = h.pb.ModelInferResponse()
    r.ParseFromString(payload)
    return r


# --------------------------------------------------------------------------
# Connections
# --------------------------------------------------------------------------

class Stream:
    """What the peer sent on one stream."""

    def __init__(self, sid):
        self.id = sid
        self.headers = None   # first header block: [(name, value)]
        self.trailers = None  # second header block
        self.data = bytearray()
        self.reset = None     # RST_STREAM error code
        self.ended = False    # END_STREAM seen or reset
        self.send_window = DEFAULT_WINDOW

    def header(self, name):
        """<name> from the trailers, else from the headers (trailers-only answers)."""
        for block in (self.trailers, self.headers):
            for k, v in block or ():
                if k == name:
                    return v
        return None

    @property
    def grpc_status(self):
        v = self.header("grpc-status")
        return int(v) if v is not None else None

    @property
    def grpc_message(self):
        return self.header("grpc-message")

    def messages(self):
        return grpc_messages(self.data)[0]

    def __repr__(self):
        return "<stream %d status=%s reset=%s ended=%s data=%d headers=%s trailers=%s>" % (
            self.id, self.grpc_status, self.reset, self.ended, len(self.data), self.headers,
            self.trailers)


class Conn:
    """One HTTP/2 connection written frame by frame; see the module comment."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0, rcvbuf=None, auto_window=True,
                 passive=False):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        self.timeout = timeout
        self.auto_window = auto_window and not passive
        self.passive = passive  # never answer anything (no SETTINGS or PING ACK)
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 26
        self.streams = {}
        self.peer_settings = {}
        self.settings_acked = 0
        self.goaway = None        # (last id, code, debug) of the peer's GOAWAY
        self.closed = False       # EOF or reset seen
        self.frames_read = 0
        self.bytes_sent = 0
        self.send_window = DEFAULT_WINDOW
        self.peer_initial_window = DEFAULT_WINDOW
        self.peer_max_frame = DEFAULT_MAX_FRAME
        self.next_id = 1
        self._rbuf = bytearray()
        self._block = None        # (stream id, bytearray) of a header block in progress

    # --- sending ---------------------------------------------------------

    def send_raw(self, data):
        """Sends bytes as they are; raises ConnectionClosed when the peer is gone."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            self.closed = True
            raise ConnectionClosed(str(e)) from e
        except socket.timeout as e:
            raise TimeoutError("send blocked for %.1f s (peer not reading)" % self.timeout) from e
        self.bytes_sent += len(data)

    def send_frame(self, ftype, flags, stream_id, payload=b""):
        self.send_raw(frame(ftype, flags, stream_id, payload))

    def preface(self, settings=None):
        """The connection preface and a SETTINGS frame (<settings>: dict or pairs)."""
        self.send_raw(PREFACE + frame(SETTINGS, 0, 0, settings_payload(settings or {})))

    def settings(self, settings=None, ack=False):
        self.send_frame(SETTINGS, ACK if ack else 0, 0, b"" if ack else settings_payload(settings))

    def handshake(self, settings=None, timeout=None):
        """preface(), then reads until the peer's SETTINGS arrived (and is acked)."""
        self.preface(settings)
        if not self.pump(lambda c: c.peer_settings.get("_seen"), timeout or self.timeout):
            raise AssertionError("no SETTINGS from the peer")
        return self

    def new_stream(self):
        sid = self.next_id
        self.next_id += 2
        st = self.streams[sid] = Stream(sid)
        st.send_window = self.peer_initial_window
        return sid

    def stream(self, sid):
        st = self.streams.get(sid)
        if st is None:
            st = self.streams[sid] = Stream(sid)
            st.send_window = self.peer_initial_window
        return st

    def headers(self, sid, block, end_stream=False, end_headers=True):
        flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
        self.stream(sid)
        self.send_frame(HEADERS, flags, sid, block)

    def continuation(self, sid, block, end_headers=False):
        self.send_frame(CONTINUATION, END_HEADERS if end_headers else 0, sid, block)

    def data(self, sid, payload, end_stream=False):
        """One DATA frame, flow control ignored (see send_body)."""
        self.send_frame(DATA, END_STREAM if end_stream else 0, sid, payload)
        self.send_window -= len(payload)
        self.stream(sid).send_window -= len(payload)

    def rst(self, sid, code=CANCEL):
        self.send_frame(RST_STREAM, 0, sid, struct.pack(">I", code))

    def window_update(self, sid, increment):
        self.send_frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", increment))

    def ping(self, opaque=b"\0" * 8, ack=False):
        self.send_frame(PING, ACK if ack else 0, 0, opaque)

    def send_goaway(self, last=0, code=NO_ERROR):
        self.send_frame(GOAWAY, 0, 0, struct.pack(">II", last, code))

    def send_body(self, sid, body, end_stream=True, timeout=None):
        """Sends <body> on <sid> in DATA frames within the windows and frame size the
        peer grants, reading frames (WINDOW_UPDATE) while blocked. Raises
        TimeoutError when no window opens for <timeout> s."""
        st = self.stream(sid)
        timeout = timeout or self.timeout
        if not body:
            self.data(sid, b"", end_stream=end_stream)
            return
        off, n = 0, len(body)
        while off < n:
            room = min(self.send_window, st.send_window, self.peer_max_frame, n - off)
            if room <= 0:
                if st.ended:
                    raise ConnectionClosed("stream %d ended while sending: %r" % (sid, st))
                if not self.pump(lambda c: min(c.send_window, st.send_window) > 0 or st.ended,
                                 timeout):
                    raise TimeoutError("stream %d: no window for %.1f s (sent %d of %d)"
                                       % (sid, timeout, off, n))
                continue
            self.data(sid, body[off:off + room], end_stream=end_stream and off + room >= n)
            off += room

    def request(self, path=MODEL_INFER, messages=(), extra=(), end_stream=True, timeout=None,
                grpc_timeout=None):
        """Opens a stream: request_block(path, extra), then <messages> (payloads,
        gRPC-framed here) with flow control. Returns the stream id."""
        sid = self.new_stream()
        body = b"".join(grpc_message(m) for m in messages)
        self.headers(sid, request_block(path, extra=extra, timeout=grpc_timeout),
                     end_stream=end_stream and not body)
        if body:
            self.send_body(sid, body, end_stream=end_stream, timeout=timeout)
        return sid

    # --- reading ---------------------------------------------------------

    def _recv(self, timeout):
        """Reads what is there (waiting up to <timeout> s); False on timeout."""
        if self.closed:
            raise ConnectionClosed("connection already closed")
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return False
        try:
            chunk = self.sock.recv(1 << 20)
        except (ConnectionResetError, OSError) as e:
            if isinstance(e, OSError) and e.errno not in (errno.ECONNRESET, errno.EPIPE,
                                                          errno.ENOTCONN, None):
                raise
            self.closed = True
            raise ConnectionClosed(str(e)) from e
        if not chunk:
            self.closed = True
            raise ConnectionClosed("EOF")
        self._rbuf += chunk
        return True

    def read_frame(self, timeout=None):
        """The next frame (handled: see the module comment), or None after <timeout>
        s without one. Raises ConnectionClosed at EOF."""
        end = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self._rbuf) >= 9:
                n = (self._rbuf[0] << 16) | (self._rbuf[1] << 8) | self._rbuf[2]
                if len(self._rbuf) >= 9 + n:
                    ftype, flags = self._rbuf[3], self._rbuf[4]
                    sid = struct.unpack(">I", self._rbuf[5:9])[0] & 0x7FFFFFFF
                    f = Frame(ftype, flags, sid, bytes(self._rbuf[9:9 + n]))
                    del self._rbuf[:9 + n]
                    self.frames_read += 1
                    self._handle(f)
                    return f
            if not self._recv(end - time.monotonic()):
                return None

    def _handle(self, f):
        if f.type == SETTINGS:
            if f.flags & ACK:
                self.settings_acked += 1
                return
            for k, v in f.settings():
                if k == INITIAL_WINDOW_SIZE:
                    delta = v - self.peer_initial_window
                    for st in self.streams.values():
                        st.send_window += delta
                    self.peer_initial_window = v
                elif k == MAX_FRAME_SIZE:
                    self.peer_max_frame = v
                self.peer_settings[k] = v
            self.peer_settings["_seen"] = True
            if not self.passive:
                self.settings(ack=True)
        elif f.type == PING:
            if not f.flags & ACK and not self.passive:
                self.ping(f.payload, ack=True)
        elif f.type == WINDOW_UPDATE:
            if f.stream_id == 0:
                self.send_window += f.increment()
            else:
                self.stream(f.stream_id).send_window += f.increment()
        elif f.type == GOAWAY:
            self.goaway = f.goaway()
        elif f.type == RST_STREAM:
            st = self.stream(f.stream_id)
            st.reset = f.error_code()
            st.ended = True
        elif f.type in (HEADERS, CONTINUATION):
            if f.type == HEADERS:
                self._block = (f.stream_id, bytearray(f.body()), f.flags & END_STREAM)
            elif self._block:
                self._block[1].extend(f.payload)
            if f.flags & END_HEADERS and self._block:
                sid, block, end = self._block
                self._block = None
                fields = self.decoder.decode(bytes(block))
                st = self.stream(sid)
                if st.headers is None:
                    st.headers = fields
                else:
                    st.trailers = fields
                if end:
                    st.ended = True
        elif f.type == DATA:
            st = self.stream(f.stream_id)
            st.data += f.body()
            if f.flags & END_STREAM:
                st.ended = True
            n = len(f.payload)
            if self.auto_window and n:
                self.window_update(0, n)
                if not st.ended:
                    self.window_update(f.stream_id, n)

    def pump(self, until=None, timeout=None):
        """Reads frames until until(self) is true (returns True), <timeout> s pass
        (False) or the peer closes (False; self.closed is set)."""
        end = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if until is not None and until(self):
                return True
            left = end - time.monotonic()
            if left <= 0:
                return False
            try:
                self.read_frame(left)
            except ConnectionClosed:
                return until(self) if until is not None else False

    def wait_stream(self, sid, timeout=None):
        """Reads until stream <sid> ends (or is reset, or the connection goes);
        returns the Stream."""
        st = self.stream(sid)
        self.pump(lambda c: st.ended or c.closed or
                  (c.goaway is not None and c.goaway[0] < sid), timeout)
        return st

    def wait_closed(self, timeout):
        """Reads (and drops) frames until the peer closes the connection; True if it
        did within <timeout> s."""
        self.pump(lambda c: c.closed, timeout)
        return self.closed

    def refused(self, sid):
        """True when the peer refused stream <sid>: reset it, ended it with a
        non-OK grpc-status, or sent a GOAWAY that excludes it or closed the
        connection."""
        st = self.streams.get(sid)
        if st is not None and (st.reset is not None or
                               (st.ended and st.grpc_status not in (None, 0))):
            return True
        return self.closed or (self.goaway is not None and
                               (self.goaway[0] < sid or self.goaway[1] != NO_ERROR))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    def abort(self):
        """Closes with a TCP RST (SO_LINGER 0) instead of a FIN."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def call(port, path=MODEL_INFER, messages=(), extra=(), timeout=5.0, grpc_timeout=None):
    """One well-formed gRPC call on a fresh connection: its Stream."""
    with Conn(port, timeout=timeout) as c:
        c.handshake()
        sid = c.request(path, messages, extra=extra, grpc_timeout=grpc_timeout)
        return c.wait_stream(sid, timeout)
