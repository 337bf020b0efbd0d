/**
 * @file The project's stable browser client of the wire protocol (docs/protocol.md).
 *
 * Every page of the project connects through this module, and any other page may
 * import it as it is: an ES module with no build step and no dependency. What is
 * exported and documented here is the public API; it changes only compatibly.
 *
 * What it does for a page:
 * - §1 envelopes: {@link RealtimeClient#send} (with an optional `request_id`), every
 *   received text frame parsed once ({@link parseEnvelope});
 * - §2 close codes: reconnects with exponential backoff and full jitter (1 s, 2 s,
 *   4 s … capped at 30 s; it gives up after 10 consecutive failures) and never after
 *   a "do not retry" code ({@link DO_NOT_RETRY});
 * - §3 one-time tickets: `url` may be a function, called before every attempt, so
 *   each connect presents a fresh ticket ({@link ticketUrl});
 * - §4 heartbeat: answers `ping` with `pong`, and a socket silent for longer than
 *   the server's heartbeat interval (plus a grace) is taken for dead and replaced;
 * - `since`: the highest `seq` seen per room or conversation ({@link SeqTracker}),
 *   resent on reconnect by the page (`?since=` for sessions, in
 *   `conversation.subscribe` for the messenger); a seq already seen is dropped;
 * - §7 requests both ways: {@link RealtimeClient#request} resolves with the reply
 *   that echoes its `request_id`; {@link RealtimeClient#onRequest} answers the
 *   server's requests with the handler's result;
 * - §8 frame acknowledgements for camera viewers ({@link RealtimeClient#ack}, or
 *   the `autoAck` option);
 * - events: {@link RealtimeClient#on} / {@link RealtimeClient#off} for wire types,
 *   and `state` events: connecting, live, reconnecting (with the delay), closed
 *   (with the code).
 *
 * @example
 * import { RealtimeClient, ticketUrl, showConnection } from "/static/realtime/client.js";
 * const client = new RealtimeClient({ url: () => ticketUrl("/ws/messenger/") });
 * client.on("message.new", (payload) => console.log(payload.content));
 * showConnection(client, document.getElementById("connection"));
 * client.connect();
 */

/**
 * One frame of the protocol (§1).
 * @typedef {object} Envelope
 * @property {string} type lower-case dotted name, e.g. `chat.send`
 * @property {Object<string, any>} payload always an object
 * @property {string} [timestamp] ISO-8601, UTC (server frames)
 * @property {string} [request_id] on requests and the replies that echo them
 */

/**
 * What a `state` listener receives.
 * @typedef {object} StateEvent
 * @property {"idle"|"connecting"|"live"|"reconnecting"|"closed"} state
 * @property {number} [code] the close code that led here (reconnecting, closed)
 * @property {string} [reason] a short human reason for `code`
 * @property {number|null} [delay] ms until the next attempt (reconnecting); `null`
 *   while the browser is offline (the attempt waits for the network)
 * @property {number} [attempt] consecutive failed attempts so far
 * @property {boolean} [gaveUp] closed after too many consecutive failures
 */

/**
 * Options of {@link RealtimeClient}.
 * @typedef {object} ClientOptions
 * @property {string|function(): (string|Promise<string>)} url the socket URL, or a
 *   function returning it (called before every attempt: one-time tickets, `since`)
 * @property {number} [heartbeat=30] the server's heartbeat interval in seconds (§4)
 * @property {number} [baseDelay=1000] backoff of the first retry, ms
 * @property {number} [maxDelay=30000] backoff cap, ms
 * @property {number} [maxFailures=10] consecutive failed attempts before giving up
 * @property {boolean} [autoAck=false] acknowledge each camera frame on arrival (§8)
 * @property {function(string, Envelope): void} [log] called with "→" or "←" and
 *   every frame (debugging)
 * @property {typeof WebSocket} [WebSocket] the WebSocket class (tests inject one)
 */

/** Close codes after which the client never reconnects by itself (§2): 4001 (the
 * credential needs refreshing first), 4004, 4005, 4008 (go to login), 4009
 * (replaced by a newer connection), 4010 (closed by its host). */
