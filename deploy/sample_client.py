#!/usr/bin/python3
"""Sample KServe v2 calls through an infergw gateway, with stubs generated from proto/.

deploy/run-local.sh generates the stubs (protoc + grpc_python_plugin) into build/pygen and
runs `demo`. Run it yourself with Debian's python3-grpcio, i.e. /usr/bin/python3:

  /usr/bin/python3 deploy/sample_client.py demo                 # the checked sample calls
  /usr/bin/python3 deploy/sample_client.py infer 1 2 3          # one ModelInfer: 2x+1
  /usr/bin/python3 deploy/sample_client.py infer 4 5 --key user-7 --count 3
  /usr/bin/python3 deploy/sample_client.py stream 1 2 3 --responses 5
  /usr/bin/python3 deploy/sample_client.py ready                # ServerLive, ServerReady, Health

Common flags: --target HOST:PORT (default $INFERGW_TARGET or 127.0.0.1:7100),
--stubs DIR (default $INFERGW_PYGEN or <repo>/build/pygen), --model NAME (default demo).
Exit status: 0 when every call returned what it should, 1 otherwise.
"""

import argparse
import collections
import os
import sys
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
