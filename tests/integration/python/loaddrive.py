# SPDX-License-Identifier: Apache-2.0
"""Open-loop load from an outside gRPC client (the generated Python stubs).

ModelInfer calls leave at scheduled times t0 + i/rate whatever happens to
the calls already sent (open loop: a slow or hung gateway does not slow the
sender down, as it would a closed loop), each with its own deadline (1 s by
default) and, optionally, an x-route-key from a set of keys (round robin: N
keys <prefix>-<i>, or a list given by the caller).
Every call is recorded:

  index, key, scheduled (s after t0), sent (s after t0), done (s after t0),
  latency (done - sent, s), code (grpc status name), message (grpc details),
  replica (x-replica-id of the initial metadata, or of the trailers for a
  trailers-only answer; None when the gateway answered itself), ok (OK
  and the right answer), late (latency > deadline + slack).

"late" means the answer reached the caller after its deadline. The client
enforces its deadline too (grpc core ends the call with DEADLINE_EXCEEDED
when it expires), so on a healthy client a call can never be seen much past
its deadline; what is measured is when the completion callback runs, which
comes a little after the event: grpc core's timer and completion-queue
thread, then the GIL, on a 2-vCPU machine shared with the gateway and the
replicas. The slack (50 ms by default) absorbs that scheduling delay and
nothing else; a call seen later than that means the client itself could
not keep up, which the report shows as well (send lateness, below). A
DEADLINE_EXCEEDED status (from the gateway or from the client's own timer)
is counted separately: it is the other way a caller "waits until its
deadline", and the tests of the call engine expect none.

The driver measures itself: how late each send left against its scheduled
time (p50/p99/max of sent - scheduled), so a run where Python could not keep
the rate is visible, never silent. Calls are spread round robin over several
channels (each its own HTTP/2 connection: local subchannel pools), so that
one connection's completion queue is not the bottleneck.

As a library:

    d = LoadDriver(target, rate=300, duration=6, keys=64)
    d.start()                 # sends from a background thread
    ...                       # inject faults meanwhile (d.elapsed() is "now")
    res = d.wait()            # every call finished; a LoadResult
    print(res.summary_line("kill"))
    res.failed()              # the calls that were not ok

As a CLI:

    /usr/bin/python3 loaddrive.py 127.0.0.1:7100 --rate 300 --duration 5 --keys 64

prints a summary (counts per status, per replica, latency percentiles,
failed calls with messages, send lateness) and, with --json, one JSON line.
Run with Debian's /usr/bin/python3 (python3-grpcio).
"""

import argparse
import json
import math
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import harness as h  # noqa: E402  (generates the stubs on import)
import grpc  # noqa: E402

DEFAULT_SLACK = 0.050


def percentile(sorted_vals, q):
    """The <q> quantile (0..1) of an ascending list (nearest rank), or None."""
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(math.ceil(q * len(sorted_vals))) - 1))
    return sorted_vals[i]


class CallRecord:
    __slots__ = ("index", "key", "scheduled", "sent", "done", "latency", "code", "message",
                 "replica", "ok", "late")

    def __init__(self, index, key, scheduled, sent):
        self.index = index
        self.key = key
        self.scheduled = scheduled
        self.sent = sent
        self.done = None
        self.latency = None
        self.code = None
        self.message = None
        self.replica = None
        self.ok = False
        self.late = False

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__}