export const DO_NOT_RETRY = Object.freeze([4001, 4004, 4005, 4008, 4009, 4010]);

/** The reconnect schedule: 1 s, 2 s, 4 s … capped at 30 s, ten tries in a row. */
export const BACKOFF = Object.freeze({ baseDelay: 1000, maxDelay: 30000, maxFailures: 10 });

/** §2: after 4029 (too many protocol violations) wait at least a minute. */
export const VIOLATION_WAIT_MS = 60000;

/** Beyond the heartbeat interval, how long silence is tolerated: the server's own
 * pong timeout (§4), which also covers a slow network and a throttled tab's timers. */
export const HEARTBEAT_GRACE_MS = 10000;

/** Short human reasons for the close codes of §2. */
export const CLOSE_REASONS = Object.freeze({
  1000: "closed",
  1006: "connection lost",
  1011: "server error",
  4001: "credential refused or expired",
  4003: "heartbeat lost",
  4004: "not found",
  4005: "not allowed",
  4008: "not signed in",
  4009: "replaced by a newer connection",
  4010: "closed by its host",
  4011: "server error",
  4012: "server restarting",
  4013: "server busy",
  4029: "too many invalid frames",
});

/** Reply types of the server → client requests the protocol names (§4, §7). */
export const REPLY_TYPES = Object.freeze({
  request_available_data: "available_data",
  request_api: "api_result",
  clarification_request: "human_response",
  "echo.question": "echo.answer",
});

/**
 * Whether the client reconnects after a close with `code`. A normal closure (1000)
 * from the server ends the conversation too.
 * @param {number} code
 * @returns {boolean}
 */
export function shouldRetry(code) {
  return code !== 1000 && !DO_NOT_RETRY.includes(code);
}

/**
 * The most the client waits before retry number `failures + 1`: `baseDelay`
 * doubled per consecutive failure, at most `maxDelay`.
 * @param {number} failures consecutive failures so far (0 for the first retry)
 * @param {{baseDelay?: number, maxDelay?: number}} [options]
 * @returns {number} milliseconds
 */
export function backoffCeiling(failures, { baseDelay = BACKOFF.baseDelay, maxDelay = BACKOFF.maxDelay } = {}) {
  return Math.min(maxDelay, baseDelay * 2 ** Math.max(0, failures));
}

/**
 * The delay before the next attempt, with full jitter: uniform in
 * `[0, backoffCeiling(failures))`. Jitter keeps the clients of a restarted server
 * from all reconnecting in the same instant.
 * @param {number} failures consecutive failures so far
 * @param {{baseDelay?: number, maxDelay?: number, random?: function(): number}} [options]
 * @returns {number} whole milliseconds
 */
export function backoffDelay(failures, { random = Math.random, ...limits } = {}) {
  return Math.floor(random() * backoffCeiling(failures, limits));
}

/**
 * The wait after a close with `code`: the backoff, or a minute after 4029.
 * @param {number} code
 * @param {number} failures
 * @param {{baseDelay?: number, maxDelay?: number, random?: function(): number}} [options]
 * @returns {number} milliseconds
 */
export function retryDelay(code, failures, options = {}) {
  const delay = backoffDelay(failures, options);
  return code === 4029 ? VIOLATION_WAIT_MS + delay : delay;
}

/**
 * The envelope of an outgoing frame, as JSON text.
 * @param {string} type
 * @param {Object<string, any>} [payload]
 * @param {string} [requestId]
 * @returns {string}
 */
export function makeEnvelope(type, payload = {}, requestId = undefined) {
  /** @type {Envelope} */
  const frame = { type, payload };
  if (requestId) frame.request_id = requestId;
  return JSON.stringify(frame);
}

/**
 * A received text frame as an {@link Envelope}, or `null` when it is not one.
 * @param {string} text
 * @returns {Envelope|null}
 */
export function parseEnvelope(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch (err) {
    return null;
  }
  if (!frame || typeof frame !== "object" || typeof frame.type !== "string") return null;
  if (!frame.payload || typeof frame.payload !== "object") frame.payload = {};
  return frame;
}

