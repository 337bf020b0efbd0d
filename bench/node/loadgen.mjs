// The benchmark's second load client: one Node.js process using the `ws` package.
//
//   node bench/node/loadgen.mjs --spec spec.json [--out result.json]
//
// The spec is the one bench/run.py writes for the Python load generator (`kind`
// connects, roundtrips or fanout; `urls`, `sender_urls`, `warm_urls`, `params`); the
// result has the same keys as the Python one. Server CPU and memory are read by the
// Python driver (`python -m bench.node`) with the same probe as the Python client:
// with BENCH_NODE_PROBE=stdio this process asks for them over stdin/stdout, one JSON
// object a line; run by hand, those figures are left out.
import { readFileSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import WebSocket from "ws";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);
// "LGT" + 20-digit wall-clock ns, as the Python client writes it (bench/README.md).
const MARK = Buffer.from("LGT");
const WELCOME = Buffer.from("session.welcome");
const PING = Buffer.from('"ping"');
const RATE_LIMITED = Buffer.from("RATE_LIMITED");
// Log-bucketed latencies at 1 %, the buckets of bench/loadgen/hist.py.
const BASE = 1.01;
const LOG_BASE = Math.log(BASE);

// Clients must mask; a zero key leaves the payload as is (ws then skips the XOR), as
// the Python client does. No compression is offered, as there.
const zeroMask = (mask) => mask.fill(0);

const nowNs = () => (performance.timeOrigin + performance.now()) * 1e6;
const stamp = () => `LGT${String(Math.round(nowNs())).padStart(20, "0")}`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (msg) =>
  process.stderr.write(`  [node ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ------------------------------------------------------------------ statistics
class Stats {
  constructor() {
    this.reset();
  }

  reset() {
    this.hist = new Map();
    this.count = 0;
    this.rateLimited = 0;
    this.firstNs = 0;
    this.lastNs = 0;
  }

  // One delivery or round trip whose stamp (ns) was read at `now` (ns).
  add(sentNs, now) {
    const us = Math.max((now - sentNs) / 1000, 1);
    const k = Math.floor(Math.log(us) / LOG_BASE);
    this.hist.set(k, (this.hist.get(k) || 0) + 1);
    this.count += 1;
    this.lastNs = now;
    if (!this.firstNs) this.firstNs = now;
  }

  percentile(q) {
    const total = this.hist.size ? [...this.hist.values()].reduce((a, b) => a + b) : 0;
    if (!total) return null;
    const rank = Math.max(1, Math.ceil((total * q) / 100));
    let seen = 0;
    for (const k of [...this.hist.keys()].sort((a, b) => a - b)) {
      seen += this.hist.get(k);
      if (seen >= rank) return Math.round(BASE ** (k + 0.5)) / 1000;
    }
    return null;
  }

  summary() {
    let samples = 0;
    for (const c of this.hist.values()) samples += c;
    return {
      samples,
      p50_ms: this.percentile(50),
      p99_ms: this.percentile(99),
      max_ms: this.percentile(100),
    };
  }
}

// numpy.percentile's default (linear between closest ranks), as W2 reports.
function linearPercentile(values, q) {
  if (!values.length) return 0;
  const v = Float64Array.from(values).sort();
  const pos = (q / 100) * (v.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, v.length - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

const round = (x, digits) => Math.round(x * 10 ** digits) / 10 ** digits;

// ------------------------------------------------------------------ the driver's probe
class Probe {
  constructor(enabled) {
    this.enabled = enabled;
    this.waiting = new Map();
    this.nextId = 0;
    if (enabled) {
      const rl = createInterface({ input: process.stdin });
      rl.on("line", (line) => {
        const msg = JSON.parse(line);
        const resolve = this.waiting.get(msg.id);
        this.waiting.delete(msg.id);
        if (resolve) resolve(msg.value);
      });
    }
  }

  ask(op) {
    if (!this.enabled) return Promise.resolve(null);
    return new Promise((resolve) => {
      const id = ++this.nextId;
      this.waiting.set(id, resolve);
      process.stdout.write(`${JSON.stringify({ op, id })}\n`);
    });
  }

  async rssMb() {
    return this.ask("rss");
  }

  async phaseStart() {
    await this.ask("phase_start");
  }

  // {server_cpu_pct, loadgen_cpu_pct, other_cpu_pct, core_busy_pct}, or {} by hand.
  async phaseStop() {
    return (await this.ask("phase_stop")) || {};
  }

  send(result) {
    if (this.enabled) process.stdout.write(`${JSON.stringify({ op: "result", value: result })}\n`);
  }
}

// ------------------------------------------------------------------ clients
const state = { lastRx: 0 };

function checkUrl(url) {
  const u = new URL(url);
  if (u.protocol !== "ws:" || !LOOPBACK.has(u.hostname)) {
    throw new Error(`only ws:// loopback URLs may be targeted, got ${url}`);
  }
  return u;
}