class LoadResult:
    """The records of one run and their summaries."""

    def __init__(self, records, rate, duration, deadline, slack, channels, wall):
        self.records = records
        self.rate = rate
        self.duration = duration
        self.deadline = deadline
        self.slack = slack
        self.channels = channels
        self.wall = wall  # seconds from the first send to the last completion

    # --- selections ---------------------------------------------------------
    def between(self, t_from=None, t_to=None):
        """A LoadResult of the calls scheduled in [t_from, t_to) (s after t0)."""
        recs = [r for r in self.records
                if (t_from is None or r.scheduled >= t_from) and (t_to is None or r.scheduled < t_to)]
        return LoadResult(recs, self.rate, self.duration, self.deadline, self.slack,
                          self.channels, self.wall)

    def failed(self):
        return [r for r in self.records if not r.ok]

    def late_calls(self):
        return [r for r in self.records if r.late]

    def unfinished(self):
        return [r for r in self.records if r.done is None]

    # --- figures --------------------------------------------------------------
    def count(self):
        return len(self.records)

    def by_status(self):
        out = {}
        for r in self.records:
            name = r.code or "UNFINISHED"
            out[name] = out.get(name, 0) + 1
        return dict(sorted(out.items()))

    def by_replica(self):
        out = {}
        for r in self.records:
            name = r.replica or "-"
            out[name] = out.get(name, 0) + 1
        return dict(sorted(out.items()))

    def latencies(self, only_ok=False):
        return sorted(r.latency for r in self.records
                      if r.latency is not None and (r.ok or not only_ok))

    def pct(self, q, only_ok=False):
        """Latency quantile <q> in seconds over finished calls (None if none)."""
        return percentile(self.latencies(only_ok), q)

    def pct_ms(self, q, only_ok=False):
        v = self.pct(q, only_ok)
        return None if v is None else v * 1000.0

    def send_lateness(self):
        """(p50, p99, max) of sent - scheduled, in ms: the driver's own lag."""
        lag = sorted(r.sent - r.scheduled for r in self.records)
        if not lag:
            return (0.0, 0.0, 0.0)
        return (percentile(lag, 0.5) * 1e3, percentile(lag, 0.99) * 1e3, lag[-1] * 1e3)

    def achieved_rate(self):
        if len(self.records) < 2:
            return 0.0
        span = self.records[-1].sent - self.records[0].sent
        return (len(self.records) - 1) / span if span > 0 else 0.0

    def success_fraction(self):
        return sum(1 for r in self.records if r.ok) / len(self.records) if self.records else 0.0

    def deadline_exceeded(self):
        return sum(1 for r in self.records if r.code == "DEADLINE_EXCEEDED")

    def summary(self):
        lag = self.send_lateness()
        return {
            "calls": self.count(),
            "ok": sum(1 for r in self.records if r.ok),
            "failed": len(self.failed()),
            "late": len(self.late_calls()),
            "deadline_exceeded": self.deadline_exceeded(),
            "unfinished": len(self.unfinished()),
            "status": self.by_status(),
            "replica": self.by_replica(),
            "latency_ms": {name: (None if self.pct_ms(q) is None else round(self.pct_ms(q), 3))
                           for name, q in (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999),
                                           ("max", 1.0))},
            "send_lateness_ms": {"p50": round(lag[0], 3), "p99": round(lag[1], 3),
                                 "max": round(lag[2], 3)},
            "rate": self.rate,
            "achieved_rate": round(self.achieved_rate(), 1),
            "deadline_s": self.deadline,
            "slack_s": self.slack,
            "channels": self.channels,
        }

    def summary_line(self, label):
        """One compact line of the figures (for test output and notes)."""
        s = self.summary()
        lat = s["latency_ms"]
        fmt = lambda v: "-" if v is None else "%.1f" % v  # noqa: E731
        return ("%s: calls=%d ok=%d failed=%d late=%d deadline_exceeded=%d p50=%sms p99=%sms "
                "p99.9=%sms max=%sms status=%s replicas=%s send_lag_p99=%.1fms max=%.1fms rate=%.0f/s"
                % (label, s["calls"], s["ok"], s["failed"], s["late"], s["deadline_exceeded"],
                   fmt(lat["p50"]), fmt(lat["p99"]), fmt(lat["p99.9"]), fmt(lat["max"]),
                   json.dumps(s["status"], separators=(",", ":")),
                   json.dumps(s["replica"], separators=(",", ":")),
                   s["send_lateness_ms"]["p99"], s["send_lateness_ms"]["max"], s["achieved_rate"]))

    def failed_lines(self, limit=20):
        out = []
        for r in self.failed()[:limit]:
            out.append("  #%d key=%s sent=%.3f latency=%s code=%s replica=%s message=%r"
                       % (r.index, r.key, r.sent,
                          "-" if r.latency is None else "%.1fms" % (r.latency * 1e3),
                          r.code, r.replica, r.message))
        more = len(self.failed()) - limit
        if more > 0:
            out.append("  ... and %d more" % more)
        return out

    def report(self, label="load"):
        lines = [self.summary_line(label)]
        if self.failed():
            lines.append("failed calls:")
            lines += self.failed_lines()
        return "\n".join(lines)


