// A chat page on the Warren SDK (clients/typescript): a guest logs in,
// joins a room, and keeps its session through dropped connections.
// ?login=http://host:7000&ws=ws://host:7001/ws choose the servers.
import { Client, WarrenError, guestLogin } from "/clients/typescript/dist/index.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const host = location.hostname || "127.0.0.1";
const loginUrl = params.get("login") ?? `http://${host}:7000`;
const wsUrl = params.get("ws") ?? `ws://${host}:7001/ws`;

const CHAT_JOIN = 2001;
const CHAT_SEND = 2002;
const CHAT_MESSAGE = 2003;

let client = null;
let room = null;

function line(text, system = false) {
  const p = document.createElement("p");
  p.textContent = text;
  if (system) p.className = "system";
  $("log").append(p);
  $("log").scrollTop = $("log").scrollHeight;
}

function status(text) {
  $("status").textContent = text;
}

function showError(e) {
  $("error").textContent = e instanceof WarrenError ? `${e.code}: ${e.message}` : String(e);
}

// The same device id on every visit: the same guest.
function deviceId() {
  let id = sessionStorage.getItem("warren-chat-device");
  if (!id) {
    id = `chat-${crypto.randomUUID()}`;
    sessionStorage.setItem("warren-chat-device", id);
  }
  return id;
}

async function join() {
  $("error").textContent = "";
  try {
    if (!client) {
      const { token } = await guestLogin(loginUrl, deviceId());
      client = await Client.connect({ url: wsUrl, token });
      $("uid").textContent = client.uid;
      client.on(CHAT_MESSAGE, (said) => line(`${said.from}: ${said.text}`));
      client.on("dropped", () => status("dropped, reconnecting…"));
      client.on("resumed", () => status("resumed"));
      client.on("resynced", () => {
        status("resynced");
        line("the session could not be resumed: joining again", true);
        if (room) client.request(CHAT_JOIN, { room }).catch(showError);
      });
      client.on("kicked", ({ reason }) => status(`kicked: ${reason}`));
      client.on("closed", () => {
        for (const id of ["drop", "text", "send"]) $(id).disabled = true;
      });
    }
    room = $("room").value;
    const { members } = await client.request(CHAT_JOIN, { room });
    line(`joined ${room} with ${members.join(", ")}`, true);
    status("connected");
    for (const id of ["drop", "text", "send"]) $(id).disabled = false;
  } catch (e) {
    showError(e);
  }
}

async function send() {
  const text = $("text").value;
  if (!text) return;
  $("text").value = "";
  try {
    // Sent now, or once the connection is back; applied once either way.
    await client.request(CHAT_SEND, { room, text });
  } catch (e) {
    showError(e);
  }
}

$("join").addEventListener("click", join);
$("send").addEventListener("click", send);
$("text").addEventListener("keydown", (e) => {
  if (e.key === "Enter") send();
});
$("drop").addEventListener("click", () => client.dropConnection());
