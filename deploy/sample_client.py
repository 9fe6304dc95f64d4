#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Sample KServe v2 calls through an infergw gateway, with stubs generated from proto/.

deploy/run-local.sh generates the stubs (protoc + grpc_python_plugin) into build/pygen and
runs `demo`. Run it yourself with Debian's python3-grpcio, i.e. /usr/bin/python3:

  /usr/bin/python3 deploy/sample_client.py demo                 # the checked sample calls
  /usr/bin/python3 deploy/sample_client.py infer 1 2 3          # one ModelInfer: 2x+1
  /usr/bin/python3 deploy/sample_client.py infer 4 5 --key user-7 --count 3
  /usr/bin/python3 deploy/sample_client.py stream 1 2 3 --responses 5
  /usr/bin/python3 deploy/sample_client.py ready                # ServerLive, ServerReady, Health
  /usr/bin/python3 deploy/sample_client.py retune --redis redis://127.0.0.1:7379 \
      --replicas replica-1=127.0.0.1:7201,replica-2=127.0.0.1:7202,replica-3=127.0.0.1:7203

`retune` is an operator retuning routing live with infergw-ctl while calls keep flowing:
`route` predicts the replica of a routing key, a drain moves the key to the second choice within
a second with no failed call, an undrain brings it back, a weight change grows the replica's share
of the ring (the weight is left at 300: set it back with `replica weight demo <addr> 100`).