/**
 * Text for a {@link StateEvent}: `text` for the state itself, `detail` beside it
 * (the countdown of a reconnect, the reason of a close).
 * @param {StateEvent} event
 * @param {number} [now] the clock, ms (tests pass one)
 * @param {number} [since] when the event came, ms
 * @returns {{text: string, detail: string}}
 */
export function describeState(event, now = Date.now(), since = now) {
  switch (event.state) {
    case "connecting":
      return { text: "connecting…", detail: "" };
    case "live":
      return { text: "connected", detail: "" };
    case "reconnecting": {
      if (event.delay === null || event.delay === undefined) {
        return { text: "reconnecting…", detail: "waiting for the network" };
      }
      const left = Math.max(0, Math.ceil((event.delay - (now - since)) / 1000));
      return { text: "reconnecting…", detail: left ? `in ${left} s` : "now" };
    }
    case "closed": {
      const reason = event.gaveUp ? "gave up: reload to try again"
        : CLOSE_REASONS[event.code] || "";
      const code = event.code ? ` (${event.code})` : "";
      return { text: `closed${code}`, detail: reason };
    }
    default:
      return { text: "not connected", detail: "" };
  }
}

/**
 * The highest `seq` seen per key (a room code, a conversation id): what a reconnect
 * asks to be replayed from, and the filter that drops what was already shown.
 */
export class SeqTracker {
  constructor() {
    /** @type {Map<string, number>} */
    this.marks = new Map();
  }

  /**
   * The `since` to send: the highest seq seen for `key`, 0 when none.
   * @param {string|number} key
   * @returns {number}
   */
  since(key) {
    return this.marks.get(String(key)) ?? 0;
  }

  /**
   * True the first time a seq above the mark arrives (and raises the mark); false
   * for one already seen. A frame without a seq (typing, presence) always passes.
   * @param {string|number} key
   * @param {number|null|undefined} seq
   * @returns {boolean}
   */
  accept(key, seq) {
    if (typeof seq !== "number") return true;
    if (seq <= this.since(key)) return false;
    this.marks.set(String(key), seq);
    return true;
  }

  /**
   * Raise the mark to `seq` without a frame (a `synced` message, a history page).
   * @param {string|number} key
   * @param {number} seq
   */
  advance(key, seq) {
    if (typeof seq === "number" && seq > this.since(key)) this.marks.set(String(key), seq);
  }

  /** Start `key` over (a conversation opened afresh). @param {string|number} key */
  forget(key) {
    this.marks.delete(String(key));
  }
}

/** Why a {@link RealtimeClient#request} failed: an `error` reply (its `code`,
 * `message` and `retry_after`), or `TIMEOUT`, `CLOSED`, `NOT_CONNECTED`. */
export class RealtimeError extends Error {
  /**
   * @param {string} code
   * @param {string} [message]
   * @param {Object<string, any>} [payload] the `error` frame's payload, if any
   */
  constructor(code, message = "", payload = {}) {
    super(message || code);
    this.name = "RealtimeError";
    /** @type {string} */
    this.code = code;
    /** @type {number|null} */
    this.retryAfter = payload.retry_after ?? null;
    this.payload = payload;
  }
}

const OPEN = 1; // WebSocket.OPEN, without needing the global

/**
 * One logical connection to one socket path, kept up across drops.
 */
export class RealtimeClient {
  /** @param {ClientOptions} options */
  constructor(options) {
    const {
      url, heartbeat = 30, autoAck = false, log = null, WebSocket: impl = undefined,
      baseDelay = BACKOFF.baseDelay, maxDelay = BACKOFF.maxDelay,
      maxFailures = BACKOFF.maxFailures,
    } = options;
    this.url = url;
    this.autoAck = autoAck;
    this.log = log;
    this.limits = { baseDelay, maxDelay };
    this.maxFailures = maxFailures;
    this.WebSocketImpl = impl || globalThis.WebSocket;
    /** The highest seq seen per room or conversation. */
    this.seqs = new SeqTracker();
    /** @type {StateEvent} */
    this.status = { state: "idle" };
    /** The current WebSocket (null between attempts). */
    this.ws = null;
    this.failures = 0;
    this.stopped = true;
    this.handlers = new Map();
    this.requestHandlers = new Map();
    this.pending = new Map();
    this.counter = 0;
    this.retryTimer = null;
    this.silenceTimer = null;
    this.header = null; // a camera `frame` header whose binary JPEG comes next
    this.setHeartbeat(heartbeat);
    this.onNetwork = (event) => this.network(event.type === "online");
    if (typeof globalThis.addEventListener === "function") {
      globalThis.addEventListener("online", this.onNetwork);
      globalThis.addEventListener("offline", this.onNetwork);
    }
  }

