// The `node_ws` target: a plain Node.js `ws` server with the seed baseline's subset
// (bench/baselines/fastapi_manager.py), the single-event-loop ceiling.
//
//   node bench/node/server.mjs --port 8001 [--host 127.0.0.1]
//
// /ws/sessions/<code>/?participant_id=&nickname= : session.welcome, then
// participant.joined to the rest of the room (as the seed's connect() does),
// chat.send -> chat.message to the whole room (seq from an in-memory counter),
// ping -> pong with the same payload. No storage, no authentication, no camera.
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { WebSocketServer } from "ws";

const SESSION_PATH = /^\/ws\/sessions\/([^/]+)\/$/;

const rooms = new Map(); // code -> Map(participant_id -> socket)
const seqs = new Map(); // code -> last seq

const envelope = (type, payload, requestId) => {
  const msg = { type, payload, timestamp: new Date().toISOString() };
  if (requestId) msg.request_id = requestId;
  return msg;
};

// Encode once, send the same bytes to everyone (text frames); no backpressure, as the
// seed's loop has none.
function broadcast(room, msg, exclude) {
  const data = Buffer.from(JSON.stringify(msg));
  for (const [pid, ws] of room) {
    if (pid !== exclude && ws.readyState === ws.OPEN) ws.send(data, { binary: false });
  }
}

function onSession(ws, code, query) {
  const pid = query.get("participant_id") || randomUUID();
  const nickname = query.get("nickname") || pid.slice(0, 8);
  let room = rooms.get(code);
  if (!room) {
    room = new Map();
    rooms.set(code, room);
  }
  room.set(pid, ws);
  const welcome = {
    session: { code, title: code, status: "open" },
    you: { participant_id: pid, nickname, role: "guest" },
    last_seq: seqs.get(code) || 0,
  };
  ws.send(JSON.stringify(envelope("session.welcome", welcome)));
  broadcast(room, envelope("participant.joined", { participant_id: pid, nickname }), pid);

  ws.on("message", (data, isBinary) => {
    let msg;
    try {
      msg = JSON.parse(data.toString());
      if (isBinary || typeof msg.type !== "string") throw new Error("not an envelope");
    } catch {
      const err = { code: "INVALID_JSON", message: "not a JSON envelope", retry_after: null };
      ws.send(JSON.stringify(envelope("error", err)));
      return;
    }
    const payload = msg.payload || {};
    if (msg.type === "chat.send") {
      const seq = (seqs.get(code) || 0) + 1;
      seqs.set(code, seq);
      const out = {
        seq,
        message_id: randomUUID(),
        participant_id: pid,
        nickname,
        content: String(payload.content ?? ""),
        created_at: new Date().toISOString(),
      };
      if (payload.client_id) out.client_id = payload.client_id;
      broadcast(room, envelope("chat.message", out));
    } else if (msg.type === "ping") {
      ws.send(JSON.stringify(envelope("pong", payload, msg.request_id)));
    } else {
      const err = { code: "UNKNOWN_TYPE", message: msg.type, retry_after: null };
      ws.send(JSON.stringify(envelope("error", err, msg.request_id)));
    }
  });
  ws.on("error", () => {});
  ws.on("close", () => {
    if (room.get(pid) === ws) room.delete(pid);
    if (!room.size) rooms.delete(code);
  });
}

function main() {
  const { values } = parseArgs({
    options: { host: { type: "string", default: "127.0.0.1" }, port: { type: "string" } },
  });
  if (!values.port) throw new Error("usage: server.mjs --port N [--host H]");
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  const server = createServer((req, res) => {
    res.writeHead(404).end();
  });
  server.on("upgrade", (req, socket, head) => {
    const url = new URL(req.url, "http://localhost");
    const m = SESSION_PATH.exec(url.pathname);
    if (!m) {
      socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => onSession(ws, m[1], url.searchParams));
  });
  // The same listen backlog as the other targets (uvicorn_command, daphne's endpoint).
  server.listen({ host: values.host, port: Number(values.port), backlog: 2048 });
  // Sockets die with the process: nothing is stored, nothing to flush.
  process.on("SIGTERM", () => process.exit(0));
  process.on("SIGINT", () => process.exit(0));
}

main();