class LoadDriver:
    """Open-loop ModelInfer load; see the module docstring."""

    def __init__(self, target, rate=300.0, duration=5.0, deadline=1.0, keys=0, channels=2,
                 model="demo", slack=DEFAULT_SLACK, key_prefix="key", metadata=(), nvalues=4,
                 drain_timeout=None):
        if rate <= 0 or duration <= 0:
            raise ValueError("rate and duration must be positive")
        self.target = target
        self.rate = float(rate)
        self.duration = float(duration)
        self.deadline = float(deadline)
        self.slack = float(slack)
        self.model = model
        if isinstance(keys, int):
            self.keys = ["%s-%d" % (key_prefix, i) for i in range(keys)]
        else:
            self.keys = list(keys)
        self.metadata = list(metadata)
        self.nchannels = max(1, int(channels))
        self.vals = h.values(nvalues)
        self.want = h.expected(self.vals)
        self.drain_timeout = drain_timeout if drain_timeout is not None else self.deadline + 5.0
        self.records = []
        self._lock = threading.Lock()
        self._outstanding = 0
        self._idle = threading.Condition(self._lock)
        self._thread = None
        self._t0 = None
        self._error = None
        self._channels = []
        self._stubs = []
        for i in range(self.nchannels):
            # A local subchannel pool (and a distinct argument) per channel:
            # each channel gets its own connection instead of sharing one.
            ch = h.channel(target, ("grpc.use_local_subchannel_pool", 1),
                           ("infergw.loaddrive.channel", i))
            self._channels.append(ch)
            self._stubs.append(h.infer_stub(ch))
        # One request object for every call: serialising it is all a send
        # costs, and the answer is checked against the same values.
        self._request = h.typed_request(self.vals, model=model)

    # --- running ---------------------------------------------------------------
    def elapsed(self):
        """Seconds since t0 (the first scheduled send), or 0 before start()."""
        return 0.0 if self._t0 is None else time.monotonic() - self._t0

    def start(self, delay=0.05):
        """Starts sending from a background thread, t0 = now + <delay>."""
        self._t0 = time.monotonic() + delay
        self._thread = threading.Thread(target=self._send_loop, name="loaddrive", daemon=True)
        self._thread.start()
        return self

    def run(self):
        """start() and wait(): the LoadResult."""
        return self.start().wait()

    def wait(self):
        """Waits for the sender and for every call in flight; closes the channels."""
        self._thread.join()
        end = time.monotonic() + self.drain_timeout
        with self._lock:
            while self._outstanding > 0 and time.monotonic() < end:
                self._idle.wait(0.05)
        for ch in self._channels:
            ch.close()
        if self._error:
            raise self._error
        recs = sorted(self.records, key=lambda r: r.index)
        last = max((r.done for r in recs if r.done is not None), default=0.0)
        first = recs[0].sent if recs else 0.0
        return LoadResult(recs, self.rate, self.duration, self.deadline, self.slack,
                          self.nchannels, last - first)

    def _send_loop(self):
        try:
            n = int(round(self.rate * self.duration))
            interval = 1.0 / self.rate
            t0 = self._t0
            nkeys = len(self.keys)
            for i in range(n):
                sched = i * interval
                delay = t0 + sched - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                # Late sends are not skipped: open loop keeps the schedule and
                # the lag is recorded (a stall shows as send lateness).
                key = self.keys[i % nkeys] if nkeys else None
                md = list(self.metadata)
                if key is not None:
                    md.append(("x-route-key", key))
                stub = self._stubs[i % self.nchannels]
                sent = time.monotonic()
                rec = CallRecord(i, key, sched, sent - t0)
                with self._lock:
                    self._outstanding += 1
                    self.records.append(rec)
                try:
                    fut = stub.ModelInfer.future(self._request, timeout=self.deadline, metadata=md)
                except Exception as e:  # noqa: BLE001 - recorded as a failed call
                    self._finish(rec, sent, "CLIENT_ERROR", repr(e), None, False)
                    continue
                fut.add_done_callback(lambda f, r=rec, s=sent: self._on_done(f, r, s))
        except BaseException as e:  # noqa: BLE001 - re-raised by wait()
            self._error = e

    def _on_done(self, fut, rec, sent):
        now = time.monotonic()
        code, message, replica, ok = None, None, None, False
        try:
            c = fut.code()
            code = c.name if c is not None else "NONE"
            message = fut.details()
            replica = h.md_get(fut.initial_metadata(), "x-replica-id")
            if replica is None:  # a trailers-only answer carries it in the trailers
                replica = h.md_get(fut.trailing_metadata(), "x-replica-id")
            if c == grpc.StatusCode.OK:
                out = list(fut.result().outputs[0].contents.fp32_contents)
                ok = out == self.want
                if not ok:
                    message = "wrong answer: %r" % (out[:8],)
        except Exception as e:  # noqa: BLE001
            message = (message or "") + " client exception: %r" % (e,)
        self._finish(rec, sent, code, message, replica, ok, now)

    def _finish(self, rec, sent, code, message, replica, ok, now=None):
        now = time.monotonic() if now is None else now
        rec.done = now - self._t0
        rec.latency = now - sent
        rec.code = code
        rec.message = message
        rec.replica = replica
        rec.ok = ok
        rec.late = rec.latency > self.deadline + self.slack
        with self._lock:
            self._outstanding -= 1
            self._idle.notify_all()


