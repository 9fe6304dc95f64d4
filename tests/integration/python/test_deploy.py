# SPDX-License-Identifier: Apache-2.0
"""The deployment files under deploy/ (systemd, Docker, Kubernetes) are sound.

- systemd: `systemd-analyze verify` accepts every unit, with the ExecStart
  programs pointed at the build tree (a copy of the units in a temporary
  directory); no warnings either. The gateway unit has the hardening options,
  stops with SIGTERM and gives the drain (--shutdown-grace-ms of the example
  environment file) time to finish; `systemd-analyze security` rates every
  unit "OK" (exposure < 2.5 of 10). The backup service runs deploy/backup.sh
  (installed as /usr/local/bin/infergw-backup) as a oneshot into its state
  directory, started hourly by its timer (verified with it).
- Docker: the build stage of the Dockerfile builds with deploy/lib/build.sh
  --release, the recipe tests/run.sh uses (no cmake line of its own anywhere);
  the runtime stage runs as a non-root user with a HEALTHCHECK on /healthz;
  the health check script and the runtime-package finder work against the real
  binaries; the compose file has Redis + 3 Sentinels, 3 replicas with
  registrars, 2 gateways whose admin listens on 0.0.0.0 and Prometheus
  scraping exactly those admin ports.
- Kubernetes: every YAML document parses and has apiVersion, kind and
  metadata.name; the gateway Deployment runs >= 2 pods with readiness on
  /readyz and liveness on /healthz at the admin port of its flags, resources,
  a preStop hook and terminationGracePeriodSeconds >= preStop + drain grace;
  the PodDisruptionBudget, HorizontalPodAutoscaler and Service select the
  gateway; the replica Deployment has the registrar sidecar; the backup
  CronJob runs infergw-backup (copied into the image by the Dockerfile) into
  a volume claimed by a PersistentVolumeClaim of the manifests; every
  ConfigMap and Secret referenced is defined.

YAML is parsed with Debian's python3-yaml. Run with /usr/bin/python3.
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("INFERGW_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BIN_DIR = os.environ.get("INFERGW_BIN") or os.path.join(SOURCE_DIR, "build", "bin")
DEPLOY = os.path.join(SOURCE_DIR, "deploy")
SYSTEMD = os.path.join(DEPLOY, "systemd")
DOCKER = os.path.join(DEPLOY, "docker")
K8S = os.path.join(DEPLOY, "k8s")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def flag_value(args, flag):
    """The value of --flag in an argv list (--flag=V or --flag V), else None."""
    for i, a in enumerate(args):
        if a.startswith(flag + "="):
            return a[len(flag) + 1:]
        if a == flag and i + 1 < len(args):
            return args[i + 1]
    return None


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


# --------------------------------------------------------------------------
# systemd
# --------------------------------------------------------------------------

def parse_unit(path):
    """[(section, key, value)] of a unit file (keys may repeat)."""
    out, section = [], None
    for line in read(path).splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        k, _, v = line.partition("=")
        out.append((section, k.strip(), v.strip()))
    return out


BACKUP_SCRIPT = "/usr/local/bin/infergw-backup"  # deploy/backup.sh, installed


def unit_for_test(text):
    """A unit's text with its programs pointed at the build tree (and the
    backup script at deploy/backup.sh)."""
    text = text.replace(BACKUP_SCRIPT, os.path.join(DEPLOY, "backup.sh"))
    return text.replace("/usr/local/bin/", BIN_DIR.rstrip("/") + "/")


def parse_env_file(path):
    env = {}
    for line in read(path).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, _, v = line.partition("=")
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1]
        env[k] = v
    return env


class SystemdUnits(unittest.TestCase):
    def units(self):
        units = sorted(glob.glob(os.path.join(SYSTEMD, "*.service")))
        names = [os.path.basename(u) for u in units]
        self.assertIn("infergw.service", names)
        self.assertTrue({"infergw-registrar@.service", "infergw-replica@.service"} & set(names), names)
        return units

    def test_systemd_analyze_verify(self):
        exe = shutil.which("systemd-analyze")
        self.assertIsNotNone(exe, "systemd-analyze missing (Debian package systemd)")
        for b in ("infergw", "infergw-ctl", "infergw-replica"):
            self.assertTrue(os.access(os.path.join(BIN_DIR, b), os.X_OK), "build %s first" % b)
        with tempfile.TemporaryDirectory(prefix="infergw-units-") as tmp:
            copies = []
            for u in self.units():
                text = read(u)
                self.assertIn("/usr/local/bin/", text, u)
                dst = os.path.join(tmp, os.path.basename(u))
                with open(dst, "w", encoding="utf-8") as f:
                    f.write(unit_for_test(text))
                copies.append(dst)
            for t in sorted(glob.glob(os.path.join(SYSTEMD, "*.timer"))):
                dst = os.path.join(tmp, os.path.basename(t))
                shutil.copy(t, dst)
                copies.append(dst)
            # Templates (name@.service) are verified as an instance (name@i).
            r = subprocess.run([exe, "verify"] + copies, capture_output=True, text=True, timeout=60)
            out = (r.stdout + r.stderr).strip()
            print("systemd-analyze verify %s -> exit %d%s" %
                  (" ".join(os.path.basename(c) for c in copies), r.returncode,
                   (":\n" + out) if out else ", no output"))
            self.assertEqual(r.returncode, 0, out)
            # It exits 0 on unknown keys or bad values too, with a warning.
            mine = [l for l in out.splitlines()
                    if tmp in l or any(os.path.basename(c).split("@")[0] in l for c in copies)]
            self.assertEqual(mine, [], "warnings about the units:\n" + out)

    def test_systemd_analyze_security(self):
        """systemd's own exposure score (0 = locked down, 10 = unprotected)
        stays "OK" (< 2.5) for every unit."""
        exe = shutil.which("systemd-analyze")
        self.assertIsNotNone(exe, "systemd-analyze missing (Debian package systemd)")
        with tempfile.TemporaryDirectory(prefix="infergw-units-") as tmp:
            for u in self.units():
                dst = os.path.join(tmp, os.path.basename(u))
                with open(dst, "w", encoding="utf-8") as f:
                    f.write(unit_for_test(read(u)))
                r = subprocess.run([exe, "security", "--offline=true", "--no-pager", dst],
                                   capture_output=True, text=True, timeout=60)
                m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
                self.assertIsNotNone(m, r.stdout + r.stderr)
                print("systemd-analyze security %s: %s" % (os.path.basename(u), m.group(1)))
                self.assertLess(float(m.group(1)), 2.5, os.path.basename(u))

    def test_gateway_unit_drains_and_is_hardened(self):
        unit = parse_unit(os.path.join(SYSTEMD, "infergw.service"))
        svc = {}
        for section, k, v in unit:
            if section == "Service":
                svc.setdefault(k, []).append(v)
        env = parse_env_file(os.path.join(SYSTEMD, "infergw.env"))
        self.assertEqual(svc["EnvironmentFile"], ["/etc/infergw/infergw.env"])
        self.assertEqual(svc["KillSignal"], ["SIGTERM"])
        self.assertEqual(svc["Restart"], ["on-failure"])
        grace_ms = int(env["INFERGW_SHUTDOWN_GRACE_MS"])
        self.assertIn("--shutdown-grace-ms ${INFERGW_SHUTDOWN_GRACE_MS}", svc["ExecStart"][0])
        self.assertGreater(int(svc["TimeoutStopSec"][0]), grace_ms / 1000.0,
                           "TimeoutStopSec must exceed the drain grace")
        for var in re.findall(r"\$\{?([A-Z_]+)\}?", svc["ExecStart"][0]):
            self.assertIn(var, env, "ExecStart uses %s, infergw.env does not set it" % var)
        # systemctl reload sends SIGHUP, the gateway's documented reload signal
        # (TLS files, JWT keys, plugins).
        self.assertEqual(svc.get("ExecReload"), ["/bin/kill -HUP $MAINPID"])
        want = {"DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                "NoNewPrivileges": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
                "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
                "ProtectKernelLogs": "yes", "RestrictNamespaces": "yes", "LockPersonality": "yes",
                "MemoryDenyWriteExecute": "yes", "CapabilityBoundingSet": ""}
        for k, v in want.items():
            self.assertEqual(svc.get(k), [v], k)
        self.assertEqual(svc["RestrictAddressFamilies"], ["AF_INET AF_INET6 AF_UNIX"])
        self.assertIn("@system-service", svc["SystemCallFilter"])
        self.assertGreaterEqual(int(svc["LimitNOFILE"][0]), 65536)

    def test_registrar_runs_register(self):
        unit = parse_unit(os.path.join(SYSTEMD, "infergw-registrar@.service"))
        svc = {k: v for s, k, v in unit if s == "Service"}
        env = parse_env_file(os.path.join(SYSTEMD, "infergw-registrar.env"))
        argv = svc["ExecStart"].split()
        self.assertEqual(argv[0], "/usr/local/bin/infergw-ctl")
        self.assertEqual(argv[1:3], ["replica", "register"])
        self.assertIn("--ttl", argv)
        self.assertIn("INFERGW_REDIS", env)  # read by infergw-ctl itself
        for var in re.findall(r"\$\{?([A-Z_]+)\}?", svc["ExecStart"]):
            self.assertIn(var, env)
        self.assertEqual(svc["KillSignal"], "SIGTERM")

    def test_backup_service_and_timer(self):
        unit = parse_unit(os.path.join(SYSTEMD, "infergw-backup.service"))
        svc = {k: v for s, k, v in unit if s == "Service"}
        env = parse_env_file(os.path.join(SYSTEMD, "infergw-backup.env"))
        self.assertEqual(svc["Type"], "oneshot")
        self.assertEqual(svc["ExecStart"], BACKUP_SCRIPT)
        self.assertEqual(svc["EnvironmentFile"], "/etc/infergw/backup.env")
        self.assertIn("INFERGW_REDIS", env)  # read by infergw-ctl itself
        self.assertGreaterEqual(int(env["INFERGW_BACKUP_KEEP"]), 1)
        # The dumps go to the state directory, the one place it may write.
        self.assertEqual(svc["StateDirectory"], "infergw-backup")
        self.assertEqual(svc["Environment"], "INFERGW_BACKUP_DIR=/var/lib/infergw-backup")
        self.assertEqual(svc["ProtectSystem"], "strict")
        timer = {(s, k): v for s, k, v in parse_unit(os.path.join(SYSTEMD, "infergw-backup.timer"))}
        self.assertEqual(timer[("Timer", "Unit")], "infergw-backup.service")
        self.assertTrue(timer[("Timer", "OnCalendar")])
        self.assertEqual(timer[("Timer", "Persistent")], "true")
        self.assertEqual(timer[("Install", "WantedBy")], "timers.target")
        script = os.path.join(DEPLOY, "backup.sh")
        self.assertTrue(os.access(script, os.X_OK), script)
        r = subprocess.run(["sh", "-n", script], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        if shutil.which("shellcheck"):
            r = subprocess.run(["shellcheck", script], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


# --------------------------------------------------------------------------
# Docker
# --------------------------------------------------------------------------

def dockerfile_stages(path):
    """[(from line, [instructions])], continuation lines joined."""
    lines, cur = [], ""
    for raw in read(path).splitlines():
        s = raw.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        lines.append(cur + s)
        cur = ""
    stages = []
    for ins in lines:
        if ins.upper().startswith("FROM "):
            stages.append((ins, []))
        elif stages:
            stages[-1][1].append(ins)
    return stages


class Docker(unittest.TestCase):
    def test_build_stage_uses_the_shared_build_script(self):
        stages = dockerfile_stages(os.path.join(DOCKER, "Dockerfile"))
        self.assertGreaterEqual(len(stages), 2, "multi-stage")
        build_from, build = stages[0]
        self.assertRegex(build_from, r"^FROM debian:12\S* AS build$")
        runs = [i for i in build if i.upper().startswith("RUN ")]
        self.assertTrue(any("deploy/lib/build.sh --deps" in r for r in runs), runs)
        self.assertTrue(any("deploy/lib/build.sh --release" in r for r in runs), runs)
        for _, ins in stages:
            for i in ins:
                self.assertNotRegex(i, r"\bcmake\b", "a build command of its own: " + i)
        # tests/run.sh builds with the same script and the same Release arguments.
        run_sh = read(os.path.join(SOURCE_DIR, "tests", "run.sh"))
        self.assertIn('source "$ROOT/deploy/lib/build.sh"', run_sh)
        self.assertIn('infergw_build "$dir" "$@"', run_sh)
        self.assertIn('run_suite "$ROOT/build" release "${INFERGW_RELEASE_ARGS[@]}"', run_sh)
        self.assertIn("infergw_ensure_groups tests/run.sh build test", run_sh)
        self.assertNotRegex(run_sh, r"cmake (-S|--build)", "tests/run.sh builds by itself")
        r = subprocess.run(["bash", "-c", 'source deploy/lib/build.sh && printf "%s\\n" '
                            '"${INFERGW_RELEASE_ARGS[@]}"'],
                           cwd=SOURCE_DIR, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("-DCMAKE_BUILD_TYPE=Release", r.stdout.split())

    def test_one_package_list(self):
        """deploy/lib/packages.sh is the one list: its groups print, and the
        package CMake names for each missing dependency is in group build or
        test (so the script the message names installs it)."""
        lib = os.path.join(SOURCE_DIR, "deploy", "lib")

        def group(*names):
            r = subprocess.run([os.path.join(lib, "packages.sh")] + list(names),
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout.split()

        build, test = group("build"), group("test")
        self.assertIn("libmicrohttpd-dev", build)
        self.assertIn("libclang-rt-14-dev", test)
        r = subprocess.run([os.path.join(lib, "packages.sh"), "nosuchgroup"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        cml = read(os.path.join(SOURCE_DIR, "CMakeLists.txt"))
        table = re.findall(r'^\s+"([^|"]+)\|([^|"]+)\|[^"]+"', cml, re.M)
        self.assertGreaterEqual(len(table), 10, "INFERGW_PROVIDERS")
        for what, pkg in table:
            self.assertIn(pkg, build + group("run") + test, "%s: %s is in no group" % (what, pkg))
        for script in ("deploy/run-local.sh", "tests/run.sh", "deploy/lib/build.sh"):
            text = read(os.path.join(SOURCE_DIR, script))
            self.assertIn("infergw_ensure_groups", text, script)
            self.assertNotIn("infergw_ensure_packages", text, script + " lists packages itself")

    def test_runtime_stage(self):
        stages = dockerfile_stages(os.path.join(DOCKER, "Dockerfile"))
        rt_from, rt = stages[-1]
        self.assertRegex(rt_from, r"^FROM debian:12-slim\b")
        users = [i.split()[1] for i in rt if i.upper().startswith("USER ")]
        self.assertTrue(users, "no USER")
        uid = users[-1].split(":")[0]
        self.assertTrue(uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root id")
        expose = " ".join(i for i in rt if i.upper().startswith("EXPOSE "))
        self.assertIn("7100", expose)
        self.assertIn("7190", expose)
        hc = [i for i in rt if i.upper().startswith("HEALTHCHECK ")]
        self.assertTrue(hc and "/healthz" in hc[0], hc)
        self.assertFalse(any("build-essential" in i or "-dev" in i for i in rt),
                         "the runtime stage installs build packages")

    def test_runtime_packages_of_the_binaries(self):
        bins = [os.path.join(BIN_DIR, b) for b in ("infergw", "infergw-ctl", "infergw-replica")]
        r = subprocess.run([os.path.join(DOCKER, "runtime-packages.sh")] + bins,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        pkgs = r.stdout.split()
        print("runtime packages:", " ".join(pkgs))
        for p in ("libnghttp2-14", "libssl3", "libhiredis0.14", "libjansson4", "libmicrohttpd12",
                  "libprotobuf-c1"):
            self.assertIn(p, pkgs)
        self.assertFalse([p for p in pkgs if p.endswith("-dev")], pkgs)

    def test_healthcheck_script(self):
        import harness  # real gateway on loopback

        script = os.path.join(DOCKER, "healthcheck.sh")
        admin = harness.free_port()
        dead = harness.free_port()  # a replica nobody runs: not ready
        gw = harness.start_gateway({"demo": ["127.0.0.1:%d" % dead]},
                                   "--admin", "127.0.0.1:%d" % admin)
        try:
            def check(path, port):
                return subprocess.run([script, path, "127.0.0.1:%d" % port],
                                      capture_output=True, text=True, timeout=20)
            r = check("/healthz", admin)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            r = check("/readyz", admin)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("503", r.stdout)
        finally:
            gw.stop()
        r = subprocess.run([script, "/healthz", "127.0.0.1:%d" % admin],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 1, "a stopped gateway is not healthy")

    def test_compose(self):
        doc = yaml.safe_load(read(os.path.join(DOCKER, "compose.yaml")))
        services = doc["services"]

        def command(s):
            c = services[s].get("command")
            return c if isinstance(c, list) else (c or "").split()

        def by_program(prog):
            return sorted(s for s in services if command(s) and command(s)[0] == prog)

        gateways = by_program("infergw")
        replicas = by_program("infergw-replica")
        self.assertEqual(len(gateways), 2, gateways)
        self.assertEqual(len(replicas), 3, replicas)
        sentinels = [s for s in services if "redis-sentinel" in " ".join(command(s))]
        self.assertGreaterEqual(len(sentinels), 3, "Redis Sentinel")
        redis = [s for s in services if command(s) and command(s)[0] == "redis-server"]
        self.assertTrue(redis, "Redis")
        registrars = [s for s in services if "replica register" in " ".join(command(s))]
        self.assertEqual(len(registrars), 3, registrars)
        redis_url = doc["x-redis-url"]
        self.assertTrue(redis_url.startswith("sentinel://"), redis_url)
        admins = []
        for g in gateways:
            argv = command(g)
            admin = flag_value(argv, "--admin")
            self.assertTrue(admin and admin.startswith("0.0.0.0:"), "%s --admin %s" % (g, admin))
            admins.append("%s:%d" % (g, port_of(admin)))
            self.assertEqual(flag_value(argv, "--redis"), redis_url)
            grace_s = int(flag_value(argv, "--shutdown-grace-ms")) / 1000.0
            self.assertGreater(int(services[g]["stop_grace_period"].rstrip("s")), grace_s)
            self.assertEqual(services[g]["build"]["dockerfile"], "deploy/docker/Dockerfile")
        self.assertTrue(os.path.isfile(os.path.join(DOCKER, services[gateways[0]]["build"]["context"],
                                                    "deploy", "docker", "Dockerfile")))
        prom = [s for s in services if "prometheus" in str(services[s].get("image", ""))]
        self.assertEqual(len(prom), 1)
        conf = yaml.safe_load(read(os.path.join(DOCKER, "prometheus.yml")))
        targets = sorted(t for job in conf["scrape_configs"] for sc in job["static_configs"]
                         for t in sc["targets"])
        self.assertEqual(targets, sorted(admins))
        self.assertEqual([j["job_name"] for j in conf["scrape_configs"]], ["infergw"],
                         "deploy/prometheus/infergw-rules.yml selects job=\"infergw\"")

    def test_compose_prometheus_config(self):
        """Every file the compose file mounts exists; Prometheus' configuration,
        laid out as it is mounted in the container, passes promtool."""
        doc = yaml.safe_load(read(os.path.join(DOCKER, "compose.yaml")))
        mounts = {}
        for name, svc in doc["services"].items():
            for v in svc.get("volumes", []):
                src, _, rest = v.partition(":")
                if src.startswith("."):
                    path = os.path.normpath(os.path.join(DOCKER, src))
                    self.assertTrue(os.path.isfile(path), "%s mounts a missing %s" % (name, src))
                    if "prometheus" in str(svc.get("image", "")):
                        mounts[rest.split(":")[0]] = path
        self.assertIn("/etc/prometheus/prometheus.yml", mounts)
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool missing (Debian package prometheus, which "
                             "tests/run.sh installs)")
        with tempfile.TemporaryDirectory(prefix="infergw-prom-") as tmp:
            for target, src in mounts.items():
                self.assertTrue(target.startswith("/etc/prometheus/"), target)
                shutil.copy(src, os.path.join(tmp, os.path.basename(target)))
            r = subprocess.run([promtool, "check", "config", os.path.join(tmp, "prometheus.yml")],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("rule files found", r.stdout + r.stderr)


# --------------------------------------------------------------------------
# Kubernetes
# --------------------------------------------------------------------------

CLUSTER_SCOPED = {"Namespace"}


def k8s_objects():
    objs = []
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        for i, doc in enumerate(yaml.safe_load_all(read(path))):
            if doc is not None:
                objs.append((os.path.basename(path), i, doc))
    return objs


def find(objs, kind, name=None):
    hits = [o for _, _, o in objs if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)]
    return hits


def expand(value, env):
    """Kubernetes' $(VAR) expansion in command/args/env values."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def container_env(objs, c):
    """What $(VAR) can expand to in container <c>: envFrom ConfigMaps, then env
    (literal values, expanded in order; other sources as placeholders)."""
    env = {}
    for src in c.get("envFrom", []):
        if "configMapRef" in src:
            cms = find(objs, "ConfigMap", src["configMapRef"]["name"])
            if cms:
                env.update(cms[0].get("data", {}))
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = expand(e["value"], env)
        else:
            env[e["name"]] = "<%s>" % e["name"]
    return env


