/* SPDX-License-Identifier: Apache-2.0 */
'use strict';
// Node @grpc/grpc-js client through the gateway: ModelInfer 2x+1 (typed and
// raw), a 5-response ModelStreamInfer, a deadline, NOT_FOUND for an unknown
// model, route-key stickiness; token streams that go on uninterrupted across
// a kill -9 of their replica (--stream-resume replay, docs/stream-resume.md). Starts 4 replicas (one slow) and a gateway on
// free loopback ports, stops them at the end and checks their exit status and
// captured output (sanitizer reports fail the run).
//
// Environment: INFERGW_BIN (binaries), INFERGW_SOURCE_DIR (repo, for proto/),
// INFERGW_WORK_DIR (log files).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const fs = require('node:fs');
const net = require('node:net');
const { spawn } = require('node:child_process');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const SOURCE_DIR = process.env.INFERGW_SOURCE_DIR || path.resolve(__dirname, '..', '..', '..');
const BIN_DIR = process.env.INFERGW_BIN || path.join(SOURCE_DIR, 'build', 'bin');
const WORK_DIR = process.env.INFERGW_WORK_DIR ||
  path.join(SOURCE_DIR, 'build', 'tests', 'integration', 'work');
const SANITIZER_MARKERS = ['ERROR: AddressSanitizer', 'runtime error:', 'LeakSanitizer'];

fs.mkdirSync(WORK_DIR, { recursive: true });

const pkgDef = protoLoader.loadSync(path.join(SOURCE_DIR, 'proto', 'grpc_predict_v2.proto'), {
  keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true,
});
const inference = grpc.loadPackageDefinition(pkgDef).inference;

// ---- processes --------------------------------------------------------------

const usedPorts = new Set();

function portFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

async function freePort() {
  for (let i = 0; i < 500; i++) {
    const port = 20000 + Math.floor(Math.random() * 12001);
    if (!usedPorts.has(port) && await portFree(port)) {
      usedPorts.add(port);
      return port;
    }
  }
  throw new Error('no free port in 20000-32000');
}

function portAccepts(port) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const procs = [];

class Proc {
  constructor(name, argv, port) {
    this.name = name;
    this.port = port;
    this.addr = `127.0.0.1:${port}`;
    this.logPath = path.join(WORK_DIR, `node-${process.pid}-${procs.length}-${name}.log`);
    const fd = fs.openSync(this.logPath, 'w');
    fs.writeSync(fd, `# ${argv.join(' ')}\n`);
    this.child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    this.exit = new Promise((resolve) => this.child.once('exit', (code, sig) => resolve({ code, sig })));
    this.exited = false;
    this.exit.then(() => { this.exited = true; });
    procs.push(this);
  }

  log() { return fs.readFileSync(this.logPath, 'utf8'); }

  events(kind) {
    const out = [];
    for (const line of this.log().split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const ev = JSON.parse(line);
        if (!kind || ev.event === kind) out.push(ev);
      } catch (e) { /* not a JSON line */ }
    }
    return out;
  }

  async ready(timeoutMs = 15000) {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (this.exited) throw new Error(`${this.name} exited before listening:\n${this.log()}`);
      if (this.events('listening').length > 0 && await portAccepts(this.port)) return this;
      await sleep(20);
    }
    throw new Error(`${this.name} not listening on ${this.addr}:\n${this.log()}`);
  }

  async stop(timeoutMs = 20000) {
    if (!this.exited) this.child.kill('SIGTERM');
    let timer;
    const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve('timeout'), timeoutMs); });
    const res = await Promise.race([this.exit, timeout]);
    clearTimeout(timer);
    if (res === 'timeout') {
      this.child.kill('SIGKILL');
      throw new Error(`${this.name} did not exit within ${timeoutMs} ms`);
    }
    const text = this.log();
    for (const m of SANITIZER_MARKERS) {
      assert.ok(!text.includes(m), `${this.name}: sanitizer report in ${this.logPath}`);
    }
    assert.equal(res.code, 0, `${this.name} exit ${JSON.stringify(res)}:\n${text.slice(-3000)}`);
  }
}

process.on('exit', () => { for (const p of procs) if (!p.exited) p.child.kill('SIGKILL'); });

async function startReplica(id, ...args) {
  const port = await freePort();
  const bin = path.join(BIN_DIR, 'infergw-replica');
  return new Proc(`replica-${id}`, [bin, '--listen', `127.0.0.1:${port}`, '--id', id, ...args], port)
    .ready();
}

async function startGateway(pools, ...extra) {
  const port = await freePort();
  const argv = [path.join(BIN_DIR, 'infergw'), '--listen', `127.0.0.1:${port}`, '--auth=none',
    '--workers', '2', '--shutdown-grace-ms', '5000', ...extra];
  for (const [name, addrs] of Object.entries(pools)) argv.push('--pool', `${name}=${addrs.join(',')}`);
  return new Proc('gateway', argv, port).ready();
}