def drive(target, **kwargs):
    """One run in the foreground: LoadDriver(target, **kwargs).run()."""
    return LoadDriver(target, **kwargs).run()


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Open-loop ModelInfer load against an infergw gateway (or a replica): calls "
                    "at fixed scheduled times, each with its own deadline; prints counts per "
                    "status and per replica (x-replica-id), latency p50/p99/p99.9, the calls that "
                    "failed with their messages, the calls answered after their deadline, and how "
                    "late the driver itself sent.",
        epilog="The slack absorbs the client's own scheduling delay (grpc core's timer and "
               "completion thread, then the GIL) between an answer and the moment it is seen. "
               "Exit status 0 when every call succeeded with the right answer, else 1.  "
               "example: /usr/bin/python3 %(prog)s 127.0.0.1:7100 --rate 300 --duration 5 "
               "--keys 64 --deadline-ms 1000")
    ap.add_argument("target", help="host:port of the gateway")
    ap.add_argument("--rate", type=float, default=300.0, help="calls per second [300]")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds of sending [5]")
    ap.add_argument("--deadline-ms", type=float, default=1000.0, help="deadline of every call [1000]")
    ap.add_argument("--slack-ms", type=float, default=DEFAULT_SLACK * 1e3,
                    help="a call finishing later than deadline + slack counts as late [50]")
    ap.add_argument("--keys", type=int, default=0,
                    help="x-route-key spread round robin over N keys (0 = no key) [0]")
    ap.add_argument("--key-prefix", default="key", help="keys are <prefix>-<i> [key]")
    ap.add_argument("--channels", type=int, default=2, help="channels (connections), round robin [2]")
    ap.add_argument("--model", default="demo", help="model_name of the requests [demo]")
    ap.add_argument("--metadata", action="append", default=[], metavar="K:V",
                    help="extra request metadata, repeatable")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    ap.add_argument("--records", metavar="FILE", help="write every call as a JSON line to FILE")
    a = ap.parse_args(argv)
    md = []
    for kv in a.metadata:
        k, _, v = kv.partition(":")
        md.append((k.strip().lower(), v.strip()))
    res = drive(a.target, rate=a.rate, duration=a.duration, deadline=a.deadline_ms / 1e3,
                keys=a.keys, key_prefix=a.key_prefix, channels=a.channels, model=a.model,
                slack=a.slack_ms / 1e3, metadata=md)
    if a.records:
        with open(a.records, "w") as f:
            for r in res.records:
                f.write(json.dumps(r.as_dict()) + "\n")
    if a.json:
        s = res.summary()
        s["failed_calls"] = [r.as_dict() for r in res.failed()[:100]]
        print(json.dumps(s))
    else:
        print(res.report("load"))
    return 0 if not res.failed() else 1


if __name__ == "__main__":
    sys.exit(main())
