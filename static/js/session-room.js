// The live-session page (docs/sessions.md): join with a nickname (or as the signed-in
// user), then chat, ask and upvote questions, see who is here and who is typing.
// Reconnects with ?since=<last seq seen> so nothing said while offline is missed, and
// re-sends unconfirmed messages with their client_id (the server stores each once).
// The socket, its backoff and the seq bookkeeping are static/realtime/client.js's.
import {
  RealtimeClient, csrfToken, showConnection, socketUrl, ticketUrl,
} from "../realtime/client.js";

{
  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text; // never innerHTML: user text
    return node;
  }

  // ------------------------------------------------------------------ index page
  function initIndex() {
    const form = $("join-code-form");
    if (!form) return;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const code = $("join-code").value.replace(/[\s-]/g, "").toUpperCase();
      if (code) location.href = `/sessions/${encodeURIComponent(code)}/`;
    });
    const create = $("create-form");
    if (!create) return;
    create.addEventListener("submit", async (event) => {
      event.preventDefault();
      const reply = await fetch("/api/sessions/", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({
          title: $("create-title").value,
          moderated: $("create-moderated").checked,
        }),
      });
      const body = await reply.json().catch(() => ({}));
      if (!reply.ok) {
        $("index-status").textContent = `Could not open: ${JSON.stringify(body)}`;
        return;
      }
      location.href = body.page_url;
    });
  }

  // ------------------------------------------------------------------ room page
  function initRoom(root) {
    const code = root.dataset.code;
    const signedIn = root.dataset.signedIn === "1";
    const storeKey = `rt-session:${code}`;
    const state = {
      you: null,
      online: new Map(),
      unlisted: 0, // online but not in a big room's welcome list
      typing: new Map(),
      outbox: new Map(), // client_id -> [type, payload] not yet seen stored
      closed: false,
    };
    let typingSent = 0;
    let typingTimer = null;

    // Notes beside the connection state: errors, a closed session, how to join.
    const status = (text) => { $("room-note").textContent = text; };

    function savedGuest() {
      try {
        const guest = JSON.parse(localStorage.getItem(storeKey) || "null");
        if (guest && guest.expires_at > Date.now() / 1000 + 30) return guest;
      } catch (err) { /* a corrupt entry: join again */ }
      return null;
    }

    async function join(nickname) {
      const reply = await fetch(`/api/sessions/${code}/join/`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ nickname }),
      });
      const body = await reply.json().catch(() => ({}));
      if (!reply.ok) throw new Error(body.detail || JSON.stringify(body));
      const guest = {
        token: body.token,
        participant_id: body.participant_id,
        expires_at: Date.now() / 1000 + body.expires_in,
      };
      localStorage.setItem(storeKey, JSON.stringify(guest));
      return guest;
    }

    // Each attempt: a fresh credential, and `since` = the last seq shown, so the
    // server replays exactly what was missed.
    async function roomUrl() {
      const path = `/ws/sessions/${code}/`;
      const since = socket.since(code);
      if (signedIn) return ticketUrl(path, { params: { since } });
      const guest = savedGuest();
      if (!guest) throw new Error("no participant token");
      return socketUrl(path, { token: guest.token, since });
    }

    const socket = new RealtimeClient({ url: roomUrl });
    showConnection(socket, $("connection"), $("connection-detail"));

    // Someone left: from the list, or one fewer of those the welcome only counted.
    function forget(participantId) {
      if (!state.online.delete(participantId) && state.unlisted > 0) state.unlisted -= 1;
    }

    // Notices carry how many are online as they were sent: that count wins.
    function recount(count) {
      if (typeof count === "number") state.unlisted = Math.max(0, count - state.online.size);
    }

    // ---------------------------------------------------------------- rendering
    // The reader's local time of a UTC timestamp, as 09:41.
    function clock(timestamp) {
      return new Date(timestamp).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    }

    function renderOnline() {
      const list = $("online");
      list.replaceChildren();
      for (const person of state.online.values()) {
        const item = el("li", "person", person.nickname);
        item.dataset.participantId = person.participant_id;
        if (person.role !== "guest") item.append(el("span", "status", ` (${person.role})`));
        list.append(item);
      }
      $("online-count").textContent = String(state.online.size + state.unlisted);
    }

    function renderTyping() {
      const names = [...state.typing.values()].map((entry) => entry.nickname);
      $("typing").textContent = names.length ? `${names.join(", ")} typing…` : "";
    }

    function messageItem(p, kind) {
      const item = el("li", kind === "question" ? "question" : "message");
      item.id = `m-${p.message_id}`;
      item.dataset.seq = p.seq === null ? "" : String(p.seq);
      if (state.you && p.participant_id === state.you.participant_id) item.classList.add("mine");
      item.append(el("span", "nickname", p.nickname));
      if (p.created_at) {
        const time = el("time", "time", clock(p.created_at));
        time.dateTime = p.created_at;
        item.append(time);
      }
      item.append(el("span", "content", p.hidden ? "(hidden by the host)" : p.content));
      if (p.hidden) item.classList.add("hidden-message");
      if (kind === "question") {
        item.append(el("span", "upvotes status", ` ▲ ${p.upvotes}`));
        if (p.answered) item.classList.add("answered");
        const up = el("button", "small upvote", "▲");
        up.type = "button";
        up.addEventListener("click", () => socket.send("question.upvote", { message_id: p.message_id }));
        item.append(up);
        const answer = el("button", "small host-only answer", "answered");
        answer.type = "button";
        answer.addEventListener("click", () => socket.send("question.answer", { message_id: p.message_id }));
        item.append(answer);
      }
      const hide = el("button", "small host-only hide", "hide");
      hide.type = "button";
      hide.addEventListener("click", () => socket.send("message.hide", { message_id: p.message_id }));
      item.append(hide);
      return item;
    }

    function stored(p, kind) {
      if (p.client_id) state.outbox.delete(p.client_id);
      if (!socket.accept(code, p.seq)) return; // seen: a replay overlapping the live
      const pending = $(`m-${p.message_id}`);
      if (pending) pending.remove(); // an approved question leaves the queue
      const list = kind === "question" ? $("questions") : $("messages");
      list.append(messageItem(p, kind));
      if (kind !== "question") list.scrollTop = list.scrollHeight;
    }

    function flushOutbox() {
      for (const [type, payload] of state.outbox.values()) socket.send(type, payload);
    }

    function post(type, content) {
      const clientId = `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
      const payload = { content, client_id: clientId };
      state.outbox.set(clientId, [type, payload]);
      socket.send(type, payload); // if offline, re-sent after the next session.synced
    }

    // ---------------------------------------------------------------- socket
    function listen() {
      socket.on("session.welcome", (p) => {
        state.you = p.you;
        document.body.classList.toggle("is-host", p.you.role === "host");
        $("session-title").textContent = p.session.title;
        $("session-status").textContent = p.session.status;
        state.online = new Map(p.online.map((person) => [person.participant_id, person]));
        // A big room's welcome lists only some of who is online; the rest are counted.
        state.unlisted = Math.max(0, (p.online_count ?? p.online.length) - state.online.size);
        renderOnline();
        $("join-panel").hidden = true;
        $("room-panel").hidden = false;
        $("you").textContent = p.you.nickname;
        status("");
      });
      socket.on("session.synced", (p) => {
        socket.seqs.advance(code, p.last_seq);
        flushOutbox();
      });
      socket.on("chat.message", (p) => stored(p, "chat"));
      socket.on("question.asked", (p) => stored(p, "question"));
      socket.on("question.pending", (p) => {
        if ($(`m-${p.message_id}`)) return;
        if (p.client_id) state.outbox.delete(p.client_id);
        const item = messageItem(p, "pending");
        item.querySelector(".content").textContent = `${p.content} (waiting for approval)`;
        const approve = el("button", "small host-only approve", "approve");
        approve.type = "button";
        approve.addEventListener("click", () => socket.send("question.approve", { message_id: p.message_id }));
        item.append(approve);
        // The host's queue; an asker sees their own question waiting in the list.
        const isHost = state.you && state.you.role === "host";
        $(isHost ? "pending" : "questions").append(item);
      });
      socket.on("question.updated", (p) => {
        const item = $(`m-${p.message_id}`);
        if (!item) return;
        const votes = item.querySelector(".upvotes");
        if (votes) votes.textContent = ` ▲ ${p.upvotes}`;
        item.classList.toggle("answered", p.answered);
      });
      socket.on("message.hidden", (p) => {
        const item = $(`m-${p.message_id}`);
        if (!item) return;
        if (p.seq === null) { item.remove(); return; }
        item.classList.add("hidden-message");
        item.querySelector(".content").textContent = "(hidden by the host)";
      });
      socket.on("typing", (p) => {
        const previous = state.typing.get(p.participant_id);
        if (previous) clearTimeout(previous.timer);
        if (p.is_typing) {
          const timer = setTimeout(() => { state.typing.delete(p.participant_id); renderTyping(); }, 5000);
          state.typing.set(p.participant_id, { nickname: p.nickname, timer });
        } else {
          state.typing.delete(p.participant_id);
        }
        renderTyping();
      });
      socket.on("participant.joined", ({ online_count: count, ...person }) => {
        state.online.set(person.participant_id, person);
        recount(count);
        renderOnline();
      });
      socket.on("participant.updated", (p) => { state.online.set(p.participant_id, p); renderOnline(); });
      socket.on("participant.left", (p) => { forget(p.participant_id); recount(p.online_count); renderOnline(); });
      // Joins and leaves batched during a join storm (may name us: a no-op, like a
      // join of someone the welcome already listed).
      socket.on("participants.changed", (p) => {
        for (const person of p.joined) state.online.set(person.participant_id, person);
        for (const person of p.left) forget(person.participant_id);
        recount(p.online_count);
        renderOnline();
      });
      socket.on("session.updated", (p) => { $("session-title").textContent = p.title; });
      socket.on("session.closed", () => {
        state.closed = true;
        $("session-status").textContent = "closed";
        for (const id of ["chat-input", "chat-send", "question-input", "question-send"]) $(id).disabled = true;
      });
      socket.on("error", (p) => status(`error ${p.code}: ${p.message}`));
      socket.on("state", (p) => {
        if (p.state !== "closed") return;
        if (p.code === 4010 || state.closed) status("the host closed this session");
        else if (p.code === 4004) status("this session does not exist");
        else if (p.code === 4005) status("you are not a participant of this session");
        else if (p.code === 4001 && !signedIn) {
          localStorage.removeItem(storeKey); // expired: join again
          showJoin();
        }
      });
    }

    function showJoin() {
      $("join-panel").hidden = false;
      $("room-panel").hidden = true;
      status("choose a nickname to join");
    }

    // ---------------------------------------------------------------- forms
    $("join-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      $("join-button").disabled = true;
      try {
        await join($("nickname").value);
        socket.connect();
      } catch (err) {
        status(`could not join: ${err.message}`);
      } finally {
        $("join-button").disabled = false;
      }
    });
    $("chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("chat-input");
      if (!input.value.trim()) return;
      post("chat.send", input.value);
      input.value = "";
      clearTimeout(typingTimer);
      if (typingSent) { socket.send("typing", { is_typing: false }); typingSent = 0; }
    });
    $("chat-input").addEventListener("input", () => {
      const now = Date.now();
      if (now - typingSent > 2000) { socket.send("typing", { is_typing: true }); typingSent = now; }
      clearTimeout(typingTimer);
      typingTimer = setTimeout(() => { socket.send("typing", { is_typing: false }); typingSent = 0; }, 3000);
    });
    $("question-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("question-input");
      if (!input.value.trim()) return;
      post("question.ask", input.value);
      input.value = "";
    });
    $("rename-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("rename-input");
      if (input.value.trim()) socket.send("participant.update", { nickname: input.value });
      input.value = "";
    });
    $("close-session").addEventListener("click", () => {
      if (confirm("Close this session for everyone?")) socket.send("session.close", {});
    });

    listen();
    if (root.dataset.status === "closed") status("the host closed this session");
    else if (signedIn || savedGuest()) socket.connect();
    else showJoin();
  }

  const root = $("session-room");
  if (root) initRoom(root);
  else initIndex();
}
