#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The LLM bench's workload: a seeded trace of multi-turn conversations, and
an open-loop driver that plays it through a gateway with ModelStreamInfer.

The trace (generate_trace) is a pure function of TraceConfig (seed
included): the same config gives byte-identical prompts in the same order on
every run and machine (Python's random.Random with an integer seed).
  - `systems` system prompts (long, shared): lengths lognormal(median
    sys_median, sigma sys_sigma) bytes, clamped to [sys_min, sys_cap];
  - `users` users, each bound to one system prompt (its application), drawn
    with Zipf weights 1/(j+1)^zipf over the system prompts, so a few are
    popular and many are rare;
  - conversations: a user (uniform), a start time uniform over the run and
    turns turns_min..turns_cap (geometric, mean turns_mean); the gap between
    two turns of a conversation is lognormal(median gap_median) calls,
    at least gap_min calls (think time, measured in call slots so that the
    trace does not depend on the rate);
  - turn k's prompt = the system prompt + every earlier turn's user text and
    answer + turn k's user text; user text lengths lognormal(user_median,
    user_sigma) clamped to [user_min, user_cap] bytes; answers
    answer_tokens tokens (lognormal, clamped to [ans_min, ans_cap]), the
    request's max_tokens, and in later prompts the answer stands as
    bytes_per_token * tokens bytes of generated text (the replica's real
    answer is not read back: the trace stays fixed and computable offline);
  - every turn of every conversation is put at its time, all are sorted,
    and the first `calls` are the trace (call i is scheduled at i / rate).
Text is lowercase letters and spaces from the seeded generator; distinct
conversations share nothing but their system prompt.

Prompt blocks (chain): block_chain() cuts a prompt into whole blocks of
`block` bytes, at most `max_blocks`, and chains them (each value covers the
blocks before it), as docs/routing.md "Prompt block hashes" defines; the
values here are BLAKE2b digests, not XXH3 (the analysis only compares chains
for equality, so any collision-free chain gives the same answers).

The driver (run_trace) sends call i at t0 + i/rate whatever happened to
earlier calls (open loop), at most `max_inflight` calls at once: a call
whose slot comes while max_inflight calls are in flight is not sent and is
recorded with status NOT_STARTED (counted, never silently dropped). Each call
is one ModelStreamInfer stream carrying one ModelInferRequest (model
`model`, BYTES input `input` shape [1] holding the prompt, int64 parameter
max_tokens) with a deadline; optionally metadata x-route-key = "user-<u>".
Per call it records (CallResult): scheduled/sent/first/done (s after t0),
ttft = first response message - sent, total = done - sent, the gRPC status,
the number of response messages and in-band error_message, the replica
(x-replica-id of the initial metadata, else of the trailers), the trailers
x-kv-prompt-units, x-kv-hit-units, x-kv-prompt-blocks, x-kv-hit-blocks
(None when absent), and whether the conversation's previous turn had
finished when it was sent (prev_done). The run ends when every call has
finished (each has a deadline), or at the hard stop `deadline` seconds after
the last scheduled slot, which cancels what is left (status CANCELLED).

Run with Debian's /usr/bin/python3 (python3-grpcio). The gRPC stubs are
generated from proto/ by tests/integration/python/harness.py (imported only
when the driver runs). As a CLI it prints the trace's figures, or drives it:
  bench/llm_workload.py stats [--calls N --seed S ...]
  bench/llm_workload.py run TARGET --rate R [--out calls.jsonl]