  // ------------------------------------------------------------------ events
  /**
   * Listen to a wire type (`chat.message`), to `state` ({@link StateEvent}), to
   * `binary` (`{data, header}`: a binary frame and the `frame` header before it) or
   * to `*` (every envelope). Listeners get `(payload, frame)`.
   * @param {string} type
   * @param {function(any, Envelope=): void} fn
   * @returns {function(): void} a function that removes the listener
   */
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }

  /**
   * Remove a listener added with {@link RealtimeClient#on}.
   * @param {string} type
   * @param {function} fn
   */
  off(type, fn) {
    const set = this.handlers.get(type);
    if (set) set.delete(fn);
  }

  emit(type, payload, frame) {
    for (const fn of [...(this.handlers.get(type) || [])]) {
      try {
        fn(payload, frame);
      } catch (err) {
        // One page handler's bug must not stop the others or the socket.
        setTimeout(() => { throw err; });
      }
    }
  }

  setState(event) {
    this.status = event;
    this.emit("state", event);
  }

  /** The current {@link StateEvent}. @returns {StateEvent} */
  get state() {
    return this.status;
  }

  /** Whether the socket is open and has heard from the server. */
  get live() {
    return this.status.state === "live";
  }

  /**
   * The server's heartbeat interval (§4), e.g. from the copilot's `connected`.
   * @param {number} seconds
   */
  setHeartbeat(seconds) {
    this.silenceMs = seconds * 1000 + HEARTBEAT_GRACE_MS;
    if (this.ws) this.watch();
  }

  // ------------------------------------------------------------------ lifecycle
  /** Connect (again, after {@link RealtimeClient#close} or giving up); a pending
   * retry is made at once. */
  connect() {
    this.stopped = false;
    this.failures = 0;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.ws) return;
    this.attempt();
  }

  /**
   * Close for good: no reconnect, pending requests fail with `CLOSED`.
   * @param {number} [code=1000]
   */
  close(code = 1000) {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const ws = this.ws;
    this.detach();
    if (ws) ws.close(code);
    this.failAll("CLOSED");
    this.setState({ state: "closed", code, reason: CLOSE_REASONS[code] || "" });
  }

  async attempt() {
    this.retryTimer = null;
    this.setState({ state: "connecting", attempt: this.failures });
    let url;
    try {
      url = typeof this.url === "function" ? await this.url() : this.url;
    } catch (err) {
      // No URL (a ticket could not be bought: the server is down): a failed attempt.
      if (!this.stopped && !this.ws) this.closed(1006, String(err && err.message));
      return;
    }
    if (this.stopped || this.ws) return;
    const ws = new this.WebSocketImpl(url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.heard = false;
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.detach();
      this.closed(event.code, event.reason);
    };
    ws.onerror = () => {}; // the close event follows and says what happened
    this.watch();
  }

  detach() {
    clearTimeout(this.silenceTimer);
    const ws = this.ws;
    this.ws = null;
    this.header = null;
    if (ws) {
      ws.onmessage = null;
      ws.onclose = null;
    }
  }

  failAll(code) {
    for (const waiter of this.pending.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new RealtimeError(code));
    }
    this.pending.clear();
  }

  closed(code, reason = "") {
    this.failAll("CLOSED");
    if (this.stopped) return;
    if (!shouldRetry(code)) {
      this.stopped = true;
      this.setState({ state: "closed", code, reason: CLOSE_REASONS[code] || reason });
      return;
    }
    if (this.failures >= this.maxFailures) {
      this.stopped = true;
      this.setState({ state: "closed", code, reason: "gave up", gaveUp: true });
      return;
    }
    if (globalThis.navigator && globalThis.navigator.onLine === false) {
      this.setState({ state: "reconnecting", code, delay: null, attempt: this.failures });
      return; // the `online` event reconnects
    }
    const delay = retryDelay(code, this.failures, this.limits);
    this.failures += 1;
    this.setState({ state: "reconnecting", code, delay, attempt: this.failures });
    this.retryTimer = setTimeout(() => this.attempt(), delay);
  }

  // The browser lost or found its network: drop a socket that cannot work, and
  // retry at once when the network is back rather than at the backoff's pace.
  network(online) {
    if (this.stopped) return;
    if (online) {
      if (!this.ws) this.connect();
      return;
    }
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const ws = this.ws;
    this.detach();
    if (ws) ws.close(4000);
    this.failAll("CLOSED");
    this.setState({ state: "reconnecting", code: 1006, delay: null, attempt: this.failures });
  }

  // Silence past the heartbeat interval: the socket is dead even if the browser has
  // not noticed (a half-open TCP connection can take minutes to fail).
  watch() {
    clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => {
      const ws = this.ws;
      if (!ws) return;
      this.detach();
      ws.close(4000);
      this.closed(4003, "no heartbeat");
    }, this.silenceMs);
  }

  // ------------------------------------------------------------------ receiving
  receive(data) {
    this.watch();
    if (!this.heard) {
      this.heard = true;
      this.failures = 0;
      this.setState({ state: "live" });
    }
    if (typeof data !== "string") {
      const header = this.header;
      this.header = null;
      this.emit("binary", { data, header });
      if (this.autoAck && header) this.ack(header.seq, header.kind);
      return;
    }
    const frame = parseEnvelope(data);
    if (!frame) return;
    if (this.log) this.log("←", frame);
    if (frame.type === "ping") {
      this.send("pong", frame.payload);
      return;
    }
    if (frame.type === "frame") this.header = frame.payload;
    const id = frame.request_id;
    const waiter = id && this.pending.get(id);
    if (waiter) {
      this.pending.delete(id);
      clearTimeout(waiter.timer);
      if (frame.type === "error") {
        waiter.reject(new RealtimeError(frame.payload.code, frame.payload.message, frame.payload));
      } else {
        waiter.resolve(frame);
      }
    }
    const handler = id && this.requestHandlers.get(frame.type);
    if (handler) this.answer(handler, frame);
    this.emit(frame.type, frame.payload, frame);
    this.emit("*", frame.payload, frame);
  }

  async answer({ fn, reply }, frame) {
    let result;
    try {
      result = await fn(frame.payload, frame);
    } catch (err) {
      return; // unanswered: the server times the request out (§7)
    }
    if (result !== undefined) this.send(reply, result, frame.request_id);
  }

  // ------------------------------------------------------------------ sending
  /**
   * Send one envelope. Returns false (and sends nothing) while not connected.
   * @param {string} type
   * @param {Object<string, any>} [payload]
   * @param {string|{requestId?: string}} [options] a `request_id`, or `{requestId}`
   * @returns {boolean}
   */
  send(type, payload = {}, options = undefined) {
    const requestId = typeof options === "string" ? options : options && options.requestId;
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return false;
    if (this.log) {
      this.log("→", requestId ? { type, payload, request_id: requestId } : { type, payload });
    }
    ws.send(makeEnvelope(type, payload, requestId));
    return true;
  }

  /**
   * Send a binary frame (audio, §7). Returns false while not connected.
   * @param {ArrayBuffer|ArrayBufferView|Blob} data
   * @returns {boolean}
   */
  sendBinary(data) {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return false;
    ws.send(data);
    return true;
  }

  /**
   * Send a request and wait for the reply with the same `request_id`.
   * @param {string} type
   * @param {Object<string, any>} [payload]
   * @param {{timeout?: number}} [options] timeout in ms (default 10 s)
   * @returns {Promise<Envelope>} the reply; rejects with a {@link RealtimeError}
   */
  request(type, payload = {}, { timeout = 10000 } = {}) {
    this.counter += 1;
    const requestId = `c-${Date.now().toString(36)}-${this.counter}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new RealtimeError("TIMEOUT", `no reply to ${type}`));
      }, timeout);
      this.pending.set(requestId, { resolve, reject, timer });
      if (!this.send(type, payload, requestId)) {
        clearTimeout(timer);
        this.pending.delete(requestId);
        reject(new RealtimeError("NOT_CONNECTED", "not connected"));
      }
    });
  }

  /**
   * Answer the server's requests of `type` (§7): the handler's result (or what its
   * Promise resolves to) is sent back with the request's `request_id`, as
   * `options.reply` or the type {@link REPLY_TYPES} names. A handler that returns
   * `undefined` or throws leaves the request unanswered.
   * @param {string} type e.g. `request_api`
   * @param {function(Object<string, any>, Envelope): any} handler
   * @param {{reply?: string}} [options]
   * @returns {function(): void} a function that removes the handler
   */
  onRequest(type, handler, { reply = REPLY_TYPES[type] } = {}) {
    if (!reply) throw new Error(`no reply type for ${type}: pass {reply}`);
    this.requestHandlers.set(type, { fn: handler, reply });
    return () => this.requestHandlers.delete(type);
  }

  /**
   * Acknowledge camera frames up to `seq` (§8: cumulative), of one `kind` if given.
   * @param {number} seq
   * @param {string} [kind]
   * @returns {boolean}
   */
  ack(seq, kind = undefined) {
    return this.send("frame.ack", kind ? { seq, kind } : { seq });
  }

  // ------------------------------------------------------------------ since
  /**
   * The highest seq seen for `key` (a room code, a conversation id).
   * @param {string|number} key
   * @returns {number}
   */
  since(key) {
    return this.seqs.since(key);
  }

  /**
   * Whether a frame with `seq` for `key` is new (and remember it); see
   * {@link SeqTracker#accept}.
   * @param {string|number} key
   * @param {number|null|undefined} seq
   * @returns {boolean}
   */
  accept(key, seq) {
    return this.seqs.accept(key, seq);
  }
}

// ---------------------------------------------------------------------- browser helpers

/**
 * The `ws://` or `wss://` URL of `path` on this page's host.
 * @param {string} path
 * @param {Object<string, string|number>} [params] query parameters
 * @returns {string}
 */
export function socketUrl(path, params = {}) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) query.set(key, String(value));
  }
  const text = query.toString();
  return `${scheme}://${location.host}${path}${text ? `?${text}` : ""}`;
}