// Answer a server `ping` envelope (§4 heartbeat) and count RATE_LIMITED errors.
function onOther(client, data) {
  if (data.indexOf(RATE_LIMITED) >= 0) {
    client.stats.rateLimited += 1;
    if (client.onRateLimited) client.onRateLimited(data);
    return;
  }
  const i = data.indexOf(PING);
  if (i < 0 || i > 40) return;
  let msg;
  try {
    msg = JSON.parse(data.toString());
  } catch {
    return;
  }
  if (msg.type === "ping") {
    client.ws.send(JSON.stringify({ type: "pong", payload: msg.payload || {} }));
  }
}

// Open a socket; resolves with the client once its first frame, the session.welcome,
// arrived (every later frame goes to client.onMessage).
function open(url, client, timeoutMs) {
  const u = checkUrl(url);
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      generateMask: zeroMask,
      handshakeTimeout: timeoutMs,
      origin: `http://${u.host}`,
    });
    client.ws = ws;
    let welcomed = false;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no session.welcome within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.on("error", (err) => {
      clearTimeout(timer);
      if (!welcomed) reject(err);
    });
    ws.on("close", (code) => {
      clearTimeout(timer);
      client.closed = true;
      if (!welcomed) reject(new Error(`closed ${code} before session.welcome`));
      if (client.onClose) client.onClose();
    });
    ws.on("message", (data) => {
      state.lastRx = nowNs();
      if (welcomed) {
        client.onMessage(data);
        return;
      }
      clearTimeout(timer);
      if (data.indexOf(WELCOME) < 0) {
        ws.terminate();
        reject(new Error(`first frame is not session.welcome: ${data.toString().slice(0, 160)}`));
        return;
      }
      welcomed = true;
      resolve(client);
    });
  });
}

// A room member: counts every marked chat.message and its end-to-end latency.
class Receiver {
  constructor(stats) {
    this.stats = stats;
    this.count = 0;
    this.closed = false;
  }

  onMessage(data) {
    const j = data.indexOf(MARK);
    if (j < 0) {
      onOther(this, data);
      return;
    }
    let sent = 0;
    for (let k = j + 3; k < j + 23; k++) sent = sent * 10 + (data[k] - 48);
    this.count += 1;
    this.stats.add(sent, state.lastRx);
  }
}

// One of the room's senders: its tag marks its own messages, whose echoes close its
// window; every other frame is ignored (it is not a receiver).
class Sender {
  constructor(stats, tag) {
    this.stats = stats;
    this.tag = Buffer.from(tag);
    this.tagText = tag;
    this.sent = 0;
    this.echoed = 0;
    this.wake = null;
    this.closed = false;
  }

  send(pad) {
    this.sent += 1;
    const mark = stamp();
    this.ws.send(
      `{"type":"chat.send","payload":{"content":"${mark}:${this.sent}${this.tagText}${pad}","client_id":"${mark}"}}`,
    );
  }

  onMessage(data) {
    if (data.indexOf(this.tag) >= 0) {
      this.echoed += 1;
      if (this.wake) this.wake();
    } else if (data.indexOf(MARK) < 0) {
      onOther(this, data);
    }
  }

  onClose() {
    if (this.wake) this.wake();
  }
}

