// A connection to Warren that outlives dropped connections: requests with
// promises, pushes by cmd, heartbeats, and a resumable session
// (PROTOCOL.md §5) that reconnects with back-off and resumes, so nothing
// sent either way is lost or doubled.

import { WarrenError } from "./errors.js";
import { Cmd, decodeBody, decodeFrame, encodeFrame, type Frame } from "./frames.js";

/** The part of the WebSocket API this client uses (the browser's, Node's
 * global one from v22 or with --experimental-websocket in v20, or the
 * `ws` package's). */
export interface SocketLike {
  binaryType: string;
  readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}
export type SocketConstructor = new (url: string) => SocketLike;

export interface ConnectOptions {
  /** The connector's websocket, e.g. `ws://127.0.0.1:7001/ws`; or several
   * (connectors without a load balancer in front), tried in turn: each
   * reconnection goes to the next. */
  url: string | string[];
  /** The login token, or a function that gets a fresh one (called on
   * every connection, so an expired token can be refreshed). */
  token: string | (() => string | Promise<string>);
  /** Keep the session through dropped connections (default true). */
  resumable?: boolean;
  /** How often to send a heartbeat (default 10 s); a connection that has
   * been silent for 2.5 times this long is taken as dead and replaced. */
  heartbeatMs?: number;
  /** A request not answered within this long fails with `timeout`
   * (default 15 s: the connector answers `timeout` itself after 10 s). */
  requestTimeoutMs?: number;
  /** Reconnection with back-off after a drop, or false for none. */
  reconnect?: false | { initialMs?: number; maxMs?: number; maxAttempts?: number };
  /** The WebSocket class, where there is no global one. */
  WebSocket?: SocketConstructor;
}

/** What a client tells its listeners. */
export interface ClientEvents {
  /** The connection dropped; the client reconnects. */
  dropped: { code: number; reason: string };
  /** Reconnecting: attempt `attempt`, after `delayMs`. */
  reconnecting: { attempt: number; delayMs: number };
  /** The session was resumed: everything sent meanwhile follows. */
  resumed: { session: string };
  /** The session could not be resumed: a new one began. Requests in
   * flight failed with `resync`; reload the game's state. */
  resynced: { session: string };
  /** Kicked by the server (not `reconnect`): the client is closed. */
  kicked: { reason: string };
  /** Closed for good (by `close`, a kick, a refused login, or no
   * connection after `reconnect.maxAttempts`). */
  closed: { reason: string };
}

type Listener<K extends keyof ClientEvents> = (event: ClientEvents[K]) => void;
type PushHandler = (body: any, frame: Frame) => void;

interface Waiting {
  frame: Uint8Array;
  sent: boolean;
  resolve: (value: any) => void;
  reject: (error: WarrenError) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface LoginReply {
  uid: number;
  session?: string;
  grace_ms?: number;
  resumed?: boolean;
  reason?: string;
}

const OPEN = 1;
/** The close code this client uses for a connection it gives up on: the
 * server keeps the session (only 1000 ends it). */
const DROPPED = 4000;

export class Client {
  /** The player, once logged in. */
  uid = 0;
  /** The resume token of the session (the latest the server gave). */
  session: string | undefined;

  private readonly opts: Required<Omit<ConnectOptions, "reconnect" | "WebSocket">> & {
    reconnect: { initialMs: number; maxMs: number; maxAttempts: number } | false;
    WebSocket: SocketConstructor;
  };
  private ws: SocketLike | undefined;
  private readonly urls: string[];
  /** Connections opened so far (the next goes to `urls[opened % len]`). */
  private opened = 0;
  private state: "connecting" | "open" | "away" | "closed" = "connecting";
  private nextSeq = 1;
  private lastN = 0;
  private lastHeard = Date.now();
  private readonly waiting = new Map<number, Waiting>();
  private readonly heartbeats = new Set<number>();
  private readonly pushHandlers = new Map<number, Set<PushHandler>>();
  private readonly listeners = new Map<string, Set<(event: any) => void>>();
  private beat: ReturnType<typeof setInterval> | undefined;
  private retry: ReturnType<typeof setTimeout> | undefined;
  /** The server asked for a reconnect (it is stopping): no back-off. */
  private urgent = false;

  private constructor(opts: ConnectOptions) {
    const socket =
      opts.WebSocket ?? (globalThis as { WebSocket?: SocketConstructor }).WebSocket;
    if (!socket) {
      throw new Error(
        "no WebSocket here: pass ConnectOptions.WebSocket (Node 20: run with --experimental-websocket, or use the ws package)",
      );
    }
    const reconnect =
      opts.reconnect === false
        ? false
        : {
            initialMs: opts.reconnect?.initialMs ?? 250,
            maxMs: opts.reconnect?.maxMs ?? 5_000,
            maxAttempts: opts.reconnect?.maxAttempts ?? Infinity,
          };
    const urls = typeof opts.url === "string" ? [opts.url] : opts.url;
    if (urls.length === 0) throw new Error("ConnectOptions.url names no connector");
    this.urls = urls;
    this.opts = {
      url: opts.url,
      token: opts.token,
      resumable: opts.resumable ?? true,
      heartbeatMs: opts.heartbeatMs ?? 10_000,
      requestTimeoutMs: opts.requestTimeoutMs ?? 15_000,
      reconnect,
      WebSocket: socket,
    };
  }

