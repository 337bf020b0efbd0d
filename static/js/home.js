// The home page's server line: /healthz asked every 10 s. A socket would need a
// signed-in user (/ws/echo/), and a visitor may have none; /healthz needs nothing.
const PERIOD_MS = 10000;
const state = document.getElementById("health");
const detail = document.getElementById("health-detail");

async function check() {
  const started = performance.now();
  try {
    const reply = await fetch("/healthz", { cache: "no-store" });
    const ms = Math.round(performance.now() - started);
    state.dataset.state = reply.ok ? "live" : "closed";
    state.textContent = reply.ok ? "reachable" : `answers HTTP ${reply.status}`;
    detail.textContent = reply.ok ? `/healthz in ${ms} ms` : "";
  } catch (err) {
    state.dataset.state = "closed";
    state.textContent = "unreachable";
    detail.textContent = "retrying every 10 s";
  }
}

check();
setInterval(check, PERIOD_MS);