// A closed-loop client: ping with a stamped payload, wait for its pong, repeat.
class Pinger {
  constructor(stats) {
    this.stats = stats;
    this.count = 0;
    this.deadline = 0;
    this.done = null;
    this.closed = false;
  }

  start(deadlineMs) {
    this.deadline = deadlineMs;
    return new Promise((resolve) => {
      this.done = resolve;
      this.ping();
    });
  }

  ping() {
    this.ws.send(`{"type":"ping","payload":{"m":"${stamp()}","n":${this.count}}}`);
  }

  finish() {
    if (this.done) {
      this.done(this.count);
      this.done = null;
    }
  }

  onMessage(data) {
    const j = data.indexOf(MARK);
    if (j < 0) {
      onOther(this, data);
      return;
    }
    let sent = 0;
    for (let k = j + 3; k < j + 23; k++) sent = sent * 10 + (data[k] - 48);
    this.count += 1;
    this.stats.add(sent, state.lastRx);
    if (performance.now() < this.deadline) this.ping();
    else this.finish();
  }

  // Throttled: ping again after retry_after, within the deadline.
  onRateLimited(data) {
    let wait = 0.1;
    try {
      wait = Number(JSON.parse(data.toString()).payload.retry_after) || 0.1;
    } catch {
      // keep the default
    }
    if (performance.now() + wait * 1000 < this.deadline) setTimeout(() => this.ping(), wait * 1000);
    else this.finish();
  }

  onClose() {
    this.finish();
  }
}

// Connect one client per URL, `concurrency` handshakes in flight, within limitS.
async function connectAll(urls, make, concurrency, limitS, timeoutS = 30) {
  const clients = [];
  const times = [];
  const errors = [];
  let next = 0;
  let stopped = false;
  const lane = async () => {
    while (!stopped && next < urls.length) {
      const url = urls[next++];
      const t0 = performance.now();
      try {
        clients.push(await open(url, make(), timeoutS * 1000));
        times.push(performance.now() - t0);
      } catch (err) {
        errors.push(String(err.message || err).slice(0, 200));
      }
    }
  };
  const lanes = Array.from({ length: Math.max(1, concurrency) }, lane);
  let timer;
  const limit = new Promise((resolve) => {
    timer = setTimeout(resolve, limitS * 1000);
  });
  await Promise.race([Promise.all(lanes), limit]);
  clearTimeout(timer);
  stopped = true;
  const missing = urls.length - times.length - errors.length;
  for (let i = 0; i < missing; i++) errors.push(`not connected within ${limitS} s`);
  return { clients, times, failed: errors.length, errors: errors.slice(0, 5) };
}

async function closeAll(clients) {
  for (const c of clients) if (c.ws) c.ws.close(1000);
  await sleep(200);
}

// Wait until nothing arrived for idleS (at most limitS).
async function quiesce(idleS = 0.5, limitS = 30) {
  const t0 = performance.now();
  while (performance.now() - t0 < limitS * 1000) {
    if (nowNs() - state.lastRx >= idleS * 1e9) break;
    await sleep((idleS * 1000) / 5);
  }
}

// ------------------------------------------------------------------ workloads
// A few sockets opened and closed first (imports, caches), then a pause.
async function warmUp(spec, stats, conc, settleMs) {
  const warm = await connectAll(spec.warm_urls || [], () => new Receiver(stats), conc, 60);
  await closeAll(warm.clients);
  await sleep(settleMs);
}

// The server's RSS before and after, and per socket held (nothing if unread).
function rssFigures(rss0, rss1, sockets) {
  if (rss0 === null || rss1 === null) return {};
  return {
    rss_before_mb: rss0,
    rss_after_mb: rss1,
    rss_per_conn_kb: round(((rss1 - rss0) * 1024) / sockets, 1),
  };
}

