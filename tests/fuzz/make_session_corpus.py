#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the hand-made seeds of fuzz_session (corpus/fuzz_session/, the
files with names): HTTP/2 client frames after the preface (which the target
adds), as a gRPC client sends them: SETTINGS, then HEADERS + DATA of a few
calls, and some control frames. The files named by a SHA-1 are inputs the
fuzzer found that add coverage (libFuzzer -merge=1), kept as they are. Run
from anywhere; it rewrites its own seeds only."""

import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_session")


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def lit(name, value):
    """HPACK literal without indexing, new name, no Huffman (lengths < 127)."""
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


# The API key of the fuzz target's tenant "fuzz" (models=demo).
AUTH = (b"authorization", b"Bearer igw_" + b"f" * 43)


def headers(path, extra=(), auth=True):
    fields = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path),
              (b":authority", b"gw"), (b"content-type", b"application/grpc"),
              (b"te", b"trailers")] + ([AUTH] if auth else []) + list(extra)
    return b"".join(lit(n, v) for n, v in fields)


def ld(field, data):
    return bytes([(field << 3) | 2, len(data)]) + data


def grpc(msg, flag=0):
    return bytes([flag]) + struct.pack(">I", len(msg)) + msg


SETTINGS = frame(4, 0, 0, struct.pack(">HI", 4, 65535))
INFER = "/inference.GRPCInferenceService/ModelInfer".encode()
REQ = ld(1, b"demo") + ld(3, b"req-1") + ld(7, bytes(16))


def call(sid, path, msg, extra=(), end=True, auth=True):
    return frame(1, 0x4, sid, headers(path, extra, auth)) + \
        frame(0, 0x1 if end else 0, sid, grpc(msg))


SEEDS = {
    "model_infer": SETTINGS + call(1, INFER, REQ),
    "model_infer_x_model_timeout": SETTINGS + call(1, INFER, REQ, [(b"x-model", b"demo"),
                                                                   (b"grpc-timeout", b"200m")]),
    "server_live": SETTINGS + call(1, b"/inference.GRPCInferenceService/ServerLive", b""),
    "server_ready_two_messages": SETTINGS + frame(1, 0x4, 1, headers(
        b"/inference.GRPCInferenceService/ServerReady")) + frame(0, 0x1, 1, grpc(b"") + grpc(b"")),
    "health_check": SETTINGS + call(1, b"/grpc.health.v1.Health/Check", b""),
    "unknown_pool": SETTINGS + call(1, INFER, ld(1, b"nope")),
    "generic_method_default_pool": SETTINGS + call(1, b"/pkg.Svc/Method", b"\x08\x01"),
    "two_calls_and_reset": SETTINGS + call(1, INFER, REQ) + call(3, INFER, REQ, end=False) +
    frame(3, 0, 3, struct.pack(">I", 8)),
    "stream_three_messages": SETTINGS + frame(1, 0x4, 1, headers(
        b"/inference.GRPCInferenceService/ModelStreamInfer")) +
    frame(0, 0, 1, grpc(REQ)) + frame(0, 0, 1, grpc(REQ)) + frame(0, 0x1, 1, grpc(REQ)),
    "ping_window_goaway": SETTINGS + frame(6, 0, 0, bytes(8)) +
    frame(8, 0, 0, struct.pack(">I", 1 << 20)) + call(1, INFER, REQ) +
    frame(7, 0, 0, struct.pack(">II", 1, 0)),
    "continuation": SETTINGS + frame(1, 0, 1, headers(INFER)[:20]) +
    frame(9, 0x4, 1, headers(INFER)[20:]) + frame(0, 0x1, 1, grpc(REQ)),
    "bad_method_get": SETTINGS + frame(1, 0x5, 1, b"".join(lit(n, v) for n, v in [
        (b":method", b"GET"), (b":scheme", b"http"), (b":path", INFER), (b":authority", b"gw")])),
    "compressed_message": SETTINGS + call(1, INFER, REQ, [(b"grpc-encoding", b"gzip")]).replace(
        grpc(REQ), grpc(REQ, 1)),
    "settings_only": SETTINGS,
    "no_credentials": SETTINGS + call(1, INFER, REQ, auth=False),
    "smuggled_model_x_model": SETTINGS + call(1, INFER, ld(1, b"secret") + ld(3, b"r"),
                                              [(b"x-model", b"demo")]),
    "smuggled_second_field_1": SETTINGS + call(1, INFER, REQ + ld(1, b"secret")),
    "smuggled_later_stream_message": SETTINGS + frame(1, 0x4, 1, headers(
        b"/inference.GRPCInferenceService/ModelStreamInfer", [(b"x-model", b"demo")])) +
    frame(0, 0, 1, grpc(REQ)) + frame(0, 0x1, 1, grpc(ld(1, b"secret"))),
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print("%d seeds in %s" % (len(SEEDS), OUT))
