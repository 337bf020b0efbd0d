// The copilot console (templates/copilot.html): a browser client of /ws/copilot/.
// It asks questions, streams answers, answers the agent's callbacks from what the page
// holds (an editable list of available data, a fake local API, choice buttons),
// streams the microphone as 16 kHz PCM, and resumes unfinished answers on reconnect.
// The socket (tickets, backoff, heartbeat, requests both ways) is
// static/realtime/client.js's.
import { RealtimeClient, showConnection, ticketUrl } from "../realtime/client.js";

(() => {
  const PATH = "/ws/copilot/";
  const SAMPLE_RATE = 16000;
  const LOG_LINES = 300; // the frame log keeps the newest lines only
  const DEFAULT_ITEMS = [
    { name: "monthly_costs", path: "/local/costs" },
    { name: "instances", path: "/local/instances" },
  ];
  const DEFAULT_API = {
    "/local/costs": { records: [
      { month: "2026-09", amount: 1210.5, currency: "EUR" },
      { month: "2026-10", amount: 1184.0, currency: "EUR" },
      { month: "2026-11", amount: 1302.25, currency: "EUR" },
    ] },
    "/local/instances": [
      { id: "i-01", type: "m5.large", region: "eu-west-1" },
      { id: "i-02", type: "t3.micro", region: "eu-west-1" },
    ],
  };

  const $ = (id) => document.getElementById(id);
  const queries = new Map(); // query_id -> {box, textEl, last, done}
  let socket = null;
  let mic = null;

  // ------------------------------------------------------------------ helpers
  function el(tag, attrs = {}, text = "") {
    const node = document.createElement(tag);
    Object.assign(node, attrs);
    if (text) node.textContent = text;
    return node;
  }

  function log(direction, frame) {
    const box = $("log");
    const line = el("div", {}, `${direction} ${JSON.stringify(frame)}`);
    box.appendChild(line);
    while (box.childNodes.length > LOG_LINES) box.removeChild(box.firstChild);
    box.scrollTop = box.scrollHeight;
  }

  function setStatus(text) { $("status").textContent = text; }

  function setConnected(on) {
    $("send").disabled = !on;
    $("mic").disabled = !on;
    $("disconnect").disabled = !on;
    $("connect").disabled = on;
  }

  // ------------------------------------------------------------------ credentials
  // A fresh one-time ticket per attempt: bought with the session cookie when signed
  // in, else with the access token pasted on the page.
  function socketUrl() {
    const field = $("token");
    return ticketUrl(PATH, field ? { token: field.value.trim() } : {});
  }

  // ------------------------------------------------------------------ client data
  function addItemRow(item = { name: "", path: "" }) {
    const row = el("tr");
    for (const key of ["name", "path"]) {
      const cell = el("td");
      const input = el("input", { value: item[key], className: `item-${key}` });
      input.setAttribute("aria-label", `Item ${key}`);
      cell.appendChild(input);
      row.appendChild(cell);
    }
    const remove = el("button", { type: "button", className: "small" }, "−");
    remove.setAttribute("aria-label", "Remove this item");
    remove.onclick = () => row.remove();
    const cell = el("td");
    cell.appendChild(remove);
    row.appendChild(cell);
    $("items").appendChild(row);
  }

  function availableItems() {
    const items = [];
    for (const row of $("items").querySelectorAll("tr")) {
      const name = row.querySelector(".item-name");
      const path = row.querySelector(".item-path");
      if (name && name.value.trim()) {
        items.push({ name: name.value.trim(), path: path.value.trim() });
      }
    }
    return items;
  }

  function localApi(method, path) {
    let table;
    try {
      table = JSON.parse($("api").value || "{}");
    } catch (err) {
      return { status: 500, body: { detail: `the page's API table is not JSON: ${err}` } };
    }
    if (method !== "GET") return { status: 405, body: { detail: "GET only" } };
    if (Object.prototype.hasOwnProperty.call(table, path)) {
      return { status: 200, body: table[path] };
    }
    return { status: 404, body: { detail: `no ${path}` } };
  }

  // ------------------------------------------------------------------ answers
  function queryBox(queryId, text = "") {
    let q = queries.get(queryId);
    if (q) return q;
    const box = el("div", { className: "answer" });
    box.appendChild(el("div", { className: "status" }, `${queryId} · ${text}`));
    const textEl = el("p");
    const cancel = el("button", { type: "button" }, "Cancel");
    cancel.onclick = () => socket && socket.send("query.cancel", { query_id: queryId });
    box.append(textEl, cancel);
    $("answers").prepend(box);
    q = { box, textEl, cancel, last: 0, done: false };
    queries.set(queryId, q);
    return q;
  }

  function onDelta(payload) {
    const q = queryBox(payload.query_id);
    if (payload.index <= q.last) return; // already shown (replayed after a resume)
    q.textEl.textContent += payload.delta;
    q.last = payload.index;
  }

  function onResponse(payload) {
    const q = queryBox(payload.query_id);
    q.done = true;
    q.textEl.textContent = payload.text;
    q.cancel.remove();
    const notes = [];
    if (payload.cancelled) notes.push("cancelled");
    if (payload.error) notes.push(`ended: ${payload.error}`);
    for (const source of payload.sources || []) {
      notes.push(`source: ${source.name}${source.path ? ` (${source.path})` : ""}`);
    }
    if (notes.length) q.box.appendChild(el("div", { className: "status" }, notes.join(" · ")));
  }

  // Resolves with the `human_response` payload once the person chooses.
  function onClarification(payload, frame) {
    const q = queryBox(payload.query_id);
    const ask = el("div", { className: "clarify" });
    ask.dataset.requestId = frame.request_id;
    ask.appendChild(el("span", {}, `${payload.question} `));
    let answer;
    const chosen = new Promise((resolve) => {
      answer = (text) => {
        resolve({ answer: text });
        ask.remove();
      };
    });
    if (payload.options && payload.options.length) {
      for (const option of payload.options) {
        const button = el("button", { type: "button" }, option);
        button.onclick = () => answer(option);
        ask.appendChild(button);
      }
    } else {
      const input = el("input", { size: 30 });
      input.setAttribute("aria-label", "Your answer");
      const ok = el("button", { type: "button" }, "Answer");
      ok.onclick = () => answer(input.value);
      ask.append(input, ok);
    }
    q.box.appendChild(ask);
    return chosen;
  }

  function onError(payload, frame) {
    // A question that timed out can no longer be answered: take its buttons away.
    if (payload.code === "TIMEOUT" && frame.request_id) {
      for (const node of document.querySelectorAll(".clarify")) {
        if (node.dataset.requestId === frame.request_id) node.remove();
      }
    }
    if (payload.code === "RATE_LIMITED") {
      setStatus(`rate limited: retry in ${payload.retry_after} s`);
    }
  }

  // ------------------------------------------------------------------ voice
  function toPcm16(samples, fromRate) {
    // Nearest-sample decimation to 16 kHz: enough for voice activity detection.
    const ratio = fromRate / SAMPLE_RATE;
    const out = new Int16Array(Math.floor(samples.length / ratio));
    for (let i = 0; i < out.length; i += 1) {
      const s = Math.max(-1, Math.min(1, samples[Math.floor(i * ratio)]));
      out[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
    }
    return out;
  }

  async function startMic() {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const context = new AudioContext();
    const source = context.createMediaStreamSource(stream);
    // 4096 frames at 48 kHz is ~85 ms per binary frame, well under the 1 s cap.
    const processor = context.createScriptProcessor(4096, 1, 1);
    await socket.request("audio.start", {
      format: "pcm_s16le", sample_rate: SAMPLE_RATE, channels: 1,
    });
    processor.onaudioprocess = (event) => {
      const pcm = toPcm16(event.inputBuffer.getChannelData(0), context.sampleRate);
      socket.sendBinary(pcm.buffer);
    };
    source.connect(processor);
    processor.connect(context.destination);
    mic = { stream, context, processor };
    $("mic").textContent = "Stop microphone";
  }

  function stopMic(sendStop = true) {
    if (!mic) return;
    mic.processor.disconnect();
    for (const track of mic.stream.getTracks()) track.stop();
    mic.context.close();
    mic = null;
    $("mic").textContent = "Start microphone";
    if (sendStop && socket) socket.send("audio.stop", {});
  }

  // ------------------------------------------------------------------ socket
  function makeSocket() {
    socket = new RealtimeClient({ url: socketUrl, log });
    showConnection(socket, $("status"), $("status-detail"));
    socket.on("connected", (payload) => {
      setConnected(true);
      setStatus(`connected as user ${payload.user_id}`);
      socket.setHeartbeat(payload.heartbeat.interval);
      const { limit, window: span, remaining } = payload.rate_limit;
      $("limits").textContent = `${remaining} of ${limit} queries left in ${span} s · ` +
        `heartbeat every ${payload.heartbeat.interval} s`;
      // Unfinished answers from before a reconnect: ask for what was missed.
      for (const [queryId, q] of queries) {
        if (!q.done) socket.send("query.resume", { query_id: queryId, after: q.last });
      }
    });
    socket.on("response.delta", onDelta);
    socket.on("response", onResponse);
    // The agent's callbacks (§7): each answered with the handler's result.
    socket.onRequest("request_available_data", () => ({ items: availableItems() }));
    socket.onRequest("request_api", (payload) => localApi(payload.method, payload.path));
    socket.onRequest("clarification_request", onClarification);
    socket.on("error", onError);
    socket.on("audio.progress", (p) => {
      $("audio-progress").textContent = `${p.ms} ms sent, ${p.dropped} dropped`;
    });
    socket.on("audio.vad", (p) => {
      $("vad").textContent = p.speaking ? `speaking (from ${p.at_ms} ms)` : "silent";
    });
    socket.on("state", ({ state }) => {
      if (state === "live" || state === "connecting") return;
      setConnected(false); // reconnecting or closed: showConnection says which
      stopMic(false);
    });
  }

  function sendQuery(event) {
    event.preventDefault();
    const text = $("query-text").value.trim();
    if (!text || !socket) return;
    socket.request("query", { text })
      .then((frame) => {
        queryBox(frame.payload.query_id, text);
        $("query-text").value = "";
      })
      .catch((error) => setStatus(`query refused: ${error.code} ${error.message || ""}`));
  }

  // ------------------------------------------------------------------ wiring
  document.addEventListener("DOMContentLoaded", () => {
    for (const item of DEFAULT_ITEMS) addItemRow(item);
    $("api").value = JSON.stringify(DEFAULT_API, null, 2);
    $("add-item").onclick = () => addItemRow();
    makeSocket();
    $("connect").onclick = () => socket.connect();
    $("disconnect").onclick = () => { stopMic(); socket.close(); };
    $("query-form").onsubmit = sendQuery;
    $("mic").onclick = () => {
      if (mic) stopMic();
      else startMic().catch((err) => setStatus(`microphone: ${err}`));
    };
  });
})();
