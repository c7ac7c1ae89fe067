// The SDK against real Warren processes: `cargo test --test sdk` starts a
// stack (on the in-process bus and on RabbitMQ, two connectors each) and
// runs these with its addresses in WARREN_LOGIN_URL and WARREN_WS_URLS
// (comma-separated). Run without them, they fail and say so.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { Client, WarrenError, connect, guestLogin, login, register } from "../dist/index.js";

const loginUrl = process.env.WARREN_LOGIN_URL;
const wsUrls = (process.env.WARREN_WS_URLS ?? "").split(",").filter(Boolean);
assert.ok(
  loginUrl && wsUrls.length >= 1,
  "WARREN_LOGIN_URL and WARREN_WS_URLS are not set: run these through `cargo test --test sdk`, which starts the servers",
);
// Each test has this long; a step that waits for the server waits within it.
const within = { timeout: 30_000 };

const ECHO = 1001;
const CHAT_JOIN = 2001;
const CHAT_SEND = 2002;
const CHAT_MESSAGE = 2003;

/** A new guest, connected (to `urls`, the first connector by default). */
async function guest(options = {}) {
  const tokens = await guestLogin(loginUrl, `sdk-${randomUUID()}`);
  const client = await connect({ url: wsUrls[0], token: tokens.token, ...options });
  assert.equal(client.uid, tokens.uid);
  return client;
}

/** Resolves with the next `event` of `client`. */
function next(client, event) {
  return new Promise((resolve) => {
    const stop = client.on(event, (value) => {
      stop();
      resolve(value);
    });
  });
}

/** Collects the chat lines pushed to `client`; `heard.count(n)` resolves
 * once n have come. */
function lines(client) {
  const heard = [];
  let wanted = null;
  client.on(CHAT_MESSAGE, (said) => {
    heard.push(said.text);
    if (wanted && heard.length >= wanted.n) wanted.resolve();
  });
  heard.count = (n) =>
    heard.length >= n ? Promise.resolve() : new Promise((resolve) => (wanted = { n, resolve }));
  return heard;
}

test("requests, typed errors and pushes", within, async () => {
  const a = await guest();
  const b = await guest();
  try {
    assert.deepEqual(await a.request(ECHO, { hello: "world" }), { hello: "world" });
    await assert.rejects(a.request(5000, {}), (e) => e instanceof WarrenError && e.code === "unknown_cmd");
    const room = `room-${randomUUID()}`;
    await a.request(CHAT_JOIN, { room });
    await b.request(CHAT_JOIN, { room });
    const heard = lines(b);
    await a.request(CHAT_SEND, { room, text: "hi" });
    await heard.count(1);
    assert.deepEqual([...heard], ["hi"]);
  } finally {
    a.close();
    b.close();
  }
});

test("a dropped connection resumes with everything sent meanwhile, once", within, async () => {
  const a = await guest({ reconnect: { initialMs: 50, maxMs: 200 } });
  const b = await guest();
  try {
    const room = `room-${randomUUID()}`;
    await a.request(CHAT_JOIN, { room });
    await b.request(CHAT_JOIN, { room });
    const heard = lines(a);
    const dropped = next(a, "dropped");
    const resumed = next(a, "resumed");
    // A request in flight when the connection drops, and one made while away.
    const inFlight = a.request(ECHO, { n: 1 });
    a.dropConnection();
    await dropped;
    for (let i = 0; i < 20; i++) {
      await b.request(CHAT_SEND, { room, text: `line ${i}` });
    }
    const whileAway = a.request(ECHO, { n: 2 });
    await resumed;
    assert.deepEqual(await inFlight, { n: 1 });
    assert.deepEqual(await whileAway, { n: 2 });
    await heard.count(20);
    assert.deepEqual([...heard], Array.from({ length: 20 }, (_, i) => `line ${i}`));
  } finally {
    a.close();
    b.close();
  }
});

// With two connectors (RabbitMQ), the reconnection goes to the other one;
// the all-in-one process has one, and it resumes there.
test("a session resumes on the next connector of its list", within, async () => {
  const tokens = await guestLogin(loginUrl, `sdk-${randomUUID()}`);
  const a = await Client.connect({ url: wsUrls, token: tokens.token, reconnect: { initialMs: 50 } });
  const b = await guest();
  try {
    const room = `room-${randomUUID()}`;
    await a.request(CHAT_JOIN, { room });
    await b.request(CHAT_JOIN, { room });
    const heard = lines(a);
    const first = a.session;
    const resumed = next(a, "resumed");
    a.dropConnection();
    await b.request(CHAT_SEND, { room, text: "moved" });
    await resumed;
    if (wsUrls.length > 1) {
      assert.notEqual(a.session, first, "the session is named after its new connector");
    }
    await heard.count(1);
    assert.deepEqual([...heard], ["moved"]);
  } finally {
    a.close();
    b.close();
  }
});

test("a second login kicks the first client, which closes", within, async () => {
  const tokens = await guestLogin(loginUrl, `sdk-${randomUUID()}`);
  const first = await Client.connect({ url: wsUrls[0], token: tokens.token });
  const kicked = next(first, "kicked");
  const closed = next(first, "closed");
  const second = await Client.connect({ url: wsUrls[0], token: tokens.token });
  try {
    assert.deepEqual(await kicked, { reason: "duplicate_login" });
    await closed;
    await assert.rejects(first.request(ECHO, {}), (e) => e.code === "closed");
    assert.deepEqual(await second.request(ECHO, { ok: true }), { ok: true });
  } finally {
    second.close();
  }
});

test("register and log in over HTTP; a bad token is refused", within, async () => {
  const username = `sdk${randomUUID().slice(0, 8)}`;
  const registered = await register(loginUrl, username, "correct horse battery");
  const again = await login(loginUrl, username, "correct horse battery");
  assert.equal(again.uid, registered.uid);
  await assert.rejects(login(loginUrl, username, "wrong password!"), (e) => e.status === 401);
  await assert.rejects(
    Client.connect({ url: wsUrls[0], token: "not a token", reconnect: false }),
    (e) => e instanceof WarrenError && e.code === "unauthorized",
  );
});
