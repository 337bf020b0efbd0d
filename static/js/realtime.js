// The browser client of the realtime protocol (docs/protocol.md): envelopes,
// heartbeat answers, request/response by request_id, and reconnect with exponential
// backoff and full jitter (jitter keeps a thousand clients from reconnecting in step).
"use strict";

const NO_RETRY = new Set([4004, 4005, 4008, 4009, 4010]);

class RealtimeSocket {
  // url: a string, or an async function returning one (so each attempt can fetch
  // a fresh one-time ticket).
  constructor(url, { maxDelay = 30000, baseDelay = 500, log = null } = {}) {
    this.url = url;
    this.maxDelay = maxDelay;
    this.baseDelay = baseDelay;
    this.log = log;
    this.handlers = new Map();
    this.pending = new Map();
    this.attempt = 0;
    this.counter = 0;
    this.stopped = false;
    this.ws = null;
  }

  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(handler);
    return this;
  }

  emit(type, frame) {
    for (const handler of this.handlers.get(type) || []) handler(frame.payload, frame);
    for (const handler of this.handlers.get("*") || []) handler(frame.payload, frame);
  }

  async connect() {
    this.stopped = false;
    const url = typeof this.url === "function" ? await this.url() : this.url;
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => { this.attempt = 0; this.emit("socket.open", { payload: {} }); };
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => this.closed(event.code);
  }

  receive(data) {
    if (typeof data !== "string") {
      this.emit("binary", { payload: { data } });
      return;
    }
    const frame = JSON.parse(data);
    if (this.log) this.log("←", frame);
    if (frame.type === "ping" && frame.payload && frame.payload.nonce) {
      this.send("pong", { nonce: frame.payload.nonce });
    }
    const waiter = frame.request_id && this.pending.get(frame.request_id);
    if (waiter) {
      this.pending.delete(frame.request_id);
      clearTimeout(waiter.timer);
      if (frame.type === "error") waiter.reject(frame.payload);
      else waiter.resolve(frame);
    }
    this.emit(frame.type, frame);
  }

  closed(code) {
    this.emit("socket.close", { payload: { code } });
    for (const waiter of this.pending.values()) waiter.reject({ code: "CLOSED" });
    this.pending.clear();
    if (this.stopped || NO_RETRY.has(code)) return;
    // Full jitter: a random delay in [0, min(max, base * 2^attempt)).
    const cap = Math.min(this.maxDelay, this.baseDelay * 2 ** this.attempt);
    this.attempt += 1;
    setTimeout(() => this.connect(), Math.random() * cap);
  }

  send(type, payload = {}, requestId = undefined) {
    const frame = { type, payload };
    if (requestId) frame.request_id = requestId;
    if (this.log) this.log("→", frame);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  // Send and wait for the reply that echoes our request_id.
  request(type, payload = {}, timeoutMs = 10000) {
    const requestId = `c-${Date.now().toString(36)}-${(this.counter += 1)}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject({ code: "TIMEOUT" });
      }, timeoutMs);
      this.pending.set(requestId, { resolve, reject, timer });
      if (!this.send(type, payload, requestId)) {
        clearTimeout(timer);
        this.pending.delete(requestId);
        reject({ code: "NOT_CONNECTED" });
      }
    });
  }

  close() {
    this.stopped = true;
    if (this.ws) this.ws.close(1000);
  }
}

// A one-time ticket for the signed-in user (session cookie + CSRF), then the URL.
async function ticketUrl(path) {
  const csrf = (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || "";
  const reply = await fetch("/api/realtime/tickets/", {
    method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf },
  });
  if (!reply.ok) throw new Error(`ticket: HTTP ${reply.status}`);
  const { ticket } = await reply.json();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}${path}?ticket=${encodeURIComponent(ticket)}`;
}

window.RealtimeSocket = RealtimeSocket;
window.ticketUrl = ticketUrl;
