// A Warren client in plain JavaScript (PROTOCOL.md §1 login, §4 JSON).
// Calls over HTTP: POST /v1/call/{cmd} with the login's token. Pushes over
// one websocket opened with ?format=json: every frame is a text message
// {"seq", "cmd", "body"}.
"use strict";

const $ = (id) => document.getElementById(id);

// Where login, the call gateway and the connector are. Served by Warren,
// endpoints.json says (ports on this page's host); opened from a file, the
// embedded defaults on this machine.
const host = location.hostname || "127.0.0.1";
const endpoints = {
  login: `http://${host}:7000`,
  calls: location.protocol.startsWith("http") ? location.origin : `http://${host}:7006`,
  ws: `ws://${host}:7001/ws`,
};

async function loadEndpoints() {
  if (!location.protocol.startsWith("http")) return;
  const response = await fetch("endpoints.json");
  if (!response.ok) return;
  const e = await response.json();
  const scheme = location.protocol === "https:" ? "s" : "";
  endpoints.login = `http${scheme}://${host}:${e.login_port}`;
  endpoints.ws = `ws${scheme}://${host}:${e.ws_port}${e.ws_path}`;
}

let token = null;

function showError(e) {
  $("error").textContent = e ? String(e.message || e) : "";
}

// The same device id on every visit: the same guest account.
function deviceId() {
  let id = localStorage.getItem("warren-device-id");
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    id = "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    localStorage.setItem("warren-device-id", id);
  }
  return id;
}

// A POST with a JSON body; an error response becomes an Error saying its
// status, code and message.
async function post(url, body, headers = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) {
    throw new Error(`${response.status} ${json.error.code}: ${json.error.message}`);
  }
  return json;
}

// One service call over HTTP.
function call(cmd, body = {}) {
  return post(`${endpoints.calls}/v1/call/${cmd}`, body, { Authorization: `Bearer ${token}` });
}

// ---- the JSON websocket ----

const socket = {
  ws: null,
  nextSeq: 1,
  waiting: new Map(), // seq => {resolve, reject}: one per request in flight
  heartbeat: null,
};

function request(cmd, body = {}) {
  if (!socket.ws || socket.ws.readyState !== WebSocket.OPEN) {
    return Promise.reject(new Error("the socket is not connected"));
  }
  const seq = socket.nextSeq++;
  socket.ws.send(JSON.stringify({ seq, cmd, body }));
  return new Promise((resolve, reject) => socket.waiting.set(seq, { resolve, reject }));
}

function connect() {
  const ws = new WebSocket(`${endpoints.ws}?format=json`);
  socket.ws = ws;
  ws.onopen = async () => {
    try {
      const me = await request(1, { token });
      $("socket").textContent = `Connected as uid ${me.uid}.`;
    } catch (e) {
      showError(e);
    }
  };
  ws.onmessage = (event) => onFrame(JSON.parse(event.data));
  ws.onclose = (event) => {
    clearInterval(socket.heartbeat);
    $("socket").textContent = `Disconnected (close ${event.code}).`;
    for (const { reject } of socket.waiting.values()) reject(new Error("the socket closed"));
    socket.waiting.clear();
  };
  // The connector drops a socket that says nothing for 30 s.
  socket.heartbeat = setInterval(() => request(2).catch(() => {}), 10000);
}

function onFrame(frame) {
  const waiter = frame.seq !== 0 && socket.waiting.get(frame.seq);
  if (waiter) {
    socket.waiting.delete(frame.seq);
    if (frame.cmd === 4) {
      waiter.reject(new Error(`${frame.body.code}: ${frame.body.message}`));
    } else {
      waiter.resolve(frame.body);
    }
    return;
  }
  switch (frame.cmd) {
    case 2003: // chat
      append("chat", `[${frame.body.room}] ${frame.body.from}: ${frame.body.text}`);
      break;
    case 9001: // announcement
      append("announcements", frame.body.text, frame.body.level === "urgent" ? "urgent" : "");
      break;
    case 3: // kick
      $("socket").textContent = `Kicked: ${frame.body.reason}.`;
      break;
  }
}

// Adds a line to a log (as text: nothing a player sends becomes markup).
function append(list, text, className = "") {
  const item = document.createElement("li");
  item.textContent = text;
  item.className = className;
  $(list).append(item);
  item.scrollIntoView({ block: "nearest" });
}

// ---- the page ----

// Runs an action, showing its failure; clears the last error first.
function act(action) {
  return async (event) => {
    event.preventDefault();
    showError(null);
    try {
      await action();
    } catch (e) {
      showError(e);
    }
  };
}

$("guest").onclick = act(async () => {
  const login = await post(`${endpoints.login}/v1/guest`, { device_id: deviceId() });
  token = login.token;
  $("who").textContent = `Playing as uid ${login.uid}.`;
  $("guest").disabled = true;
  $("playing").hidden = false;
  connect();
});

$("echo-form").onsubmit = act(async () => {
  const reply = await call(1001, { text: $("echo-text").value });
  $("echo-reply").textContent = `Echoed: ${reply.text}`;
});

$("balance").onclick = act(async () => {
  const r = await call(3001);
  $("wallet").textContent = `Balance: ${r.balance} ${r.currency}`;
});

$("daily").onclick = act(async () => {
  const r = await call(3002);
  $("wallet").textContent = `Daily reward: +${r.reward}; balance: ${r.balance} gold`;
});

$("items").onclick = act(async () => {
  const r = await call(3004);
  const items = Object.entries(r.items).map(([name, price]) => `${name} ${price}`);
  $("wallet").textContent = `Shop: ${items.join(", ")}`;
});

$("join-form").onsubmit = act(async () => {
  const r = await request(2001, { room: $("room").value });
  $("members").textContent = `In ${$("room").value} with: ${r.members.join(", ")}`;
});

$("say-form").onsubmit = act(async () => {
  await request(2002, { room: $("room").value, text: $("text").value });
  $("text").value = "";
});

// The guest button waits for the endpoints.
loadEndpoints()
  .catch(showError)
  .finally(() => {
    $("guest").disabled = false;
  });