Common flags: --target HOST:PORT (default $INFERGW_TARGET or 127.0.0.1:7100),
--stubs DIR (default $INFERGW_PYGEN or <repo>/build/pygen), --model NAME (default demo).
Exit status: 0 when every call returned what it should, 1 otherwise.
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Debian's python3-grpcio lives in /usr/bin/python3; another python3 on PATH (pyenv, venv)
# usually has no grpc module. Switch once, before importing anything.
if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") \
        and os.path.exists("/usr/bin/python3") and not os.environ.get("INFERGW_NO_REEXEC"):
    try:
        import grpc  # noqa: F401
    except ImportError:
        os.environ["INFERGW_NO_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)


def load_stubs(stubs):
    if not os.path.exists(os.path.join(stubs, "grpc_predict_v2_pb2_grpc.py")):
        sys.exit("sample_client: no generated stubs in %s; run deploy/run-local.sh once, or:\n"
                 "  protoc -I proto --python_out=%s --grpc_out=%s "
                 "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin proto/grpc_predict_v2.proto"
                 % (stubs, stubs, stubs))
    sys.path.insert(0, stubs)
    global grpc, pb, pbg, hpb, hpbg
    import grpc
    import grpc_predict_v2_pb2 as pb
    import grpc_predict_v2_pb2_grpc as pbg
    try:
        import health_pb2 as hpb
        import health_pb2_grpc as hpbg
    except ImportError:
        hpb = hpbg = None


TIMEOUT = 5.0  # seconds, every call


def fmt(vals):
    return "[" + ", ".join("%g" % v for v in vals) + "]"


def expected(vals):
    return [2.0 * v + 1.0 for v in vals]


def infer_request(vals, model, rid, responses=None):
    req = pb.ModelInferRequest(model_name=model, id=rid)
    t = req.inputs.add(name="INPUT0", datatype="FP32", shape=[len(vals)])
    t.contents.fp32_contents.extend(vals)
    if responses is not None:
        req.parameters["stream_responses"].int64_param = responses
    return req


def replica_of(call):
    for k, v in call.initial_metadata() or ():
        if k == "x-replica-id":
            return v
    return None


def outputs_of(resp):
    if not resp.outputs:
        return None
    return list(resp.outputs[0].contents.fp32_contents)


class Demo:
    """The checked sample calls; each step prints one short line (or a few)."""

    def __init__(self, stub, channel, model, replicas):
        self.stub, self.channel, self.model = stub, channel, model
        self.replicas = set(replicas)  # expected x-replica-id values; empty = any
        self.failures = []

    def ok(self, cond, what):
        if not cond:
            self.failures.append(what)
            print("   FAIL: " + what)
        return cond

    def step(self, fn):
        try:
            fn()
        except grpc.RpcError as e:
            self.ok(False, "%s: %s %s" % (fn.__name__, e.code().name, e.details()))

    def known(self, rid):
        return rid is not None and (not self.replicas or rid in self.replicas)

    def server(self):
        live = self.stub.ServerLive(pb.ServerLiveRequest(), timeout=TIMEOUT).live
        # Ready means every pool has a reachable replica: give the gateway a moment.
        t0 = time.monotonic()
        while True:
            ready = self.stub.ServerReady(pb.ServerReadyRequest(), timeout=TIMEOUT).ready
            if ready or time.monotonic() - t0 > 10:
                break
            time.sleep(0.2)
        print("ServerLive   live=%s   ServerReady   ready=%s" % (live, ready))
        self.ok(live, "ServerLive returned live=false")
        self.ok(ready, "ServerReady returned ready=false")
        if hpbg is not None:
            st = hpbg.HealthStub(self.channel).Check(hpb.HealthCheckRequest(), timeout=TIMEOUT)
            name = hpb.HealthCheckResponse.ServingStatus.Name(st.status)
            print("Health/Check %s" % name)
            self.ok(st.status == hpb.HealthCheckResponse.SERVING, "Health/Check: " + name)

    def unary(self):
        vals = [1.0, 2.0, 3.0]
        resp, call = self.stub.ModelInfer.with_call(
            infer_request(vals, self.model, "sample-1"), timeout=TIMEOUT)
        out, rid = outputs_of(resp), replica_of(call)
        print("ModelInfer   %s -> %s   answered by %s" % (fmt(vals), fmt(out or []), rid))
        self.ok(out == expected(vals), "ModelInfer: got %s, want %s" % (out, fmt(expected(vals))))
        self.ok(self.known(rid), "ModelInfer: unexpected x-replica-id %r" % rid)

    def sticky(self):
        key, vals, seen = "user-42", [4.0, 5.0], []
        for i in range(5):
            resp, call = self.stub.ModelInfer.with_call(
                infer_request(vals, self.model, "sticky-%d" % i),
                metadata=[("x-route-key", key)], timeout=TIMEOUT)
            seen.append(replica_of(call))
            self.ok(outputs_of(resp) == expected(vals), "route key call %d: wrong output" % i)
        print("x-route-key=%s, 5 calls -> %s   (same key, same replica)" % (key, " ".join(map(str, seen))))
        self.ok(len(set(seen)) == 1 and self.known(seen[0]),
                "route key: calls went to %s, want one replica" % seen)

    def spread(self, n=30):
        count = collections.Counter()
        for i in range(n):
            vals = [float(i)]
            resp, call = self.stub.ModelInfer.with_call(
                infer_request(vals, self.model, "spread-%d" % i), timeout=TIMEOUT)
            count[replica_of(call)] += 1
            self.ok(outputs_of(resp) == expected(vals), "no-key call %d: wrong output" % i)
        print("no route key, %d calls -> %s" % (
            n, ", ".join("%s: %d" % (k, v) for k, v in sorted(count.items(), key=str))))
        for rid in count:
            self.ok(self.known(rid), "no-key calls: unexpected x-replica-id %r" % rid)
        want = len(self.replicas) if self.replicas else 2
        self.ok(len(count) >= want, "no-key calls reached %d replicas, want %d" % (len(count), want))

    def stream(self, n=5):
        vals = [1.0, 2.0, 3.0]
        call = self.stub.ModelStreamInfer(
            iter([infer_request(vals, self.model, "stream-1", responses=n)]), timeout=TIMEOUT)
        got = list(call)
        print("ModelStreamInfer %s, stream_responses=%d -> %d responses from %s:"
              % (fmt(vals), n, len(got), replica_of(call)))
        for i, r in enumerate(got):
            out = outputs_of(r.infer_response)
            print("   #%d  id=%s  %s%s" % (i + 1, r.infer_response.id, fmt(out or []),
                                        ("  error: " + r.error_message) if r.error_message else ""))
            self.ok(not r.error_message and out == expected(vals) and r.infer_response.id == "stream-1",
                    "stream response %d wrong" % (i + 1))
        self.ok(len(got) == n, "ModelStreamInfer: %d responses, want %d" % (len(got), n))
        self.ok(call.code() == grpc.StatusCode.OK, "ModelStreamInfer ended with %s" % call.code())
        self.ok(self.known(replica_of(call)), "ModelStreamInfer: unexpected x-replica-id")

    def run(self):
        for fn in (self.server, self.unary, self.sticky, self.spread, self.stream):
            self.step(fn)
        if self.failures:
            print("\n%d check(s) failed." % len(self.failures))
            return 1
        print("\nAll sample calls returned the right answers.")
        return 0


class LiveCaller(threading.Thread):
    """ModelInfer with one routing key, back to back, recording every call until stopped."""

    def __init__(self, stub, model, key):
        super().__init__(daemon=True)
        self.stub, self.model, self.key = stub, model, key
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.records = []  # (start, end, x-replica-id or None, error or None), monotonic seconds

    def run(self):
        i = 0
        while not self.stop_ev.is_set():
            vals, t0 = [float(i)], time.monotonic()
            try:
                resp, call = self.stub.ModelInfer.with_call(
                    infer_request(vals, self.model, "live-%d" % i),
                    metadata=[("x-route-key", self.key)], timeout=TIMEOUT)
                rid = replica_of(call)
                err = None if outputs_of(resp) == expected(vals) else "wrong output"
            except grpc.RpcError as e:
                rid, err = None, "%s %s" % (e.code().name, e.details())
            with self.lock:
                self.records.append((t0, time.monotonic(), rid, err))
            i += 1
            self.stop_ev.wait(0.01)

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def stop(self):
        self.stop_ev.set()
        self.join(TIMEOUT + 1)


class Retune:
    """An operator retuning the ring live with infergw-ctl; each step printed and checked."""

    SWITCH_LIMIT = 1.5  # seconds from the infergw-ctl write to the first call on the new replica

    def __init__(self, stub, model, ctl, redis, replicas, key):
        self.stub, self.model, self.ctl_path, self.redis, self.key = stub, model, ctl, redis, key
        self.id_of = replicas  # host:port -> x-replica-id
        self.failures = []

    ok = Demo.ok

    def name(self, addr):
        return "%s (%s)" % (addr, self.id_of.get(addr, "?"))

    def ctl(self, *args):
        """Runs infergw-ctl, printing the command line and what it printed; returns its output."""
        print("$ infergw-ctl " + " ".join(args))
        p = subprocess.run([self.ctl_path, "--redis", self.redis] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=30)
        for line in p.stdout.rstrip("\n").split("\n"):
            print("    " + line)
        if p.returncode != 0:
            raise RuntimeError("infergw-ctl %s: exit status %d" % (" ".join(args), p.returncode))
        return p.stdout

    def ctl_json(self, *args):
        """infergw-ctl --json <args>, not printed; the parsed document."""
        p = subprocess.run([self.ctl_path, "--redis", self.redis, "--json"] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=30)
        if p.returncode != 0:
            raise RuntimeError("infergw-ctl --json %s: exit status %d: %s"
                               % (" ".join(args), p.returncode, p.stderr.strip()))
        return json.loads(p.stdout)

    def route(self):
        """`infergw-ctl route <pool> <key>`, printed; returns (first choice, second choice)."""
        self.ctl("route", self.model, self.key)
        r = self.ctl_json("route", self.model, self.key)
        return r["replica"], r.get("second")

    def calls(self, n=5):
        """n calls with the routing key; the x-replica-id of each (None when it failed)."""
        seen = []
        for i in range(n):
            vals = [float(i), 1.0]
            try:
                resp, call = self.stub.ModelInfer.with_call(
                    infer_request(vals, self.model, "retune-%d" % i),
                    metadata=[("x-route-key", self.key)], timeout=TIMEOUT)
                self.ok(outputs_of(resp) == expected(vals), "call %d: wrong output" % i)
                seen.append(replica_of(call))
            except grpc.RpcError as e:
                self.ok(False, "call %d: %s %s" % (i, e.code().name, e.details()))
                seen.append(None)
        return seen

    def follow(self, caller, t_write, want, what):
        """Waits for the live calls to land on <want> after a write at t_write; checks it
        happens within SWITCH_LIMIT and that later calls stay there."""
        want_id = self.id_of.get(want)
        deadline = t_write + self.SWITCH_LIMIT + 2.0
        first = None
        while first is None and time.monotonic() < deadline:
            for idx, (_, end, rid, _) in enumerate(caller.snapshot()):
                if end >= t_write and rid == want_id:
                    first = (idx, end)
                    break
            else:
                time.sleep(0.01)
        if not self.ok(first is not None, "%s: no call with x-route-key %s reached %s within %.1f s"
                       % (what, self.key, self.name(want), self.SWITCH_LIMIT + 2.0)):
            return
        time.sleep(0.3)  # then the calls must stay on <want>
        recs = caller.snapshot()
        after = recs[first[0]:]
        stray = [r[2] for r in after if r[2] != want_id]
        ms = (first[1] - t_write) * 1000.0
        print("    -> calls with x-route-key %s now answered by %s, %.0f ms after the write; "
              "%d calls since, all there" % (self.key, want_id, ms, len(after) - len(stray)))
        self.ok(ms <= self.SWITCH_LIMIT * 1000.0,
                "%s: routing changed after %.0f ms, want within %.0f ms"
                % (what, ms, self.SWITCH_LIMIT * 1000.0))
        self.ok(not stray, "%s: after the change, calls still went to %s"
                % (what, sorted(set(map(str, stray)))))

    def spread(self, keys, what, t_write=None):
        """One call per key, until every call lands where `infergw-ctl route` predicts (within
        SWITCH_LIMIT of t_write when given); prints and returns the count per replica."""
        want = {k: self.id_of.get(self.ctl_json("route", self.model, k)["replica"]) for k in keys}
        deadline = (t_write or time.monotonic()) + self.SWITCH_LIMIT
        while True:
            got = {}
            for k in keys:
                resp, call = self.stub.ModelInfer.with_call(
                    infer_request([1.0], self.model, "spread-" + k),
                    metadata=[("x-route-key", k)], timeout=TIMEOUT)
                self.ok(outputs_of(resp) == expected([1.0]), "key %s: wrong output" % k)
                got[k] = replica_of(call)
            wrong = [k for k in keys if got[k] != want[k]]
            if not wrong or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        count = collections.Counter(got.values())
        print("    -> %d calls, keys %s..%s, %s: %s; %s" % (
            len(keys), keys[0], keys[-1], what,
            ", ".join("%s: %d" % kv for kv in sorted(count.items(), key=str)),
            "each where infergw-ctl route predicts" if not wrong else
            "%d not where infergw-ctl route predicts" % len(wrong)))
        self.ok(not wrong, "%s: keys %s went to %s, infergw-ctl route predicts %s" % (
            what, wrong[:5], [got[k] for k in wrong[:5]], [want[k] for k in wrong[:5]]))
        return count

    def share(self, addr):
        ring = self.ctl_json("ring", "show", self.model)
        for r in ring["replicas"]:
            if r["address"] == addr:
                return r["share"], r["vnodes"]
        return None, None

    def run(self):
        print("Operator retuning live: infergw-ctl --redis %s <command> (pool %s, x-route-key %s)\n"
              % (self.redis, self.model, self.key))
        try:
            self.steps()
        except (RuntimeError, KeyError, ValueError, subprocess.SubprocessError) as e:
            self.ok(False, str(e))
        except grpc.RpcError as e:
            self.ok(False, "%s %s" % (e.code().name, e.details()))
        if self.failures:
            print("\n%d check(s) failed." % len(self.failures))
            return 1
        print("\nEvery retuning step took effect as predicted, with no failed call.")
        return 0

    def steps(self):
        # 1. route predicts the replica; the calls land there.
        first, second = self.route()
        seen = self.calls()
        print("    -> 5 calls with x-route-key %s answered by %s   (predicted: %s)"
              % (self.key, " ".join(map(str, seen)), self.id_of.get(first)))
        if not self.ok(second is not None, "route printed no second choice"):
            return
        if not self.ok(set(seen) == {self.id_of.get(first)},
                       "route predicted %s, the calls went to %s" % (self.name(first), seen)):
            return

        # 2. drain it, calls flowing: the key moves to the second choice; 3. undrain: back.
        caller = LiveCaller(self.stub, self.model, self.key)
        caller.start()
        try:
            time.sleep(0.2)
            print("\n(calls with x-route-key %s keep flowing, back to back, from now on)" % self.key)
            t = time.monotonic()
            self.ctl("replica", "drain", first)
            self.follow(caller, t, second, "drain")
            now, _ = self.route()
            self.ok(now == second, "after the drain route says %s, want the second choice %s"
                    % (self.name(now), self.name(second)))
            print()
            t = time.monotonic()
            self.ctl("replica", "undrain", first)
            self.follow(caller, t, first, "undrain")
            time.sleep(0.1)
        finally:
            caller.stop()
        recs = caller.snapshot()
        failed = [r for r in recs if r[3]]
        count = collections.Counter(r[2] for r in recs if not r[3])
        print("    -> %d calls during the drain and undrain: %d failed; %s"
              % (len(recs), len(failed), ", ".join("%s: %d" % kv for kv in sorted(count.items(), key=str))))
        self.ok(not failed, "%d live call(s) failed, first: %s"
                % (len(failed), failed[0][3] if failed else ""))
        unexpected = set(count) - {self.id_of.get(first), self.id_of.get(second)}
        self.ok(not unexpected, "live calls reached %s, want only %s and %s"
                % (sorted(map(str, unexpected)), self.id_of.get(first), self.id_of.get(second)))

        # 4. more weight: its share of the hash space grows; its keys stay with it.
        print()
        keys = ["key-%d" % i for i in range(40)]
        self.ctl("ring", "show", self.model)
        before, vn_before = self.share(first)
        if vn_before == 300:  # a second run: start again from the default weight
            self.ctl("replica", "weight", self.model, first, "100")
            before, vn_before = self.share(first)
        n_before = self.spread(keys, "%s at %s vnodes" % (self.id_of.get(first), vn_before),
                               time.monotonic()).get(self.id_of.get(first), 0)
        t = time.monotonic()
        self.ctl("replica", "weight", self.model, first, "300")
        self.ctl("ring", "show", self.model)
        after, vn_after = self.share(first)
        print("    -> %s owns %.1f%% of the hash space (was %.1f%%)"
              % (self.name(first), 100 * after, 100 * before))
        self.ok(vn_after == 300, "ring show: %s has %s vnodes, want 300" % (first, vn_after))
        self.ok(after > before, "weight 300: share %.4f, was %.4f: did not grow" % (after, before))
        n_after = self.spread(keys, "%s at 300 vnodes" % self.id_of.get(first),
                              t).get(self.id_of.get(first), 0)
        self.ok(n_after >= n_before, "%s answered %d of the keys after the weight change, %d before"
                % (self.id_of.get(first), n_after, n_before))
        seen = self.calls(3)
        print("    -> x-route-key %s still answered by %s   (a replica that gains vnodes keeps its keys)"
              % (self.key, " ".join(map(str, seen))))
        self.ok(set(seen) == {self.id_of.get(first)},
                "after the weight change, x-route-key %s went to %s, want %s"
                % (self.key, seen, self.id_of.get(first)))


def main():
    ap = argparse.ArgumentParser(
        description="Sample KServe v2 calls through infergw (see the top of this file).")
    ap.add_argument("--target", default=os.environ.get("INFERGW_TARGET", "127.0.0.1:7100"))
    ap.add_argument("--stubs", default=os.environ.get("INFERGW_PYGEN",
                                                      os.path.join(ROOT, "build", "pygen")))
    ap.add_argument("--model", default="demo", help="model_name of the requests [demo]")
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="the checked sample calls")
    d.add_argument("--replicas", default="",
                   help="comma list of expected x-replica-id values (checked when given)")
    sub.add_parser("ready", help="ServerLive, ServerReady, grpc.health.v1 Check")
    i = sub.add_parser("infer", help="ModelInfer with a typed FP32 input")
    i.add_argument("values", nargs="*", type=float, default=[1.0, 2.0, 3.0])
    i.add_argument("--key", help="x-route-key")
    i.add_argument("--x-model", help="x-model metadata (picks the pool)")
    i.add_argument("--count", type=int, default=1)
    s = sub.add_parser("stream", help="ModelStreamInfer")
    s.add_argument("values", nargs="*", type=float, default=[1.0, 2.0, 3.0])
    s.add_argument("--responses", type=int, default=5, help="stream_responses [5]")
    s.add_argument("--key", help="x-route-key")
    r = sub.add_parser("retune", help="an operator retuning live with infergw-ctl (route, drain, "
                       "undrain, weight), each step checked while calls flow")
    r.add_argument("--replicas", required=True,
                   help="comma list of x-replica-id=host:port, one per replica on the ring")
    r.add_argument("--redis", default=os.environ.get("INFERGW_REDIS", "redis://127.0.0.1:7379"),
                   help="Redis URL for infergw-ctl [$INFERGW_REDIS or redis://127.0.0.1:7379]")
    r.add_argument("--ctl", default=os.path.join(ROOT, "build", "bin", "infergw-ctl"),
                   help="the infergw-ctl binary [<repo>/build/bin/infergw-ctl]")
    r.add_argument("--key", default="user-42", help="x-route-key [user-42]")
    args = ap.parse_args()

    load_stubs(args.stubs)
    channel = grpc.insecure_channel(args.target)
    stub = pbg.GRPCInferenceServiceStub(channel)
    try:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
    except grpc.FutureTimeoutError:
        print("sample_client: cannot connect to %s" % args.target, file=sys.stderr)
        return 1

    if args.cmd == "demo":
        print("Sample calls through the gateway at %s (model %s):\n" % (args.target, args.model))
        replicas = [r for r in args.replicas.split(",") if r]
        return Demo(stub, channel, args.model, replicas).run()
    if args.cmd == "retune":
        try:
            pairs = dict(kv.split("=", 1) for kv in args.replicas.split(",") if kv)
        except ValueError:
            ap.error("--replicas: want id=host:port,...")
        id_of = {addr: rid for rid, addr in pairs.items()}
        return Retune(stub, args.model, args.ctl, args.redis, id_of, args.key).run()

    try:
        if args.cmd == "ready":
            d = Demo(stub, channel, args.model, [])
            d.server()
            return 1 if d.failures else 0
        md = []
        if getattr(args, "key", None):
            md.append(("x-route-key", args.key))
        if getattr(args, "x_model", None):
            md.append(("x-model", args.x_model))
        if args.cmd == "infer":
            rc = 0
            for n in range(args.count):
                resp, call = stub.ModelInfer.with_call(
                    infer_request(args.values, args.model, "cli-%d" % n), metadata=md, timeout=TIMEOUT)
                out = outputs_of(resp)
                print("%s -> %s   answered by %s" % (fmt(args.values), fmt(out or []), replica_of(call)))
                rc |= out != expected(args.values)
            return rc
        call = stub.ModelStreamInfer(
            iter([infer_request(args.values, args.model, "cli-stream", responses=args.responses)]),
            metadata=md, timeout=TIMEOUT)
        n = 0
        for r in call:
            n += 1
            print("#%d %s%s" % (n, fmt(outputs_of(r.infer_response) or []),
                                ("  error: " + r.error_message) if r.error_message else ""))
        print("%d responses, status %s, answered by %s" % (n, call.code().name, replica_of(call)))
        return 0 if n == args.responses else 1
    except grpc.RpcError as e:
        print("%s: %s" % (e.code().name, e.details()), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