"""

import argparse
import asyncio
import dataclasses
import hashlib
import json
import math
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)

_LETTERS = bytes(((ord("a") + (i % 26)) if (i % 32) < 26 else ord(" ")) for i in range(256))


@dataclasses.dataclass(frozen=True)
class TraceConfig:
    seed: int = 1
    calls: int = 1200
    systems: int = 32
    users: int = 300
    zipf: float = 1.0
    sys_median: int = 2048
    sys_sigma: float = 0.5
    sys_min: int = 512
    sys_cap: int = 6144
    user_median: int = 160
    user_sigma: float = 0.9
    user_min: int = 16
    user_cap: int = 2048
    ans_median: int = 48
    ans_sigma: float = 0.8
    ans_min: int = 4
    ans_cap: int = 256
    bytes_per_token: int = 4
    turns_mean: float = 4.0
    turns_min: int = 1
    turns_cap: int = 12
    gap_median: float = 40.0
    gap_min: float = 8.0


@dataclasses.dataclass
class Call:
    index: int
    conv: int
    user: int
    system: int
    turn: int
    prev: int  # index of the conversation's previous turn in the trace, -1 for the first
    prompt: bytes
    max_tokens: int

    @property
    def key(self):
        return "user-%d" % self.user


def lognormal_int(rng, median, sigma, lo, hi):
    """A lognormal draw with the given median, rounded and clamped to [lo, hi]."""
    v = rng.lognormvariate(math.log(median), sigma)
    return int(min(hi, max(lo, round(v))))


def text(rng, n):
    """<n> bytes of lowercase letters and spaces."""
    return rng.randbytes(n).translate(_LETTERS)


def _zipf_pick(rng, n, s):
    weights = [1.0 / (j + 1) ** s for j in range(n)]
    return rng.choices(range(n), weights=weights)[0]


def generate_trace(cfg):
    """The trace of <cfg>: a list of Call, ordered by index."""
    if cfg.calls < 1 or cfg.systems < 1 or cfg.users < 1:
        raise ValueError("calls, systems and users must be >= 1")
    rng = random.Random(cfg.seed)
    systems = []
    for j in range(cfg.systems):
        head = b"system %d: " % j
        n = lognormal_int(rng, cfg.sys_median, cfg.sys_sigma, cfg.sys_min, cfg.sys_cap)
        systems.append(head + text(rng, max(0, n - len(head))))
    user_sys = [_zipf_pick(rng, cfg.systems, cfg.zipf) for _ in range(cfg.users)]
    # Enough conversations that the first `calls` turns are spread over the
    # whole horizon (turns past it are cut).
    nconv = max(1, int(math.ceil(1.5 * cfg.calls / max(1.0, cfg.turns_mean))))
    horizon = float(cfg.calls)
    events = []  # (time, conv, turn)
    convs = []
    p_end = 1.0 / max(1.0, cfg.turns_mean)
    for c in range(nconv):
        user = rng.randrange(cfg.users)
        nturns = cfg.turns_min
        while nturns < cfg.turns_cap and rng.random() >= p_end:
            nturns += 1
        t = rng.uniform(0.0, horizon)
        turns = []
        for k in range(nturns):
            if k:
                t += max(cfg.gap_min, rng.lognormvariate(math.log(cfg.gap_median), 0.6))
            utext = text(rng, lognormal_int(rng, cfg.user_median, cfg.user_sigma, cfg.user_min,
                                            cfg.user_cap))
            tokens = lognormal_int(rng, cfg.ans_median, cfg.ans_sigma, cfg.ans_min, cfg.ans_cap)
            atext = text(rng, tokens * cfg.bytes_per_token)
            turns.append((b"\nuser: " + utext, b"\nassistant: " + atext, tokens))
            events.append((t, c, k))
        convs.append((user, turns))
    events.sort()
    events = events[:cfg.calls]
    out = []
    last = {}  # conv -> index of its latest turn so far
    for i, (_, c, k) in enumerate(events):
        user, turns = convs[c]
        parts = [systems[user_sys[user]]]
        for j in range(k):
            parts += [turns[j][0], turns[j][1]]
        parts.append(turns[k][0])
        out.append(Call(index=i, conv=c, user=user, system=user_sys[user], turn=k,
                        prev=last.get(c, -1), prompt=b"".join(parts), max_tokens=turns[k][2]))
        last[c] = i
    return out


def block_chain(prompt, block, max_blocks):
    """The prompt's chained block values (bytes, 8 each): whole blocks of
    <block> bytes, at most <max_blocks>; value i covers blocks 0..i."""
    n = min(len(prompt) // block, max_blocks)
    out = []
    prev = b"\0" * 8
    for i in range(n):
        prev = hashlib.blake2b(prompt[i * block:(i + 1) * block], digest_size=8, key=prev).digest()
        out.append(prev)
    return out


def trace_stats(trace, block, max_blocks):
    """Figures of a trace: calls, conversations, units, blocks, the working set
    (distinct block values over the whole trace), gaps between turns."""
    distinct = set()
    refs = 0
    units = 0
    gaps = []
    for c in trace:
        ch = block_chain(c.prompt, block, max_blocks)
        refs += len(ch)
        distinct.update(ch)
        units += len(c.prompt)
        if c.prev >= 0:
            gaps.append(c.index - c.prev)
    gaps.sort()
    lens = sorted(len(c.prompt) for c in trace)
    return {
        "calls": len(trace),
        "conversations": len({c.conv for c in trace}),
        "users": len({c.user for c in trace}),
        "systems": len({c.system for c in trace}),
        "prompt_units": units,
        "prompt_bytes_p50": lens[len(lens) // 2] if lens else 0,
        "prompt_bytes_max": lens[-1] if lens else 0,
        "block_refs": refs,
        "working_set_blocks": len(distinct),
        "answer_tokens": sum(c.max_tokens for c in trace),
        "turn_gap_calls_min": gaps[0] if gaps else None,
        "turn_gap_calls_p50": gaps[len(gaps) // 2] if gaps else None,
    }


# --------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------

@dataclasses.dataclass
class CallResult:
    index: int
    gateway: int = 0
    scheduled: float = 0.0
    sent: float = None
    first: float = None
    done: float = None
    ttft: float = None
    total: float = None
    code: str = None
    message: str = None
    responses: int = 0
    stream_error: str = None
    replica: str = None
    prompt_units: int = None
    hit_units: int = None
    prompt_blocks: int = None
    hit_blocks: int = None
    prev_done: bool = None

    @property
    def ok(self):
        return self.code == "OK" and not self.stream_error

    def as_dict(self):
        return dataclasses.asdict(self)


def _stubs():
    sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration", "python"))
    import harness as h  # noqa: E402 (generates the stubs from proto/)
    return h


def _md(md, key):
    for k, v in md or ():
        if k == key:
            return v
    return None


def _int_or_none(v):
    try:
        return None if v is None else int(v)
    except ValueError:
        return None


def make_request(pb, call, model, input_name):
    req = pb.ModelInferRequest(model_name=model, id="c%d" % call.index)
    t = req.inputs.add(name=input_name, datatype="BYTES", shape=[1])
    t.contents.bytes_contents.append(call.prompt)
    req.parameters["max_tokens"].int64_param = call.max_tokens
    return req


async def _one(stub, req, call, res, t0, metadata, timeout, finished):
    import grpc
    res.sent = time.monotonic() - t0
    if call.prev >= 0:
        res.prev_done = finished.get(call.prev, False)
    c = stub.ModelStreamInfer(metadata=metadata, timeout=timeout)
    try:
        await c.write(req)
        await c.done_writing()
        async for msg in c:
            if res.first is None:
                res.first = time.monotonic() - t0
            res.responses += 1
            if msg.error_message and not res.stream_error:
                res.stream_error = msg.error_message[:200]
        code = await c.code()
        res.code = code.name
        res.message = (await c.details() or "")[:200] or None
    except grpc.aio.AioRpcError as e:
        res.code = e.code().name
        res.message = (e.details() or "")[:200] or None
    except asyncio.CancelledError:
        res.code = "CANCELLED"
        res.message = "the run's hard stop"
        c.cancel()
    res.done = time.monotonic() - t0
    res.total = res.done - res.sent
    if res.first is not None:
        res.ttft = res.first - res.sent
    try:
        init = await asyncio.wait_for(c.initial_metadata(), 1.0)
        trail = await asyncio.wait_for(c.trailing_metadata(), 1.0)
    except (asyncio.TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001 (a failed call)
        init, trail = None, None
    res.replica = _md(init, "x-replica-id") or _md(trail, "x-replica-id")
    res.prompt_units = _int_or_none(_md(trail, "x-kv-prompt-units"))
    res.hit_units = _int_or_none(_md(trail, "x-kv-hit-units"))
    res.prompt_blocks = _int_or_none(_md(trail, "x-kv-prompt-blocks"))
    res.hit_blocks = _int_or_none(_md(trail, "x-kv-hit-blocks"))
    finished[call.index] = True


async def _run(targets, trace, rate, model, input_name, keyed, timeout, max_inflight, channels,
               hard_stop, split, mirror):
    import grpc
    h = _stubs()
    chans = []
    stubs = []  # per target, a list of stubs (one per channel)
    for t in targets:
        row = []
        for _ in range(channels):
            ch = grpc.aio.insecure_channel(t, options=h.CHANNEL_OPTIONS)
            await asyncio.wait_for(ch.channel_ready(), 10)
            chans.append(ch)
            row.append(h.pb_grpc.GRPCInferenceServiceStub(ch))
        stubs.append(row)
    reqs = [make_request(h.pb, c, model, input_name) for c in trace]
    copies = len(targets) if mirror else 1
    results = [[CallResult(index=c.index) for c in trace] for _ in range(copies)]
    finished = {}
    tasks = set()
    loop = asyncio.get_running_loop()
    t0 = time.monotonic() + 0.05
    for c in trace:
        delay = t0 + c.index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        for copy in range(copies):
            res = results[copy][c.index]
            res.scheduled = c.index / rate
            res.gateway = copy if mirror else (split(c) if len(targets) > 1 else 0)
            if len(tasks) >= max_inflight:
                res.code = "NOT_STARTED"
                res.message = "%d calls in flight (--max-inflight)" % max_inflight
                continue
            stub = stubs[res.gateway][c.index % channels]
            md = (("x-route-key", c.key),) if keyed else None
            task = loop.create_task(_one(stub, reqs[c.index], c, res, t0, md, timeout, finished))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    end = t0 + (len(trace) / rate) + hard_stop
    while tasks and time.monotonic() < end:
        await asyncio.wait(set(tasks), timeout=max(0.01, min(1.0, end - time.monotonic())))
    for task in list(tasks):
        task.cancel()
    if tasks:
        await asyncio.wait(set(tasks), timeout=5.0)
    for ch in chans:
        await ch.close()
    return results if mirror else results[0]


def run_trace(targets, trace, rate, model="llm", input_name="text_input", keyed=False,
              timeout=30.0, max_inflight=256, channels=2, hard_stop=60.0, split=None,
              mirror=False):
    """Plays <trace> at <rate> calls/s through <targets> (host:port list; with
    several, call c goes to targets[split(c)], default c.index % n). Returns the
    CallResult list, one per call, in trace order. With <mirror>, every call
    goes through every target at its time instead (each copy counts against
    max_inflight), and the result is one such list per target."""
    if rate <= 0 or max_inflight < 1 or channels < 1:
        raise ValueError("rate, max_inflight and channels must be positive")
    split = split or (lambda c: c.index % len(targets))
    return asyncio.run(_run(list(targets), trace, rate, model, input_name, keyed, timeout,
                            max_inflight, channels, hard_stop, split, mirror))


def write_results(path, results):
    with open(path, "w") as f:
        for r in results:
            f.write(json.dumps(r.as_dict(), sort_keys=True) + "\n")


def read_results(path):
    with open(path) as f:
        return [CallResult(**json.loads(line)) for line in f if line.strip()]


def add_trace_args(ap):
    d = TraceConfig()
    for f in dataclasses.fields(TraceConfig):
        ap.add_argument("--" + f.name.replace("_", "-"), type=type(getattr(d, f.name)),
                        default=getattr(d, f.name), help="trace: %s [%%(default)s]" % f.name)


def trace_config(args):
    return TraceConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TraceConfig)})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=("stats", "run"))
    ap.add_argument("target", nargs="?", help="run: the gateway's host:port")
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--max-blocks", type=int, default=128)
    ap.add_argument("--model", default="llm")
    ap.add_argument("--input", default="text_input")
    ap.add_argument("--keyed", action="store_true", help="x-route-key = user-<u>")
    ap.add_argument("--max-inflight", type=int, default=256)
    ap.add_argument("--out", help="run: per-call records (JSON lines)")
    add_trace_args(ap)
    args = ap.parse_args()
    trace = generate_trace(trace_config(args))
    if args.action == "stats":
        print(json.dumps(trace_stats(trace, args.block, args.max_blocks), indent=1))
        return 0
    if not args.target:
        ap.error("run needs a target")
    res = run_trace([args.target], trace, args.rate, args.model, args.input, args.keyed,
                    max_inflight=args.max_inflight)
    if args.out:
        write_results(args.out, res)
    by = {}
    for r in res:
        by[r.code] = by.get(r.code, 0) + 1
    print(json.dumps({"calls": len(res), "status": by}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
