// The messenger page (templates/messenger/index.html, docs/messenger.md): the signed-in
// user's conversations with unread badges and who is online, and the open conversation
// with history from REST, live messages from /ws/messenger/, typing, read receipts,
// reactions, edits and deletes. After a reconnect the open conversation is subscribed
// again with `since` = the last seq shown, and messages are keyed by seq, so nothing
// is missed and nothing is shown twice; unconfirmed sends are re-sent with their
// client_id (the server stores each once). The socket, its backoff and the `since`
// of each conversation are static/realtime/client.js's.
import { RealtimeClient, csrfToken, showConnection, ticketUrl } from "../realtime/client.js";

(function () {
  const PATH = "/ws/messenger/";
  const API = "/api/conversations/";
  const NAMES = "/messenger/names/";
  const TYPING_EVERY_MS = 2000; // the contract's throttle: one `typing` per 2 s at most
  const TYPING_SHOW_MS = 5000; // others' indicator fades unless renewed
  const REACTIONS = ["👍", "❤️", "😂"];
  const PAGE = 50;
  const NEAR_BOTTOM_PX = 40; // "at the bottom" tolerance: sub-pixel scroll positions

  const $ = (id) => document.getElementById(id);
  const root = $("messenger");
  if (!root) return;
  const me = Number(root.dataset.userId);
  const names = new Map(
    Object.entries(JSON.parse($("user-names").textContent)).map(([k, v]) => [Number(k), v]),
  );

  const state = {
    conversations: new Map(), // id -> the REST entry, kept current by frames
    order: [], // ids, most recently active first
    online: new Set(),
    open: null, // the open conversation, see openState()
    connected: false,
    reconnected: false, // a system.connected came before: the next one catches up
  };
  let socket = null;

  // ------------------------------------------------------------------ helpers
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text; // never innerHTML: user text
    return node;
  }

  async function api(method, path, body) {
    const options = { method, credentials: "same-origin", headers: {} };
    if (method !== "GET") options.headers["X-CSRFToken"] = csrfToken();
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const reply = await fetch(path, options);
    const data = reply.status === 204 ? {} : await reply.json().catch(() => ({}));
    if (!reply.ok) {
      const detail = data.detail || Object.entries(data).map(([k, v]) => `${k}: ${v}`).join("; ");
      throw new Error(detail || `HTTP ${reply.status}`);
    }
    return data;
  }

  function nameOf(userId) {
    if (userId === null || userId === undefined) return "deleted account";
    return names.get(userId) || `user ${userId}`;
  }

  function other(conv) {
    return conv.member_ids.find((id) => id !== me);
  }

  function titleOf(conv) {
    if (conv.kind === "direct") return nameOf(other(conv));
    if (conv.title) return conv.title;
    return conv.member_ids.filter((id) => id !== me).map(nameOf).join(", ") || "Group";
  }

  // The reader's local time of a UTC timestamp, as 09:41.
  function clock(timestamp) {
    return new Date(timestamp).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function clientId() {
    return `m${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
  }

  // Notes beside the connection state (its own element: showConnection's).
  function status(text) { $("note").textContent = text; }

  function startStatus(text) { $("start-status").textContent = text; }

  // ------------------------------------------------------------------ the list
  async function loadConversations() {
    const entries = await api("GET", API);
    state.conversations = new Map(entries.map((entry) => [entry.id, entry]));
    state.order = entries.map((entry) => entry.id);
    const open = state.open && state.conversations.get(state.open.id);
    if (open) open.unread = 0; // being read here
    renderList();
    learnNames(entries.flatMap((entry) => entry.member_ids));
  }

  // Names of members met since the page was served (a new contact's conversation).
  let namesAsked = false;
  async function learnNames(ids) {
    if (namesAsked || ids.every((id) => names.has(id))) return;
    namesAsked = true;
    try {
      const found = await api("GET", NAMES);
      for (const [id, name] of Object.entries(found)) names.set(Number(id), name);
      renderList();
      if (state.open) for (const entry of state.open.bySeq.values()) {
        entry.item.querySelector(".sender").textContent =
          entry.payload.sender_id === me ? "you" : nameOf(entry.payload.sender_id);
      }
    } catch (err) { /* names stay ids */ }
    namesAsked = false;
  }

  async function refreshConversation(id) {
    try {
      const entry = await api("GET", `${API}${id}/`);
      const known = state.conversations.get(id);
      if (state.open && state.open.id === id) entry.unread = 0;
      state.conversations.set(id, Object.assign(known || {}, entry));
      if (!known) state.order.unshift(id);
      renderList();
      learnNames(entry.member_ids);
    } catch (err) { // gone or no longer ours
      forgetConversation(id);
    }
  }

  function forgetConversation(id) {
    state.conversations.delete(id);
    state.order = state.order.filter((other) => other !== id);
    if (state.open && state.open.id === id) closeConversation();
    renderList();
  }

  function toTop(id) {
    state.order = [id, ...state.order.filter((other) => other !== id)];
  }

  function previewOf(conv) {
    const last = conv.last_message;
    if (!last) return "no messages yet";
    const who = last.sender_id === me ? "you" : nameOf(last.sender_id);
    return `${who}: ${last.deleted_at ? "message deleted" : last.content}`;
  }

  function renderList() {
    const list = $("conversations");
    list.replaceChildren();
    for (const id of state.order) {
      const conv = state.conversations.get(id);
      if (!conv) continue;
      const item = el("li", "conversation-item");
      item.dataset.conversationId = id;
      item.tabIndex = 0;
      if (state.open && state.open.id === id) item.classList.add("active");
      const name = el("span", "name");
      if (conv.kind === "direct") {
        const dot = el("span", "dot");
        if (state.online.has(other(conv))) dot.classList.add("online");
        dot.title = state.online.has(other(conv)) ? "online" : "offline";
        name.append(dot);
      }
      name.append(document.createTextNode(titleOf(conv)));
      const unread = state.open && state.open.id === id ? 0 : conv.unread || 0;
      const badge = el("span", "badge unread", String(unread));
      badge.hidden = !unread;
      item.append(name, badge, el("span", "preview", previewOf(conv)));
      item.addEventListener("click", () => openConversation(id));
      item.addEventListener("keydown", (event) => {
        if (event.key === "Enter") openConversation(id);
      });
      list.append(item);
    }
    $("no-conversations").hidden = state.order.length > 0;
    if (state.open) renderPresence();
  }

  // Ids typed as numbers, or usernames of people already met (the REST API has no
  // user lookup, so a new contact is named by id).
  function parseUsers(text) {
    const ids = [];
    const byName = new Map([...names].map(([id, name]) => [name.toLowerCase(), id]));
    for (const raw of text.split(",").map((part) => part.trim()).filter(Boolean)) {
      if (/^\d+$/.test(raw)) ids.push(Number(raw));
      else if (byName.has(raw.toLowerCase())) ids.push(byName.get(raw.toLowerCase()));
      else throw new Error(`unknown username "${raw}": use their user id`);
    }
    return ids;
  }

  async function startConversation(body) {
    const entry = await api("POST", API, body);
    state.conversations.set(entry.id, entry);
    toTop(entry.id);
    renderList();
    openConversation(entry.id);
  }

  // ------------------------------------------------------------------ conversation
  function openState(id) {
    return {
      id,
      bySeq: new Map(), // seq -> {payload, item}
      seqOf: new Map(), // message_id -> seq
      oldestSeq: null,
      hasOlder: false,
      loadingOlder: false,
      ready: false, // the first history page is shown
      subscribed: false,
      readSent: 0, // highest seq we sent a receipt for
      othersRead: 0, // highest seq another member's receipt reached
      outbox: new Map(), // client_id -> {payload, item} not yet seen stored
      typing: new Map(), // user_id -> timer
    };
  }

  async function openConversation(id) {
    if (state.open && state.open.id === id) {
      root.classList.add("open");
      return;
    }
    if (state.open) leaveOpen();
    const conv = state.conversations.get(id);
    if (!conv) return;
    const open = openState(id);
    state.open = open;
    socket.seqs.forget(id); // `since` starts again from the history shown now
    if (location.hash !== `#${id}`) history.replaceState(null, "", `#${id}`);
    conv.unread = 0;
    root.classList.add("open");
    $("conversation").hidden = false;
    $("message-list").replaceChildren();
    $("typing").textContent = "";
    $("conversation-title").textContent = titleOf(conv);
    renderList();
    try {
      const page = await api("GET", `${API}${id}/messages/?limit=${PAGE}`);
      if (state.open !== open) return; // another was opened meanwhile
      for (const payload of page.results) addMessage(payload);
      open.hasOlder = page.previous !== null;
      $("older").hidden = !open.hasOlder;
      scrollToBottom();
    } catch (err) {
      status(`history: ${err.message}`);
    }
    if (state.open !== open) return;
    open.ready = true; // from here a (re)connect subscribes with since = the last seq
    subscribe();
    $("compose-text").focus();
  }

  function leaveOpen() {
    const open = state.open;
    for (const timer of open.typing.values()) clearTimeout(timer);
    if (state.connected) socket.send("conversation.unsubscribe", { conversation_id: open.id });
    state.open = null;
    $("conversation").dataset.state = "closed";
  }

  function closeConversation() {
    if (state.open) leaveOpen();
    root.classList.remove("open");
    $("conversation").hidden = true;
    history.replaceState(null, "", location.pathname + location.search);
    renderList();
  }

  // Subscribe with `since` = the last seq shown: the server replays what came after
  // it, then streams; addMessage drops any seq already shown.
  async function subscribe() {
    const open = state.open;
    if (!open || !open.ready || !state.connected) return; // system.connected will
    open.subscribed = false;
    $("conversation").dataset.state = "syncing";
    try {
      await socket.request("conversation.subscribe", {
        conversation_id: open.id, since: socket.since(open.id),
      });
    } catch (err) {
      if (err.code === "NOT_FOUND") forgetConversation(open.id);
      else if (err.code !== "CLOSED") status(`subscribe: ${err.code || err.message}`);
    }
  }

  function onSynced(p) {
    const open = state.open;
    if (!open || p.conversation_id !== open.id) return;
    open.subscribed = true;
    $("conversation").dataset.state = "live"; // also tells tests it is listening
    // Sends made while offline (or whose confirmation the drop swallowed) go again;
    // a client_id the server already stored answers with the original.
    for (const [id, entry] of open.outbox) socket.send("message.send", entry.payload, `send-${id}`);
    markRead();
  }

  function scrollToBottom() {
    const box = $("messages");
    box.scrollTop = box.scrollHeight;
  }

  function atBottom() {
    const box = $("messages");
    return box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM_PX;
  }

  function messageItem(payload) {
    const mine = payload.sender_id === me;
    const item = el("li", mine ? "message mine" : "message");
    const meta = el("div", "meta");
    meta.append(el("span", "sender", mine ? "you" : nameOf(payload.sender_id)));
    meta.append(el("span", "time", payload.created_at ? ` · ${clock(payload.created_at)}` : ""));
    meta.append(el("span", "edited"));
    item.append(meta, el("div", "bubble"), el("div", "actions"), el("div", "receipt"));
    return item;
  }

  // Draws a message's text, reactions and buttons from its payload.
  function drawMessage(entry) {
    const { payload, item } = entry;
    const mine = payload.sender_id === me;
    const deleted = Boolean(payload.deleted_at);
    item.dataset.seq = String(payload.seq);
    item.dataset.messageId = String(payload.message_id);
    item.classList.toggle("deleted", deleted);
    item.querySelector(".bubble").textContent = deleted ? "message deleted" : payload.content;
    item.querySelector(".edited").textContent = payload.edited_at && !deleted ? " · edited" : "";
    const actions = item.querySelector(".actions");
    actions.replaceChildren();
    if (deleted) return;
    const counts = payload.reactions || {};
    for (const emoji of REACTIONS) {
      const count = counts[emoji] || 0;
      const button = el("button", "reaction");
      button.append(el("span", "emoji", emoji));
      if (count) button.append(document.createTextNode(` ${count}`));
      button.type = "button";
      button.dataset.emoji = emoji;
      button.classList.toggle("has-count", count > 0);
      button.addEventListener("click", () => socket.send("message.react", {
        message_id: payload.message_id, emoji,
      }));
      actions.append(button);
    }
    for (const [emoji, count] of Object.entries(counts)) {
      if (!REACTIONS.includes(emoji) && count) actions.append(el("span", "reaction", `${emoji} ${count}`));
    }
    if (mine) {
      const edit = el("button", "edit", "edit");
      edit.type = "button";
      edit.addEventListener("click", () => startEdit(entry));
      const remove = el("button", "delete", "delete");
      remove.type = "button";
      remove.addEventListener("click", () => confirmDelete(remove, payload.message_id));
      actions.append(edit, remove);
    }
  }

  function startEdit(entry) {
    const bubble = entry.item.querySelector(".bubble");
    const box = el("input", "edit-box");
    box.value = entry.payload.content;
    box.setAttribute("aria-label", "Edit message");
    bubble.replaceChildren(box);
    box.focus();
    box.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        const content = box.value.trim();
        if (content && content !== entry.payload.content) {
          socket.send("message.edit", { message_id: entry.payload.message_id, content }, `edit-${entry.payload.message_id}`);
        }
        drawMessage(entry);
      } else if (event.key === "Escape") {
        drawMessage(entry);
      }
    });
    box.addEventListener("blur", () => drawMessage(entry));
  }

  // Two clicks delete: no modal dialog, and a stray tap does nothing.
  function confirmDelete(button, messageId) {
    if (button.dataset.armed) {
      socket.send("message.delete", { message_id: messageId }, `delete-${messageId}`);
      return;
    }
    button.dataset.armed = "1";
    button.textContent = "delete?";
    setTimeout(() => { delete button.dataset.armed; button.textContent = "delete"; }, 3000);
  }

  // One message, from history, a replay or live; a seq already shown is dropped.
  function addMessage(payload, { live = false } = {}) {
    const open = state.open;
    if (payload.client_id && open.outbox.has(payload.client_id)) {
      open.outbox.get(payload.client_id).item.remove();
      open.outbox.delete(payload.client_id);
    }
    if (open.bySeq.has(payload.seq)) return false;
    const stick = live && atBottom();
    const entry = { payload: { reactions: {}, ...payload }, item: messageItem(payload) };
    drawMessage(entry);
    open.bySeq.set(payload.seq, entry);
    open.seqOf.set(payload.message_id, payload.seq);
    const list = $("message-list");
    // Keep seq order whatever the arrival order (older pages are prepended).
    const after = [...list.children].find((node) => !node.classList.contains("pending")
      && Number(node.dataset.seq) > payload.seq);
    list.insertBefore(entry.item, after || list.querySelector(".pending"));
    socket.seqs.advance(open.id, payload.seq);
    if (open.oldestSeq === null || payload.seq < open.oldestSeq) open.oldestSeq = payload.seq;
    if (live && (stick || payload.sender_id === me)) scrollToBottom();
    return true;
  }

  function renderReceipt() {
    const open = state.open;
    for (const node of document.querySelectorAll("#message-list .receipt")) node.textContent = "";
    let newestMine = null;
    for (const [seq, entry] of open.bySeq) {
      if (entry.payload.sender_id === me && (!newestMine || seq > newestMine.payload.seq)) newestMine = entry;
    }
    if (newestMine && open.othersRead >= newestMine.payload.seq) {
      newestMine.item.querySelector(".receipt").textContent = "read";
    }
  }

  // A receipt for the newest message, when it is on screen and someone else wrote it
  // (own messages are read by definition).
  function markRead() {
    const open = state.open;
    if (!open || !open.subscribed || document.hidden || !atBottom()) return;
    let newest = null;
    for (const [seq, entry] of open.bySeq) {
      if (entry.payload.sender_id !== me && (!newest || seq > newest.payload.seq)) newest = entry;
    }
    if (!newest || newest.payload.seq <= open.readSent) return;
    const conv = state.conversations.get(open.id);
    if (conv && newest.payload.seq <= conv.last_read_seq) return;
    open.readSent = newest.payload.seq;
    socket.send("message.read", { message_id: newest.payload.message_id });
  }

  function renderPresence() {
    const conv = state.open && state.conversations.get(state.open.id);
    if (!conv) return;
    $("conversation-title").textContent = titleOf(conv);
    let text = "";
    if (conv.kind === "direct") text = state.online.has(other(conv)) ? "online" : "offline";
    else text = `${conv.member_ids.length} members`;
    $("conversation-presence").textContent = text;
  }

  function renderTyping() {
    const ids = [...state.open.typing.keys()];
    $("typing").textContent = ids.length
      ? `${ids.map(nameOf).join(", ")} ${ids.length > 1 ? "are" : "is"} typing…`
      : "";
  }

  // Edits, deletes and reactions to messages already shown are not replayed after a
  // reconnect (`since` replays newer seqs only): the newest page brings them.
  async function refreshShown(open) {
    try {
      const page = await api("GET", `${API}${open.id}/messages/?limit=${PAGE}`);
      for (const payload of page.results) {
        const entry = state.open === open && open.bySeq.get(payload.seq);
        if (!entry) continue; // not shown yet: the subscription's replay brings it
        entry.payload = payload;
        drawMessage(entry);
      }
    } catch (err) { /* the next reconnect tries again */ }
  }

  async function loadOlder() {
    const open = state.open;
    if (!open || !open.hasOlder || open.loadingOlder || open.oldestSeq === null) return;
    open.loadingOlder = true;
    const box = $("messages");
    const fromBottom = box.scrollHeight - box.scrollTop;
    try {
      const page = await api("GET", `${API}${open.id}/messages/?before=${open.oldestSeq}&limit=${PAGE}`);
      if (state.open !== open) return;
      for (const payload of page.results) addMessage(payload);
      open.hasOlder = page.previous !== null;
      $("older").hidden = !open.hasOlder;
      box.scrollTop = box.scrollHeight - fromBottom; // the reader keeps their place
      renderReceipt();
    } catch (err) {
      status(`history: ${err.message}`);
    } finally {
      open.loadingOlder = false;
    }
  }

  // ------------------------------------------------------------------ sending
  let typingSentAt = 0;

  function send() {
    const open = state.open;
    const box = $("compose-text");
    const content = box.value.trim();
    if (!open || !content) return;
    const id = clientId();
    const payload = { conversation_id: open.id, content, client_id: id };
    const item = messageItem({ sender_id: me, created_at: "" });
    item.classList.add("pending");
    item.querySelector(".bubble").textContent = content;
    $("message-list").append(item);
    open.outbox.set(id, { payload, item });
    // Unsubscribed (still syncing, or offline): the outbox goes after the next sync.
    if (open.subscribed) socket.send("message.send", payload, `send-${id}`);
    typingSentAt = 0; // others drop the indicator when the message arrives
    box.value = "";
    scrollToBottom();
  }

  function onTypingInput() {
    const open = state.open;
    if (!open || !open.subscribed || !$("compose-text").value) return;
    const now = Date.now();
    if (now - typingSentAt < TYPING_EVERY_MS) return;
    typingSentAt = now;
    socket.send("typing", { conversation_id: open.id, is_typing: true });
  }

  // ------------------------------------------------------------------ frames
  function mine(p) { return state.open && p.conversation_id === state.open.id; }

  function onMessageNew(p) {
    const conv = state.conversations.get(p.conversation_id);
    if (conv) {
      conv.last_message = p;
      conv.last_seq = Math.max(conv.last_seq || 0, p.seq);
      toTop(p.conversation_id);
      renderList();
    }
    if (!mine(p)) return;
    if (addMessage(p, { live: true })) {
      state.open.typing.delete(p.sender_id);
      renderTyping();
      renderReceipt();
      markRead();
    }
  }

  function onEdited(p) {
    if (!mine(p)) return;
    const entry = state.open.bySeq.get(p.seq);
    if (!entry) return;
    Object.assign(entry.payload, { content: p.content, edited_at: p.edited_at });
    drawMessage(entry);
    refreshPreview(p.conversation_id, entry.payload);
  }

  function onDeleted(p) {
    if (!mine(p)) return;
    const entry = state.open.bySeq.get(p.seq);
    if (!entry) return;
    Object.assign(entry.payload, { content: "", deleted_at: p.deleted_at, reactions: {} });
    drawMessage(entry);
    refreshPreview(p.conversation_id, entry.payload);
  }

  function refreshPreview(conversationId, payload) {
    const conv = state.conversations.get(conversationId);
    if (conv && conv.last_message && conv.last_message.message_id === payload.message_id) {
      conv.last_message = { ...payload };
      renderList();
    }
  }

  function onReactions(p) {
    if (!mine(p)) return;
    const seq = state.open.seqOf.get(p.message_id);
    const entry = seq !== undefined && state.open.bySeq.get(seq);
    if (!entry) return;
    entry.payload.reactions = p.reactions;
    drawMessage(entry);
  }

  function onRead(p) {
    const conv = state.conversations.get(p.conversation_id);
    if (p.user_id === me) { // another of my devices read it
      if (conv) {
        const seq = mine(p) ? state.open.seqOf.get(p.message_id) : undefined;
        if (seq !== undefined) conv.last_read_seq = Math.max(conv.last_read_seq, seq);
        if (mine(p)) conv.unread = 0;
        renderList();
      }
      return;
    }
    if (!mine(p)) return;
    const seq = state.open.seqOf.get(p.message_id);
    if (seq === undefined) return; // older than the pages shown
    state.open.othersRead = Math.max(state.open.othersRead, seq);
    renderReceipt();
  }

  function onTyping(p) {
    if (!mine(p) || p.user_id === me) return;
    const typing = state.open.typing;
    clearTimeout(typing.get(p.user_id));
    if (p.is_typing) {
      typing.set(p.user_id, setTimeout(() => { typing.delete(p.user_id); renderTyping(); }, TYPING_SHOW_MS));
    } else {
      typing.delete(p.user_id);
    }
    renderTyping();
  }

  function onActivity(p) {
    const conv = state.conversations.get(p.conversation_id);
    if (!conv) { refreshConversation(p.conversation_id); return; }
    if (mine(p)) return; // its messages come on the subscription
    conv.unread = p.unread;
    if (p.seq > (conv.last_seq || 0)) {
      conv.last_seq = p.seq;
      toTop(p.conversation_id);
      refreshConversation(p.conversation_id); // the preview: activity carries no text
    }
    renderList();
  }

  function onError(p, frame) {
    const id = frame.request_id || "";
    const open = state.open;
    if (id.startsWith("send-") && open) {
      const key = id.slice(5);
      const entry = open.outbox.get(key);
      if (entry && p.code === "RATE_LIMITED") { // still pending: again when allowed
        setTimeout(() => {
          if (state.open === open && open.subscribed && open.outbox.has(key)) {
            socket.send("message.send", entry.payload, id);
          }
        }, (p.retry_after || 1) * 1000);
      } else if (entry) {
        entry.item.classList.add("failed");
        entry.item.querySelector(".meta").textContent = `not sent: ${p.message}`;
        open.outbox.delete(key);
      }
    }
    if (!frame.request_id || !frame.request_id.startsWith("c-")) status(`${p.code}: ${p.message}`);
  }

  function connect() {
    // ?debug on the page's URL logs every frame to the console and lets the console
    // (or a test) reach the socket as window.messengerSocket.
    const debug = new URLSearchParams(location.search).has("debug");
    const log = debug
      ? (direction, frame) => console.debug(direction, JSON.stringify(frame))
      : null;
    socket = new RealtimeClient({ url: () => ticketUrl(PATH), log });
    if (debug) window.messengerSocket = socket;
    showConnection(socket, $("connection"), $("connection-detail"));
    socket.on("system.connected", (p) => {
      state.connected = true;
      state.online = new Set(p.online || []);
      status("");
      renderList();
      if (state.reconnected) { // catch up on what happened while offline
        loadConversations().catch((err) => status(`list: ${err.message}`));
        if (state.open && state.open.ready) refreshShown(state.open);
      }
      state.reconnected = true;
      if (state.open) subscribe();
    });
    socket.on("state", (p) => {
      if (p.state !== "reconnecting" && p.state !== "closed") return;
      state.connected = false;
      if (state.open) state.open.subscribed = false;
      $("conversation").dataset.state = "offline";
      if (p.code === 4008 || p.code === 4001) status("signed out: reload the page");
    });
    socket.on("conversation.synced", onSynced);
    socket.on("message.new", onMessageNew);
    socket.on("message.edited", onEdited);
    socket.on("message.deleted", onDeleted);
    socket.on("message.reactions", onReactions);
    socket.on("message.read", onRead);
    socket.on("typing", onTyping);
    socket.on("conversation.activity", onActivity);
    socket.on("conversation.created", (p) => refreshConversation(p.conversation_id));
    socket.on("conversation.updated", (p) => refreshConversation(p.conversation_id));
    socket.on("member.added", (p) => refreshConversation(p.conversation_id));
    socket.on("member.removed", (p) => {
      if (p.user_id === me) forgetConversation(p.conversation_id);
      else refreshConversation(p.conversation_id);
    });
    socket.on("conversation.deleted", (p) => forgetConversation(p.conversation_id));
    socket.on("user.online", (p) => { state.online.add(p.user_id); renderList(); });
    socket.on("user.offline", (p) => { state.online.delete(p.user_id); renderList(); });
    socket.on("error", onError);
    socket.connect();
  }

  // ------------------------------------------------------------------ wiring
  $("direct-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    startStatus("");
    try {
      const ids = parseUsers($("direct-user").value);
      if (ids.length !== 1) throw new Error("one user");
      await startConversation({ kind: "direct", member_ids: ids });
      $("direct-user").value = "";
    } catch (err) {
      startStatus(`Could not start: ${err.message}`);
    }
  });
  $("group-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    startStatus("");
    try {
      const ids = parseUsers($("group-members").value);
      await startConversation({ kind: "group", title: $("group-title").value.trim(), member_ids: ids });
      $("group-title").value = "";
      $("group-members").value = "";
    } catch (err) {
      startStatus(`Could not create: ${err.message}`);
    }
  });
  $("compose").addEventListener("submit", (event) => { event.preventDefault(); send(); });
  $("compose-text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  $("compose-text").addEventListener("input", onTypingInput);
  $("messages").addEventListener("scroll", () => {
    if ($("messages").scrollTop < NEAR_BOTTOM_PX) loadOlder();
    markRead();
  });
  document.addEventListener("visibilitychange", markRead);
  $("back").addEventListener("click", closeConversation);

  loadConversations()
    .then(() => {
      const id = location.hash.slice(1);
      if (state.conversations.has(id)) openConversation(id);
    })
    .catch((err) => status(`list: ${err.message}`));
  connect();
})();
