#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpus of fuzz_prefix (tests/fuzz/corpus/fuzz_prefix/).

Each seed is three bytes that fuzz_prefix.c reads as block size, cap and
input name (0 "p", 1 "text_input", 2 "input_ids"), then a ModelInferRequest
encoded here by hand, so that packed and unpacked ids, raw contents and
malformed bytes are all represented.
Usage: tests/fuzz/make_prefix_corpus.py   (rewrites the directory's files)
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_prefix")


def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def field(num, wire, payload):
    if wire == 0:
        return varint(num << 3) + varint(payload)
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def tensor(name, dtype, contents=None, shape=(1,)):
    t = field(1, 2, name.encode()) + field(2, 2, dtype.encode())
    for d in shape:
        t += field(3, 0, d)
    if contents is not None:
        t += field(5, 2, contents)
    return field(5, 2, t)


HEAD = field(1, 2, b"llm") + field(3, 2, b"req-1")
TEXT = b"The quick brown fox jumps over the lazy dog"
IDS = [1, 15043, 29892, -7, 3186, 29991, 2, 40000, 13, 8, 9, 10, 11, 12, 13, 14, 15]


def seeds():
    yield "text_contents", bytes([7, 9, 1]), HEAD + tensor(
        "text_input", "BYTES", field(8, 2, TEXT) + field(8, 2, b"second"))
    raw_text = struct.pack("<I", len(TEXT)) + TEXT
    yield "text_raw", bytes([3, 5, 1]), (HEAD + tensor("max_tokens", "INT32")
                                         + tensor("text_input", "BYTES")
                                         + field(7, 2, struct.pack("<i", 5)) + field(7, 2, raw_text))
    packed = b"".join(varint(i) for i in IDS)
    yield "ids_int32_packed", bytes([3, 4, 2]), HEAD + tensor("input_ids", "INT32",
                                                               field(2, 2, packed))
    unpacked = b"".join(field(3, 0, i) for i in IDS)
    yield "ids_int64_unpacked", bytes([3, 4, 2]), HEAD + tensor("input_ids", "INT64", unpacked)
    raw64 = b"".join(struct.pack("<q", i) for i in IDS)
    yield "ids_int64_raw", bytes([2, 63, 2]), (HEAD + tensor("input_ids", "INT64")
                                               + field(7, 2, raw64))
    two = (field(1, 2, b"input_ids") + field(2, 2, b"INT64") + field(5, 2, field(3, 2, packed[:6]))
           + field(3, 0, 17) + field(5, 2, field(3, 2, packed[6:])))
    yield "ids_two_contents", bytes([4, 3, 2]), HEAD + field(5, 2, two)
    yield "wrong_type", bytes([1, 1, 0]), HEAD + tensor("p", "FP32", field(6, 2, b"\0" * 8))
    yield "truncated_varint", bytes([1, 1, 0]), HEAD + b"\x2a\x80"
    yield "length_past_end", bytes([1, 1, 0]), HEAD + b"\x2a\x09\x0a\x01p"
    yield "raw_bytes_cut", bytes([1, 1, 0]), (tensor("p", "BYTES")
                                              + field(7, 2, b"\x09\0\0\0a"))


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        os.remove(os.path.join(OUT, name))
    for name, hdr, msg in seeds():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(hdr + msg)


if __name__ == "__main__":
    main()