  /** Connects and logs in; rejects if the login is refused. */
  static async connect(opts: ConnectOptions): Promise<Client> {
    const client = new Client(opts);
    try {
      await client.login();
    } catch (e) {
      client.shut("login failed");
      throw e;
    }
    return client;
  }

  /** Sends a request; resolves with the reply's decoded body, or rejects
   * with a {@link WarrenError} (its `code`: `timeout`, `overloaded`, a
   * service's own…). Made while the connection is down, it is sent once
   * it is back. */
  request<T = any>(cmd: number, body: unknown = {}): Promise<T> {
    if (this.state === "closed") {
      return Promise.reject(new WarrenError("closed", "the client is closed"));
    }
    const seq = this.nextSeq++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(seq);
        reject(new WarrenError("timeout", `no answer to cmd ${cmd} within ${this.opts.requestTimeoutMs} ms`));
      }, this.opts.requestTimeoutMs);
      const waiting: Waiting = { frame: encodeFrame(seq, cmd, body), sent: false, resolve, reject, timer };
      this.waiting.set(seq, waiting);
      if (this.state === "open") {
        this.transmit(waiting);
      }
    });
  }

  /** Calls `handler` with the body of every push with this cmd; returns
   * a function that stops it. */
  on(cmd: number, handler: PushHandler): () => void;
  /** Calls `listener` on this client event; returns a function that
   * stops it. */
  on<K extends keyof ClientEvents>(event: K, listener: Listener<K>): () => void;
  on(key: number | string, fn: (arg: any, frame?: any) => void): () => void {
    const map: Map<number | string, Set<(a: any, f?: any) => void>> =
      typeof key === "number" ? (this.pushHandlers as any) : (this.listeners as any);
    let set = map.get(key);
    if (!set) {
      set = new Set();
      map.set(key, set);
    }
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Whether the connection is up now. */
  get connected(): boolean {
    return this.state === "open";
  }

  /** Drops the connection as a network would (close code 4000): the
   * server keeps the session, and the client reconnects and resumes. */
  dropConnection(): void {
    this.ws?.close(DROPPED, "dropped by the client");
  }

  /** Leaves: closes with 1000, which ends the session at once. */
  close(): void {
    this.ws?.close(1000, "bye");
    this.shut("closed by the client");
  }

  // ---- connection ----

  private async token(): Promise<string> {
    const t = this.opts.token;
    return typeof t === "function" ? await t() : t;
  }

  /** Opens a connection and logs in (or resumes); resolves once the
   * login is answered. */
  private async login(): Promise<void> {
    const token = await this.token();
    const url = this.urls[this.opened++ % this.urls.length];
    const ws = new this.opts.WebSocket(url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    const resume = this.opts.resumable && this.session !== undefined;
    const seq = this.nextSeq++;
    const body: Record<string, unknown> = { token };
    if (this.opts.resumable) body.resumable = true;
    if (resume) {
      body.resume = this.session;
      body.last = this.lastN;
    }
    const reply = await new Promise<LoginReply>((resolve, reject) => {
      let answered = false;
      ws.onopen = () => ws.send(encodeFrame(seq, Cmd.LOGIN, body));
      ws.onerror = () => {};
      ws.onclose = (ev) => {
        if (!answered) reject(new WarrenError("disconnected", `closed before the login was answered (${ev.code} ${ev.reason})`));
        else this.closed(ws, ev.code, ev.reason);
      };
      ws.onmessage = (ev) => {
        const frame = decodeFrame(ev.data as ArrayBuffer);
        if (!answered) {
          answered = true;
          if (frame.cmd === Cmd.LOGIN) resolve(decodeBody<LoginReply>(frame.body));
          else {
            const error = decodeBody<{ code?: string; message?: string }>(frame.body) ?? {};
            reject(new WarrenError(error.code ?? "login_refused", error.message ?? "the login was refused"));
          }
          return;
        }
        this.receive(ws, frame);
      };
    });
    this.uid = reply.uid;
    const resynced = resume && reply.resumed === false;
    if (resynced || !resume) this.lastN = 0;
    this.session = reply.session;
    this.state = "open";
    this.lastHeard = Date.now();
    this.startHeartbeat();
    if (resynced) {
      // Whatever was sent in the old session may or may not have been
      // carried out: the caller decides.
      for (const [seq, w] of this.waiting) {
        if (w.sent) this.fail(seq, new WarrenError("resync", "the session could not be resumed; reload the game's state"));
      }
      this.emit("resynced", { session: reply.session ?? "" });
    } else if (resume) {
      this.emit("resumed", { session: reply.session ?? "" });
    }
    // Everything unanswered, in the original order with the original
    // seqs (the server applies each seq once), then what was made since.
    for (const seq of [...this.waiting.keys()].sort((a, b) => a - b)) {
      const w = this.waiting.get(seq);
      if (w) this.transmit(w);
    }
  }

  private transmit(w: Waiting): void {
    if (this.ws?.readyState === OPEN) {
      this.ws.send(w.frame);
      w.sent = true;
    }
  }

  private receive(ws: SocketLike, frame: Frame): void {
    if (ws !== this.ws) return;
    this.lastHeard = Date.now();
    if (frame.n !== undefined) {
      if (frame.n <= this.lastN) return; // had it already
      if (frame.n !== this.lastN + 1) {
        // A gap the server promises never to leave: resume from the last.
        ws.close(DROPPED, "a gap in the numbered frames");
        return;
      }
      this.lastN = frame.n;
    }
    if (frame.cmd === Cmd.KICK) {
      const { reason } = decodeBody<{ reason: string }>(frame.body);
      if (reason === "reconnect" && this.opts.resumable && this.opts.reconnect) {
        // The connector is stopping: resume on another one now.
        this.urgent = true;
        ws.close(DROPPED, "reconnect");
        return;
      }
      this.emit("kicked", { reason });
      this.shut(`kicked: ${reason}`);
      return;
    }
    if (frame.seq !== 0) {
      if (this.heartbeats.delete(frame.seq)) return;
      const w = this.waiting.get(frame.seq);
      if (!w) return; // answered already, or given up on
      this.waiting.delete(frame.seq);
      clearTimeout(w.timer);
      if (frame.cmd === Cmd.ERROR) {
        const e = decodeBody<{ code: string; message: string }>(frame.body);
        w.reject(new WarrenError(e.code, e.message));
      } else {
        w.resolve(decodeBody(frame.body));
      }
      return;
    }
    for (const handler of this.pushHandlers.get(frame.cmd) ?? []) {
      handler(decodeBody(frame.body), frame);
    }
  }

  private closed(ws: SocketLike, code: number, reason: string): void {
    if (ws !== this.ws || this.state === "closed") return;
    this.stopHeartbeat();
    for (const w of this.waiting.values()) w.sent = false;
    if (!this.opts.reconnect || !this.opts.resumable) {
      this.emit("dropped", { code, reason });
      this.shut(`connection closed (${code} ${reason})`);
      return;
    }
    this.state = "away";
    this.emit("dropped", { code, reason });
    const now = this.urgent;
    this.urgent = false;
    this.reconnect(1, now);
  }

  private reconnect(attempt: number, now: boolean): void {
    const policy = this.opts.reconnect;
    if (!policy || this.state === "closed") return;
    if (attempt > policy.maxAttempts) {
      this.shut("no connection");
      return;
    }
    const backoff = Math.min(policy.maxMs, policy.initialMs * 2 ** (attempt - 1));
    const delayMs = now ? 0 : Math.round(backoff * (0.5 + Math.random() / 2));
    this.emit("reconnecting", { attempt, delayMs });
    this.retry = setTimeout(() => {
      this.login().catch((e: unknown) => {
        if (e instanceof WarrenError && ["unauthorized", "rate_limited"].includes(e.code)) {
          this.shut(`login refused: ${e.message}`);
        } else {
          this.reconnect(attempt + 1, false);
        }
      });
    }, delayMs);
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    this.beat = setInterval(() => {
      const ws = this.ws;
      if (!ws || this.state !== "open") return;
      if (Date.now() - this.lastHeard > this.opts.heartbeatMs * 2.5) {
        // Silent for too long: a dead connection the OS has not noticed.
        ws.close(DROPPED, "heartbeat lost");
        return;
      }
      const seq = this.nextSeq++;
      this.heartbeats.add(seq);
      ws.send(encodeFrame(seq, Cmd.HEARTBEAT, { last: this.lastN }));
    }, this.opts.heartbeatMs);
  }

  private stopHeartbeat(): void {
    if (this.beat !== undefined) clearInterval(this.beat);
    this.beat = undefined;
    this.heartbeats.clear();
  }

  private fail(seq: number, error: WarrenError): void {
    const w = this.waiting.get(seq);
    if (!w) return;
    this.waiting.delete(seq);
    clearTimeout(w.timer);
    w.reject(error);
  }

  /** Closed for good: everything waiting fails. */
  private shut(reason: string): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.stopHeartbeat();
    if (this.retry !== undefined) clearTimeout(this.retry);
    for (const seq of [...this.waiting.keys()]) {
      this.fail(seq, new WarrenError("closed", reason));
    }
    if (this.ws && this.ws.readyState === OPEN) this.ws.close(1000, "bye");
    this.emit("closed", { reason });
  }

  private emit<K extends keyof ClientEvents>(event: K, value: ClientEvents[K]): void {
    for (const fn of this.listeners.get(event) ?? []) fn(value);
  }
}