async function connects(spec, probe) {
  const p = spec.params;
  const conc = p.concurrency || 100;
  const limit = p.connect_limit_s || 120;
  const settle = (p.settle_s || 1) * 1000;
  const stats = new Stats();
  await warmUp(spec, stats, conc, settle);
  const rss0 = await probe.rssMb();
  log(`connects: ${spec.urls.length} sockets`);
  const t0 = performance.now();
  await probe.phaseStart();
  const c = await connectAll(spec.urls, () => new Receiver(stats), conc, limit);
  const dt = (performance.now() - t0) / 1000;
  const cpu = await probe.phaseStop();
  await sleep(settle);
  const rss1 = await probe.rssMb();
  const ok = Math.max(1, c.times.length);
  await closeAll(c.clients);
  const out = {
    n: spec.urls.length,
    connected: c.times.length,
    failed: c.failed,
    errors: c.errors,
    seconds: round(dt, 2),
    conn_per_s: round(c.times.length / dt, 1),
    connect_p50_ms: round(linearPercentile(c.times, 50), 2),
    connect_p99_ms: round(linearPercentile(c.times, 99), 2),
    ...cpu,
  };
  if (cpu.server_cpu_pct !== undefined) {
    out.server_cpu_ms_per_conn = round((10 * cpu.server_cpu_pct * dt) / ok, 3);
  }
  return Object.assign(out, rssFigures(rss0, rss1, ok));
}

// Idle sockets (N5): connect and join, then hold still for idle_s answering the
// server's pings; the server's CPU over that time and its RSS per socket.
async function idle(spec, probe) {
  const p = spec.params;
  const conc = p.concurrency || 100;
  const settle = (p.settle_s || 1) * 1000;
  const stats = new Stats();
  await warmUp(spec, stats, conc, settle);
  const rss0 = await probe.rssMb();
  log(`idle: connecting ${spec.urls.length}`);
  const c = await connectAll(spec.urls, () => new Receiver(stats), conc, p.connect_limit_s || 120);
  await quiesce();
  await sleep(settle);
  log(`idle: ${c.clients.length} sockets for ${p.idle_s} s`);
  await probe.phaseStart();
  await sleep(p.idle_s * 1000);
  const cpu = await probe.phaseStop();
  const rss1 = await probe.rssMb();
  const closed = c.clients.filter((x) => x.closed).length;
  await closeAll(c.clients);
  const held = Math.max(1, c.clients.length);
  const out = {
    n: spec.urls.length,
    connected: c.clients.length,
    failed: c.failed,
    errors: c.errors,
    idle_s: p.idle_s,
    closed_while_idle: closed,
    ...cpu,
  };
  if (cpu.server_cpu_pct !== undefined) {
    out.idle_cpu_pct = cpu.server_cpu_pct;
    out.idle_cpu_pct_per_10k = round((cpu.server_cpu_pct * 10000) / held, 2);
  }
  return Object.assign(out, rssFigures(rss0, rss1, held));
}

async function roundtrips(spec, probe) {
  const p = spec.params;
  const stats = new Stats();
  const c = await connectAll(spec.urls, () => new Pinger(stats), p.concurrency || 50, 120);
  await quiesce();
  stats.reset();
  log(`roundtrips: ${c.clients.length} clients for ${p.duration_s} s`);
  await probe.phaseStart();
  const t0 = nowNs();
  const deadline = performance.now() + p.duration_s * 1000;
  const runs = c.clients.map((x) => x.start(deadline));
  await Promise.race([Promise.all(runs), sleep((p.duration_s + 10) * 1000)]);
  const t1 = nowNs();
  const cpu = await probe.phaseStop();
  await closeAll(c.clients);
  return {
    clients: c.clients.length,
    connect_failed: c.failed,
    round_trips: stats.count,
    rtt_per_s: round(stats.count / Math.max(1e-9, (t1 - t0) / 1e9), 1),
    ...stats.summary(),
    min_per_client: c.clients.length ? Math.min(...c.clients.map((x) => x.count)) : 0,
    rate_limited: stats.rateLimited,
    ...cpu,
  };
}