// ---- client helpers ---------------------------------------------------------

const values = (n, base = 0) => Array.from({ length: n }, (_, i) => ((i + base) % 4096) * 0.5 - 512);
const expected = (vals) => vals.map((v) => 2 * v + 1);

function typedRequest(vals, extra = {}) {
  return {
    model_name: 'demo', id: 'node',
    inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [vals.length],
      contents: { fp32_contents: vals } }],
    ...extra,
  };
}

function infer(client, req, { metadata = {}, deadlineMs = 10000 } = {}) {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise((resolve) => {
    let initial = null;
    const call = client.ModelInfer(req, md, { deadline: Date.now() + deadlineMs },
      (err, resp) => resolve({ err, resp, initial }));
    call.on('metadata', (m) => { initial = m; });
  });
}

const replicaOf = (md) => (md && md.get('x-replica-id').length ? md.get('x-replica-id')[0] : null);

// ---- tests ------------------------------------------------------------------

describe('infergw through @grpc/grpc-js', () => {
  let replicas = [];
  let slow;
  let gw;
  let client;
  const ids = new Set(['node-r0', 'node-r1', 'node-r2']);

  before(async () => {
    for (const id of ids) replicas.push(await startReplica(id));
    slow = await startReplica('node-slow', '--latency-ms', '500');
    const addrs = replicas.map((r) => r.addr);
    gw = await startGateway({ demo: addrs, default: addrs, slow: [slow.addr] });
    client = new inference.GRPCInferenceService(gw.addr, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1,
    });
  });

  after(async () => {
    if (client) client.close();
    const errors = [];
    for (const p of [gw, slow, ...replicas]) {
      if (!p) continue;
      try { await p.stop(); } catch (e) { errors.push(e.message); }
    }
    assert.deepEqual(errors, []);
  });

  it('ModelInfer returns 2x+1 for typed input', async () => {
    const vals = values(12);
    const { err, resp, initial } = await infer(client, typedRequest(vals));
    assert.equal(err, null);
    assert.ok(ids.has(replicaOf(initial)), `x-replica-id ${replicaOf(initial)}`);
    assert.equal(resp.outputs.length, 1);
    assert.equal(resp.outputs[0].name, 'OUTPUT0');
    assert.deepEqual(resp.outputs[0].shape, [12]);
    assert.deepEqual(resp.outputs[0].contents.fp32_contents, expected(vals));
  });

  it('ModelInfer returns 2x+1 for raw input', async () => {
    const vals = values(256);
    const raw = Buffer.alloc(vals.length * 4);
    vals.forEach((v, i) => raw.writeFloatLE(v, i * 4));
    const req = { model_name: 'demo', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [256] }],
      raw_input_contents: [raw] };
    const { err, resp } = await infer(client, req);
    assert.equal(err, null);
    const out = resp.raw_output_contents[0];
    assert.equal(out.length, raw.length);
    expected(vals).forEach((v, i) => assert.equal(out.readFloatLE(i * 4), v));
  });

  it('ModelStreamInfer with stream_responses=5 yields 5 responses', async () => {
    const vals = values(8);
    const call = client.ModelStreamInfer({ deadline: Date.now() + 10000 });
    const got = [];
    let initial = null;
    call.on('metadata', (m) => { initial = m; });
    const done = new Promise((resolve, reject) => {
      call.on('data', (r) => got.push(r));
      call.on('error', reject);
      call.on('end', resolve);
    });
    call.write(typedRequest(vals, { id: 'five', parameters: { stream_responses: { int64_param: 5 } } }));
    call.end();
    await done;
    assert.equal(got.length, 5);
    assert.ok(ids.has(replicaOf(initial)));
    for (const r of got) {
      assert.equal(r.error_message, '');
      assert.equal(r.infer_response.id, 'five');
      assert.deepEqual(r.infer_response.outputs[0].contents.fp32_contents, expected(vals));
    }
  });

  it('a 50 ms deadline against a 500 ms replica ends in DEADLINE_EXCEEDED', async () => {
    const before = slow.events('cancelled').length;
    const t0 = Date.now();
    const { err } = await infer(client, typedRequest(values(4)),
      { metadata: { 'x-model': 'slow' }, deadlineMs: 50 });
    const took = Date.now() - t0;
    assert.ok(err, 'expected an error');
    assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
    assert.ok(took >= 45 && took <= 200, `took ${took} ms`);
    const end = Date.now() + 3000;
    while (slow.events('cancelled').length <= before && Date.now() < end) await sleep(20);
    assert.equal(slow.events('cancelled').length, before + 1, 'the replica logs the cancellation');
  });

  it('an unknown model gets NOT_FOUND', async () => {
    let r = await infer(client, typedRequest(values(4), { model_name: 'no-such-model' }));
    assert.equal(r.err && r.err.code, grpc.status.NOT_FOUND);
    r = await infer(client, typedRequest(values(4)), { metadata: { 'x-model': 'no-such-model' } });
    assert.equal(r.err && r.err.code, grpc.status.NOT_FOUND);
  });

  it('the same x-route-key lands on the same replica', async () => {
    const seen = new Map();
    for (let i = 0; i < 50; i++) {
      const { err, initial } = await infer(client, typedRequest(values(4)),
        { metadata: { 'x-route-key': 'node-key' } });
      assert.equal(err, null);
      const id = replicaOf(initial);
      seen.set(id, (seen.get(id) || 0) + 1);
    }
    assert.equal(seen.size, 1, JSON.stringify([...seen]));
    const owners = new Set();
    for (let k = 0; k < 30; k++) {
      const { initial } = await infer(client, typedRequest(values(4)),
        { metadata: { 'x-route-key': `node-user-${k}` } });
      owners.add(replicaOf(initial));
    }
    assert.deepEqual([...owners].sort(), [...ids].sort(), 'different keys spread over replicas');
  });
});

