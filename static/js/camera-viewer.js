// The camera viewer page (docs/camera.md): subscribe to one kind of image and the
// poses, draw each JPEG with the markers' ids and distances over it, and acknowledge
// every frame once drawn, so the server sends this browser only as many frames as
// it can show (a slow link or a busy tab sees fewer, fresher frames). The socket
// and the pairing of each `frame` header with its JPEG are static/realtime/client.js's.
import { RealtimeClient, showConnection, socketUrl, ticketUrl } from "../realtime/client.js";

(function () {
  const root = document.getElementById("camera-viewer");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const stream = root.dataset.stream;
  const path = `/ws/streams/${encodeURIComponent(stream)}/`;
  const canvas = $("canvas");
  const context = canvas.getContext("2d");
  const poses = new Map(); // seq -> poses payload, the last few only
  let drawing = Promise.resolve();
  let shown = 0;

  function viewerUrl() {
    if (root.dataset.public === "1" && root.dataset.signedIn !== "1") return socketUrl(path);
    return ticketUrl(path); // signed in: a one-time ticket keeps tokens out of URLs
  }

  const socket = new RealtimeClient({ url: viewerUrl });
  showConnection(socket, $("connection"), $("connection-detail"));

  function subscribe() {
    const kind = $("kind").value;
    const maxFps = $("max-fps").value;
    const payload = { kinds: kind ? [kind] : [], poses: true };
    if (maxFps) payload.max_fps = Number(maxFps);
    socket.send("stream.subscribe", payload);
  }

  function drawOverlay(payload) {
    if (!payload || !$("overlay").checked) return;
    const scale = Math.max(canvas.width / 640, 1);
    context.font = `${Math.round(14 * scale)}px system-ui, sans-serif`;
    context.lineWidth = 3 * scale;
    for (const marker of payload.markers) {
      const x = marker.corners.reduce((sum, c) => sum + c[0], 0) / 4;
      const y = marker.corners.reduce((sum, c) => sum + c[1], 0) / 4;
      const label = `#${marker.id} ${marker.distance_m.toFixed(2)} m`;
      context.strokeStyle = "rgba(0, 0, 0, 0.8)";
      context.fillStyle = "#fff";
      context.strokeText(label, x + 6, y - 6);
      context.fillText(label, x + 6, y - 6);
    }
  }

  function showMarkers(payload) {
    const body = $("markers").tBodies[0];
    body.replaceChildren();
    for (const marker of payload.markers) {
      const row = body.insertRow();
      row.insertCell().textContent = marker.id;
      row.insertCell().textContent = `${marker.distance_m.toFixed(3)} m`;
      row.insertCell().textContent = marker.tvec.map((v) => v.toFixed(3)).join(", ");
    }
  }

  async function draw(frame, data) {
    try {
      const bitmap = await createImageBitmap(new Blob([data], { type: "image/jpeg" }));
      if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
        canvas.width = bitmap.width;
        canvas.height = bitmap.height;
      }
      context.drawImage(bitmap, 0, 0);
      bitmap.close();
      drawOverlay(poses.get(frame.seq));
      shown += 1;
      $("seq").textContent = frame.seq;
      const latency = Date.now() / 1000 - frame.captured_at;
      $("latency").textContent = `${Math.max(0, latency * 1000).toFixed(0)} ms`;
    } finally {
      // Acknowledge even a frame that failed to decode: it was received.
      socket.ack(frame.seq, frame.kind);
    }
  }

  socket.on("stream.info", (info) => {
    canvas.width = info.width;
    canvas.height = info.height;
    subscribe();
  });
  socket.on("binary", ({ data, header: frame }) => {
    if (!frame) return;
    // One at a time, in order: the acks pace the server to what this tab can draw.
    drawing = drawing.then(() => draw(frame, data));
  });
  socket.on("poses", (payload) => {
    poses.set(payload.seq, payload);
    for (const seq of poses.keys()) {
      if (poses.size <= 30) break;
      poses.delete(seq);
    }
    showMarkers(payload);
  });
  socket.on("error", (payload) => console.warn("camera:", payload.message));

  $("kind").addEventListener("change", subscribe);
  $("max-fps").addEventListener("change", subscribe);
  setInterval(() => {
    $("rate").textContent = shown.toFixed(1);
    shown = 0;
  }, 1000);
  socket.connect();
})();