def probe_port(c, port):
    if isinstance(port, int):
        return port
    for p in c.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    raise AssertionError("no container port named %r" % port)


def prestop_seconds(c):
    cmd = c["lifecycle"]["preStop"]
    if "sleep" in cmd:
        return int(cmd["sleep"]["seconds"])
    argv = cmd["exec"]["command"]
    return int(argv[1]) if argv[0] in ("sleep", "/bin/sleep") else 0


class Kubernetes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objs = k8s_objects()

    def gateway(self):
        deps = [o for o in find(self.objs, "Deployment")
                if any(c.get("command", [None])[0] == "infergw"
                       for c in o["spec"]["template"]["spec"]["containers"])]
        self.assertEqual(len(deps), 1, "one gateway Deployment")
        d = deps[0]
        c = [c for c in d["spec"]["template"]["spec"]["containers"] if c["command"][0] == "infergw"][0]
        return d, c

    def test_every_object_has_apiversion_kind_name(self):
        self.assertGreater(len(self.objs), 5)
        for f, i, o in self.objs:
            where = "%s document %d" % (f, i + 1)
            self.assertIsInstance(o, dict, where)
            self.assertTrue(o.get("apiVersion"), where + ": apiVersion")
            self.assertTrue(o.get("kind"), where + ": kind")
            self.assertTrue(o.get("metadata", {}).get("name"), where + ": metadata.name")
            if o["kind"] not in CLUSTER_SCOPED:
                self.assertEqual(o["metadata"].get("namespace"), "infergw", where)
        kinds = {o["kind"] for _, _, o in self.objs}
        for k in ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
                  "ConfigMap", "Secret", "StatefulSet"):
            self.assertIn(k, kinds)

    def test_gateway_deployment(self):
        d, c = self.gateway()
        spec = d["spec"]
        pod = spec["template"]["spec"]
        self.assertGreaterEqual(spec["replicas"], 2)
        env = container_env(self.objs, c)
        args = [expand(a, env) for a in c["args"]]
        admin = flag_value(args, "--admin")
        self.assertIsNotNone(admin, args)
        self.assertNotRegex(admin, r"^(127\.|localhost)", "probes come from outside the pod")
        admin_port = port_of(admin)
        grace_ms = int(flag_value(args, "--shutdown-grace-ms"))
        for a in args:
            self.assertNotIn("$(", a, "unresolved variable in " + a)
        self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/readyz")
        self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")
        for probe in ("readinessProbe", "livenessProbe"):
            self.assertEqual(probe_port(c, c[probe]["httpGet"]["port"]), admin_port, probe)
        listen_port = port_of(flag_value(args, "--listen"))
        self.assertIn(listen_port, [p["containerPort"] for p in c["ports"]])
        for kind in ("requests", "limits"):
            for res in ("cpu", "memory"):
                self.assertIn(res, c["resources"][kind], "resources.%s.%s" % (kind, res))
        pre = prestop_seconds(c)
        self.assertGreater(pre, 0, "preStop")
        tgps = pod["terminationGracePeriodSeconds"]
        self.assertGreaterEqual(tgps, grace_ms / 1000.0 + pre,
                                "terminationGracePeriodSeconds < preStop + --shutdown-grace-ms")
        sc = c["securityContext"]
        psc = pod.get("securityContext", {})
        self.assertTrue(sc.get("runAsNonRoot") or psc.get("runAsNonRoot"))
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        print("gateway: replicas %d, admin port %d, grace %d ms, preStop %d s, "
              "terminationGracePeriodSeconds %d" % (spec["replicas"], admin_port, grace_ms, pre, tgps))

    def test_pdb_hpa_service_target_the_gateway(self):
        d, _ = self.gateway()
        labels = d["spec"]["template"]["metadata"]["labels"]

        def selects(sel):
            return bool(sel) and all(labels.get(k) == v for k, v in sel.items())

        self.assertTrue(selects(d["spec"]["selector"]["matchLabels"]))
        pdbs = [p for p in find(self.objs, "PodDisruptionBudget")
                if selects(p["spec"]["selector"]["matchLabels"])]
        self.assertEqual(len(pdbs), 1, "a PodDisruptionBudget for the gateway")
        hpas = [h for h in find(self.objs, "HorizontalPodAutoscaler")
                if h["spec"]["scaleTargetRef"]["kind"] == "Deployment"
                and h["spec"]["scaleTargetRef"]["name"] == d["metadata"]["name"]]
        self.assertEqual(len(hpas), 1, "an HPA for the gateway")
        self.assertGreaterEqual(hpas[0]["spec"]["minReplicas"], 2)
        svcs = [s for s in find(self.objs, "Service") if selects(s["spec"].get("selector"))]
        self.assertTrue(svcs, "a Service for the gateway")

    def test_replica_deployment_has_the_registrar(self):
        found = 0
        for d in find(self.objs, "Deployment"):
            for c in d["spec"]["template"]["spec"]["containers"]:
                argv = c.get("command", []) + c.get("args", [])
                if argv[:3] == ["infergw-ctl", "replica", "register"]:
                    found += 1
                    self.assertEqual(len(argv), 7, argv)  # <pool> <host:port> --ttl S
                    self.assertEqual(argv[5], "--ttl")
                    self.assertTrue(argv[6].isdigit())
                    env = container_env(self.objs, c)
                    self.assertIn("INFERGW_REDIS", env)
                    self.assertRegex(expand(argv[4], env), r"^<POD_IP>:\d+$")
        self.assertGreaterEqual(found, 1, "no registrar sidecar")

    def test_references_exist(self):
        defined = {(o["kind"], o["metadata"]["name"]) for _, _, o in self.objs}

        def walk(x):
            if isinstance(x, dict):
                for k, v in x.items():
                    if k in ("configMapRef", "configMapKeyRef"):
                        yield ("ConfigMap", v["name"])
                    elif k in ("secretRef", "secretKeyRef"):
                        yield ("Secret", v["name"])
                    elif k == "secret" and "secretName" in v:
                        yield ("Secret", v["secretName"])
                    elif k == "configMap" and isinstance(v, dict) and "name" in v:
                        yield ("ConfigMap", v["name"])
                    yield from walk(v)
            elif isinstance(x, list):
                for v in x:
                    yield from walk(v)

        for _, _, o in self.objs:
            for ref in walk(o.get("spec", {})):
                self.assertIn(ref, defined, "%s %s refers to a missing %s" %
                              (o["kind"], o["metadata"]["name"], ref))

    def test_backup_cronjob(self):
        jobs = find(self.objs, "CronJob")
        self.assertEqual(len(jobs), 1, "one backup CronJob")
        job = jobs[0]
        self.assertEqual(len(job["spec"]["schedule"].split()), 5, job["spec"]["schedule"])
        self.assertEqual(job["spec"]["concurrencyPolicy"], "Forbid")
        pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        self.assertEqual(len(pod["containers"]), 1)
        c = pod["containers"][0]
        self.assertEqual(c["command"], ["infergw-backup"])
        env = container_env(self.objs, c)
        self.assertIn("INFERGW_REDIS", env)
        self.assertGreaterEqual(int(env["INFERGW_BACKUP_KEEP"]), 1)
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in pod["volumes"]}
        dirs = [n for n, p in mounts.items() if p == env["INFERGW_BACKUP_DIR"]]
        self.assertEqual(len(dirs), 1, "INFERGW_BACKUP_DIR is not a mounted volume")
        claim = vols[dirs[0]]["persistentVolumeClaim"]["claimName"]
        self.assertEqual(len(find(self.objs, "PersistentVolumeClaim", claim)), 1,
                         "no PersistentVolumeClaim %s" % claim)
        self.assertTrue(c["securityContext"]["readOnlyRootFilesystem"])
        # The image has the script under that name.
        self.assertRegex(read(os.path.join(DOCKER, "Dockerfile")),
                         r"(?m)^COPY deploy/backup\.sh /usr/local/bin/infergw-backup$")

    def test_redis_configure_script_is_valid_sh(self):
        cm = find(self.objs, "ConfigMap", "redis-sentinel-scripts")
        self.assertEqual(len(cm), 1)
        with tempfile.NamedTemporaryFile("w", suffix=".sh") as f:
            f.write(cm[0]["data"]["configure.sh"])
            f.flush()
            r = subprocess.run(["sh", "-n", f.name], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