describe('stream resume seen from @grpc/grpc-js', () => {
  const replicas = [];
  let gw;
  let client;
  const N_STREAMS = 6;
  const N_MSGS = 200;

  before(async () => {
    for (const id of ['tok-r0', 'tok-r1', 'tok-r2']) {
      replicas.push(await startReplica(id, '--token-model', 'llm', '--token-ms', '10'));
    }
    gw = await startGateway({ llm: replicas.map((r) => r.addr) }, '--stream-resume', 'replay',
      '--admin', 'off');
    client = new inference.GRPCInferenceService(gw.addr, grpc.credentials.createInsecure());
  });

  after(async () => {
    if (client) client.close();
    const errors = [];
    for (const p of [gw, ...replicas]) {
      if (!p || p.killed) continue;
      try { await p.stop(); } catch (e) { errors.push(e.message); }
    }
    assert.deepEqual(errors, []);
  });

  const tokenRequest = (i) => ({
    model_name: 'llm', id: `node-s${i}`,
    inputs: [{ name: 'PROMPT', datatype: 'BYTES', shape: [1],
      contents: { bytes_contents: [Buffer.from(`node stream ${i}`)] } }],
    parameters: { seed: { int64_param: 500 + i }, max_tokens: { int64_param: N_MSGS } },
  });

  // One ModelStreamInfer call of <req> on <cl>: its messages (JSON text of
  // each), the replica of its headers and how it ended; onMessage(count).
  function tokenStream(cl, req, onMessage = () => {}) {
    const call = cl.ModelStreamInfer({ deadline: Date.now() + 30000 });
    const st = { msgs: [], replica: null, err: null };
    call.on('metadata', (m) => { st.replica = replicaOf(m); });
    st.done = new Promise((resolve) => {
      call.on('data', (r) => { st.msgs.push(JSON.stringify(r)); onMessage(st.msgs.length); });
      call.on('error', (e) => { st.err = e; resolve(st); });
      call.on('end', () => resolve(st));
    });
    call.write(req);
    call.end();
    return st;
  }

  it('token streams go on uninterrupted across a kill -9 of their replica', async () => {
    // The unfaulted sequences, straight from a replica.
    const direct = new inference.GRPCInferenceService(replicas[1].addr,
      grpc.credentials.createInsecure());
    const want = await Promise.all(Array.from({ length: N_STREAMS },
      (_, i) => tokenStream(direct, tokenRequest(i)).done));
    direct.close();
    for (const w of want) assert.equal(w.err, null);

    const counts = new Array(N_STREAMS).fill(0);
    const streams = [];
    for (let i = 0; i < N_STREAMS; i++) {
      streams.push(tokenStream(client, tokenRequest(i), (n) => { counts[i] = n; }));
    }
    const end = Date.now() + 15000;
    while (Math.min(...counts) < 40 && Date.now() < end) await sleep(5);
    assert.ok(Math.min(...counts) >= 40 && Math.max(...counts) < N_MSGS,
      `not all streams mid-way: ${counts}`);
    const at = [...counts];
    const victimId = streams[0].replica;
    const victim = replicas.find((r) => r.name === `replica-${victimId}`);
    assert.ok(victim, `x-replica-id ${victimId}`);
    victim.child.kill('SIGKILL');
    victim.killed = true;
    await victim.exit;

    const got = await Promise.all(streams.map((s) => s.done));
    let moved = 0;
    got.forEach((g, i) => {
      assert.equal(g.err, null, `stream ${i}: ${g.err && g.err.message}`);
      assert.equal(g.msgs.length, N_MSGS, `stream ${i}`);
      assert.deepEqual(g.msgs, want[i].msgs, `stream ${i} differs from the unfaulted run`);
      if (g.replica === victimId) moved++;
    });
    assert.ok(moved >= 1);
    console.log(`stream resume: ${moved} of ${N_STREAMS} streams on ${victimId} (killed at ` +
      `${Math.min(...at)}..${Math.max(...at)} messages) ended whole`);
  });
});
