// The browser client (static/realtime/client.js) under Node's own test runner: its
// pure parts (backoff, close-code policy, dedupe by seq, envelopes), and the client
// against a fake WebSocket with mocked timers (reconnects, heartbeat, requests).
import assert from "node:assert/strict";
import { beforeEach, afterEach, describe, it, mock } from "node:test";

import {
  BACKOFF,
  DO_NOT_RETRY,
  RealtimeClient,
  RealtimeError,
  SeqTracker,
  VIOLATION_WAIT_MS,
  backoffCeiling,
  backoffDelay,
  describeState,
  makeEnvelope,
  parseEnvelope,
  retryDelay,
  shouldRetry,
} from "../../static/realtime/client.js";

describe("backoff", () => {
  it("doubles from 1 s and stops at 30 s", () => {
    const ceilings = [0, 1, 2, 3, 4, 5, 6, 9].map((n) => backoffCeiling(n));
    assert.deepEqual(ceilings, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    assert.equal(BACKOFF.maxFailures, 10);
  });

  it("jitters over the whole range", () => {
    assert.equal(backoffDelay(3, { random: () => 0 }), 0);
    assert.equal(backoffDelay(3, { random: () => 0.5 }), 4000);
    assert.equal(backoffDelay(3, { random: () => 0.999999 }), 7999);
    assert.equal(backoffDelay(1, { random: () => 0.5, baseDelay: 10, maxDelay: 15 }), 7);
  });

  it("waits a minute after too many violations", () => {
    const zero = { random: () => 0 };
    assert.equal(retryDelay(4029, 0, zero), VIOLATION_WAIT_MS);
    assert.equal(retryDelay(1006, 0, zero), 0);
  });
});

describe("close codes", () => {
  it("never retries the do-not-retry codes", () => {
    for (const code of [4001, 4004, 4005, 4008, 4009, 4010, 1000]) {
      assert.equal(shouldRetry(code), false, code);
    }
    assert.deepEqual([...DO_NOT_RETRY], [4001, 4004, 4005, 4008, 4009, 4010]);
  });

  it("retries drops, restarts and overload", () => {
    for (const code of [1006, 1011, 1001, 4003, 4011, 4012, 4013, 4029]) {
      assert.equal(shouldRetry(code), true, code);
    }
  });
});

describe("SeqTracker", () => {
  it("keeps the highest seq per key and drops repeats", () => {
    const seqs = new SeqTracker();
    assert.equal(seqs.since("room"), 0);
    assert.equal(seqs.accept("room", 1), true);
    assert.equal(seqs.accept("room", 2), true);
    assert.equal(seqs.accept("room", 2), false);
    assert.equal(seqs.accept("room", 1), false);
    assert.equal(seqs.accept("other", 1), true);
    assert.equal(seqs.since("room"), 2);
    assert.equal(seqs.accept("room", null), true); // typing, presence: no seq
    seqs.advance("room", 7);
    seqs.advance("room", 3);
    assert.equal(seqs.since("room"), 7);
    seqs.forget("room");
    assert.equal(seqs.since("room"), 0);
  });
});

describe("envelopes", () => {
  it("round trips", () => {
    assert.equal(makeEnvelope("chat.send", { content: "hi" }), '{"type":"chat.send","payload":{"content":"hi"}}');
    const text = makeEnvelope("query", {}, "r-1");
    assert.deepEqual(parseEnvelope(text), { type: "query", payload: {}, request_id: "r-1" });
  });

  it("refuses what is not an envelope", () => {
    assert.equal(parseEnvelope("not json"), null);
    assert.equal(parseEnvelope("[1]"), null);
    assert.equal(parseEnvelope("null"), null);
    assert.deepEqual(parseEnvelope('{"type":"x"}'), { type: "x", payload: {} });
  });
});

describe("describeState", () => {
  it("names every state", () => {
    assert.deepEqual(describeState({ state: "idle" }), { text: "not connected", detail: "" });
    assert.equal(describeState({ state: "connecting" }).text, "connecting…");
    assert.equal(describeState({ state: "live" }).text, "connected");
    const later = describeState({ state: "reconnecting", delay: 4200 }, 1000, 0);
    assert.deepEqual(later, { text: "reconnecting…", detail: "in 4 s" });
    assert.equal(describeState({ state: "reconnecting", delay: 100 }, 5000, 0).detail, "now");
    assert.equal(describeState({ state: "reconnecting", delay: null }).detail, "waiting for the network");
    assert.deepEqual(describeState({ state: "closed", code: 4005 }), { text: "closed (4005)", detail: "not allowed" });
    assert.equal(describeState({ state: "closed", code: 1006, gaveUp: true }).detail, "gave up: reload to try again");
  });
});

// ---------------------------------------------------------------------- the client
class FakeSocket {
  static all = [];

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
    FakeSocket.all.push(this);
  }

  open() { this.readyState = 1; }

  send(data) { this.sent.push(data); }

  close(code) { this.closedWith = code; this.readyState = 3; }

  // What the server says.
  frame(type, payload = {}, requestId = undefined) {
    this.onmessage({ data: makeEnvelope(type, payload, requestId) });
  }

  binary(data) { this.onmessage({ data }); }

  drop(code) { this.readyState = 3; this.onclose({ code, reason: "" }); }

  frames() { return this.sent.filter((d) => typeof d === "string").map((d) => JSON.parse(d)); }
}