async function fanout(spec, probe) {
  const p = spec.params;
  const stats = new Stats();
  log(`fanout: connecting ${spec.urls.length} receivers`);
  const r = await connectAll(spec.urls, () => new Receiver(stats), p.concurrency || 100, 120);
  const out = { receivers: r.clients.length, connect_failed: r.failed, errors: r.errors };
  if (!r.clients.length) return out;
  let tags = 0;
  const s = await connectAll(spec.sender_urls, () => new Sender(stats, `~n${tags++}~`), 1, 60);
  out.senders = s.clients.length;
  out.connect_failed += s.failed;
  await quiesce();
  stats.reset();
  for (const x of r.clients) x.count = 0;
  const window = p.window;
  const pad = " ".repeat(p.pad || 0);
  log(`fanout: ${out.senders} senders, window ${window}, ${p.sat_s} s`);
  await probe.phaseStart();
  const t0 = nowNs();
  const end = performance.now() + p.sat_s * 1000;
  // A lost echo must not stall a sender for good: every second each one looks again.
  const ticker = setInterval(() => {
    for (const x of s.clients) if (x.wake) x.wake();
  }, 1000);
  const loop = async (x) => {
    while (performance.now() < end && !x.closed) {
      while (x.sent - x.echoed < window) x.send(pad);
      await new Promise((resolve) => {
        x.wake = resolve;
      });
      x.wake = null;
    }
  };
  await Promise.all(s.clients.map(loop));
  clearInterval(ticker);
  const t1 = nowNs();
  const cpu = await probe.phaseStop();
  const sent = s.clients.reduce((a, x) => a + x.sent, 0);
  const expected = sent * r.clients.length;
  const drainS = await drain(stats, expected, p.drain_max_s || 10);
  const span = Math.max(1e-9, (Math.max(t1, stats.lastNs) - t0) / 1e9);
  await closeAll([...r.clients, ...s.clients]);
  return {
    ...out,
    window,
    messages_sent: sent,
    msgs_per_s: round(sent / Math.max(1e-9, (t1 - t0) / 1e9), 2),
    expected,
    deliveries: stats.count,
    lost: Math.max(0, expected - stats.count),
    deliveries_per_s: round(stats.count / span, 1),
    ...stats.summary(),
    ...cpu,
    drain_s: drainS,
    min_per_sub: Math.min(...r.clients.map((x) => x.count)),
    rate_limited: stats.rateLimited,
  };
}

// Wait for the expected deliveries, or no progress for 2 s, or limitS.
async function drain(stats, expected, limitS) {
  const t0 = performance.now();
  let lastChange = t0;
  let seen = -1;
  while (performance.now() - t0 < limitS * 1000) {
    const now = performance.now();
    if (stats.count >= expected || now - lastChange > 2000) break;
    if (stats.count !== seen) {
      seen = stats.count;
      lastChange = now;
    }
    await sleep(100);
  }
  return round((performance.now() - t0) / 1000, 2);
}

const KINDS = { connects, roundtrips, fanout, idle };

// ------------------------------------------------------------------ main
async function main() {
  const { values } = parseArgs({
    options: { spec: { type: "string" }, out: { type: "string" } },
  });
  if (!values.spec) throw new Error("usage: loadgen.mjs --spec spec.json [--out result.json]");
  const spec = JSON.parse(readFileSync(values.spec, "utf8"));
  const probe = new Probe(process.env.BENCH_NODE_PROBE === "stdio");
  const run = KINDS[spec.kind];
  let result;
  if (!run) {
    result = { error: `unknown kind ${JSON.stringify(spec.kind)} (known: ${Object.keys(KINDS)})` };
  } else {
    try {
      result = await run(spec, probe);
    } catch (err) {
      result = { error: `${err.name}: ${err.message}` };
      log(result.error);
    }
  }
  result.client = `node ${process.version}, ws ${wsVersion()}`;
  if (values.out) writeFileSync(values.out, JSON.stringify(result, null, 1));
  probe.send(result);
  if (!probe.enabled && !values.out) process.stdout.write(`${JSON.stringify(result, null, 1)}\n`);
  process.exit(result.error ? 1 : 0);
}

function wsVersion() {
  const url = new URL("node_modules/ws/package.json", import.meta.url);
  return JSON.parse(readFileSync(url, "utf8")).version;
}

main();