/** The CSRF token Django set as a cookie (for POSTs with the session cookie). */
export function csrfToken() {
  return (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || "";
}

/**
 * A socket URL with a fresh one-time ticket (§3), bought with the page's session
 * cookie, or with `token` (a JWT access token) when given.
 * @param {string} path e.g. `/ws/messenger/`
 * @param {{params?: Object<string, string|number>, token?: string}} [options]
 * @returns {Promise<string>}
 */
export async function ticketUrl(path, { params = {}, token = undefined } = {}) {
  const headers = token ? { Authorization: `Bearer ${token}` } : { "X-CSRFToken": csrfToken() };
  const reply = await fetch("/api/realtime/tickets/", {
    method: "POST", credentials: "same-origin", headers,
  });
  if (!reply.ok) throw new Error(`ticket: HTTP ${reply.status}`);
  const { ticket } = await reply.json();
  return socketUrl(path, { ticket, ...params });
}

/**
 * Show a client's connection state in `element` (text, and `data-state` for
 * styles and tests) and the countdown or reason in `detail`, if given.
 * @param {RealtimeClient} client
 * @param {HTMLElement} element
 * @param {HTMLElement} [detail]
 * @returns {function(): void} a function that stops showing it
 */
export function showConnection(client, element, detail = undefined) {
  let ticker = null;
  let since = Date.now();
  const draw = () => {
    const { text, detail: more } = describeState(client.state, Date.now(), since);
    element.textContent = text;
    element.dataset.state = client.state.state;
    if (detail) detail.textContent = more;
  };
  const update = () => {
    since = Date.now();
    clearInterval(ticker);
    ticker = client.state.state === "reconnecting" && client.state.delay
      ? setInterval(draw, 1000) : null;
    draw();
  };
  const off = client.on("state", update);
  update();
  return () => { off(); clearInterval(ticker); };
}