const last = () => FakeSocket.all[FakeSocket.all.length - 1];
const settle = async () => { for (let i = 0; i < 5; i += 1) await Promise.resolve(); };

function client(options = {}) {
  const states = [];
  const made = new RealtimeClient({ url: "ws://x/ws/echo/", WebSocket: FakeSocket, ...options });
  made.on("state", (event) => states.push(event));
  return { made, states };
}

async function live(made) {
  made.connect();
  await settle();
  last().open();
  last().frame("echo.ready", {});
  return last();
}

describe("RealtimeClient", () => {
  beforeEach(() => {
    FakeSocket.all = [];
    mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"] });
    mock.method(Math, "random", () => 0.5);
  });

  afterEach(() => {
    mock.timers.reset();
    mock.restoreAll();
  });

  it("goes live on the first frame and answers the heartbeat", async () => {
    const { made, states } = client();
    const ws = await live(made);
    assert.deepEqual(states.map((s) => s.state), ["connecting", "live"]);
    ws.frame("ping", { nonce: "n1" });
    assert.deepEqual(ws.frames(), [{ type: "pong", payload: { nonce: "n1" } }]);
    assert.equal(ws.binaryType, "arraybuffer");
  });

  it("reconnects with a growing, jittered delay and gives up after ten", async () => {
    const { made, states } = client();
    await live(made);
    for (let n = 0; n < 10; n += 1) {
      last().drop(1006);
      const event = states[states.length - 1];
      assert.equal(event.state, "reconnecting");
      assert.equal(event.delay, backoffCeiling(n) / 2, `failure ${n}`);
      mock.timers.tick(event.delay);
      await settle();
    }
    assert.equal(FakeSocket.all.length, 11);
    last().drop(1006);
    assert.deepEqual(states[states.length - 1], { state: "closed", code: 1006, reason: "gave up", gaveUp: true });
    mock.timers.tick(120000);
    await settle();
    assert.equal(FakeSocket.all.length, 11);
  });

  it("starts the schedule over once a socket is live again", async () => {
    const { made, states } = client();
    await live(made);
    last().drop(1006);
    mock.timers.tick(500);
    await settle();
    last().drop(4013); // accepted then closed: still a failure
    assert.equal(states[states.length - 1].delay, 1000);
    mock.timers.tick(1000);
    await settle();
    last().open();
    last().frame("echo.ready");
    last().drop(4012);
    assert.equal(states[states.length - 1].delay, 500);
  });

  it("does not retry the do-not-retry codes", async () => {
    for (const code of DO_NOT_RETRY) {
      FakeSocket.all = [];
      const { made, states } = client();
      await live(made);
      last().drop(code);
      assert.equal(states[states.length - 1].state, "closed");
      assert.equal(states[states.length - 1].code, code);
      mock.timers.tick(120000);
      await settle();
      assert.equal(FakeSocket.all.length, 1, code);
    }
  });

  it("asks for a fresh URL before each attempt", async () => {
    let n = 0;
    const { made } = client({ url: async () => `ws://x/?ticket=t${(n += 1)}` });
    await live(made);
    last().drop(1006);
    mock.timers.tick(500);
    await settle();
    assert.deepEqual(FakeSocket.all.map((s) => s.url), ["ws://x/?ticket=t1", "ws://x/?ticket=t2"]);
  });

  it("counts a URL that cannot be had as a failed attempt", async () => {
    let fail = true;
    const { made, states } = client({ url: async () => { if (fail) throw new Error("down"); return "ws://x/"; } });
    made.connect();
    await settle();
    assert.equal(states[states.length - 1].state, "reconnecting");
    fail = false;
    mock.timers.tick(states[states.length - 1].delay);
    await settle();
    assert.equal(FakeSocket.all.length, 1);
  });

  it("treats silence past the heartbeat interval as a dead socket", async () => {
    const { made, states } = client({ heartbeat: 5 });
    const ws = await live(made);
    mock.timers.tick(14000);
    ws.frame("ping", { nonce: "a" }); // a sign of life restarts the watch
    mock.timers.tick(14000);
    assert.equal(ws.closedWith, null);
    mock.timers.tick(1000);
    assert.equal(ws.closedWith, 4000);
    assert.equal(states[states.length - 1].state, "reconnecting");
    assert.equal(states[states.length - 1].code, 4003);
  });

  it("matches replies to requests by request_id", async () => {
    const { made } = client();
    const ws = await live(made);
    const reply = made.request("echo", { a: 1 });
    const sent = ws.frames()[0];
    assert.equal(sent.type, "echo");
    assert.match(sent.request_id, /^c-/);
    ws.frame("echo", { a: 1 }, "someone-else");
    ws.frame("echo", { a: 2 }, sent.request_id);
    assert.deepEqual((await reply).payload, { a: 2 });

    const refused = made.request("query", {});
    ws.frame("error", { code: "RATE_LIMITED", message: "slow", retry_after: 3 }, ws.frames()[1].request_id);
    await assert.rejects(refused, (err) => err instanceof RealtimeError && err.code === "RATE_LIMITED" && err.retryAfter === 3);

    const late = made.request("query", {}, { timeout: 50 });
    mock.timers.tick(50);
    await assert.rejects(late, { code: "TIMEOUT" });

    const dropped = made.request("query", {});
    ws.drop(1006);
    await assert.rejects(dropped, { code: "CLOSED" });
    await assert.rejects(made.request("query", {}), { code: "NOT_CONNECTED" });
  });

  it("answers the server's requests with the handler's result", async () => {
    const { made } = client();
    const ws = await live(made);
    made.onRequest("request_available_data", () => ({ items: [] }));
    made.onRequest("clarification_request", async (payload) => ({ answer: payload.options[1] }));
    made.onRequest("custom.ask", () => undefined, { reply: "custom.answer" });
    assert.throws(() => made.onRequest("unknown.ask", () => 1));
    ws.frame("request_available_data", {}, "s-1");
    ws.frame("clarification_request", { options: ["a", "b"] }, "s-2");
    ws.frame("custom.ask", {}, "s-3");
    await settle();
    assert.deepEqual(ws.frames(), [
      { type: "available_data", payload: { items: [] }, request_id: "s-1" },
      { type: "human_response", payload: { answer: "b" }, request_id: "s-2" },
    ]);
  });

  it("pairs camera frames with their header and acknowledges them", async () => {
    const { made } = client({ autoAck: true });
    const ws = await live(made);
    const got = [];
    made.on("binary", (p) => got.push(p));
    ws.frame("frame", { seq: 4, kind: "raw", bytes: 3 });
    ws.binary(new ArrayBuffer(3));
    ws.binary(new ArrayBuffer(1)); // no header before it
    assert.equal(got[0].header.seq, 4);
    assert.equal(got[1].header, null);
    assert.equal(made.ack(5), true);
    assert.deepEqual(ws.frames(), [
      { type: "frame.ack", payload: { seq: 4, kind: "raw" } },
      { type: "frame.ack", payload: { seq: 5 } },
    ]);
  });

  it("delivers events to listeners until they are removed", async () => {
    const { made } = client();
    const ws = await live(made);
    const seen = [];
    const fn = (payload, frame) => seen.push([frame.type, payload.n]);
    const off = made.on("chat.message", fn);
    made.on("*", (payload, frame) => seen.push(["*", frame.type]));
    ws.frame("chat.message", { n: 1 });
    off();
    ws.frame("chat.message", { n: 2 });
    made.off("chat.message", fn);
    assert.deepEqual(seen, [["chat.message", 1], ["*", "chat.message"], ["*", "chat.message"]]);
    ws.onmessage({ data: "not json" }); // ignored, as is a frame without a type
    ws.onmessage({ data: "[1]" });
    assert.equal(seen.length, 3);
  });

  it("sends envelopes only while open, and stops for good on close()", async () => {
    const { made, states } = client();
    assert.equal(made.send("ping"), false);
    const ws = await live(made);
    assert.equal(made.send("chat.send", { content: "hi" }, { requestId: "r-9" }), true);
    assert.equal(made.sendBinary(new Uint8Array(2)), true);
    assert.deepEqual(ws.frames(), [{ type: "chat.send", payload: { content: "hi" }, request_id: "r-9" }]);
    made.close();
    assert.equal(ws.closedWith, 1000);
    assert.deepEqual(states[states.length - 1], { state: "closed", code: 1000, reason: "closed" });
    assert.equal(made.send("ping"), false);
    assert.equal(made.sendBinary(new Uint8Array(2)), false);
    mock.timers.tick(60000);
    await settle();
    assert.equal(FakeSocket.all.length, 1);
  });

  it("waits for the network while offline, and retries at once when it is back", async () => {
    const { made, states } = client();
    const ws = await live(made);
    made.network(false);
    assert.equal(ws.closedWith, 4000);
    assert.deepEqual(states[states.length - 1], { state: "reconnecting", code: 1006, delay: null, attempt: 0 });
    mock.timers.tick(120000);
    await settle();
    assert.equal(FakeSocket.all.length, 1);
    made.network(true);
    await settle();
    assert.equal(FakeSocket.all.length, 2);
    made.close();
    made.network(true); // closed for good: the network changes nothing
    await settle();
    assert.equal(FakeSocket.all.length, 2);
  });

  it("keeps a since per key", async () => {
    const { made } = client();
    assert.equal(made.accept("K7QXM2PA", 3), true);
    assert.equal(made.accept("K7QXM2PA", 3), false);
    assert.equal(made.since("K7QXM2PA"), 3);
  });
});
