// The wire frame (PROTOCOL.md §2): one websocket binary message is a
// MessagePack array [seq, cmd, body], body a MessagePack `bin` holding the
// business message (itself MessagePack). In a resumable session the
// server's frames carry a fourth element, their number (§5).

import { decode, encode } from "@msgpack/msgpack";

/** Control commands, handled by the connector. */
export const Cmd = {
  LOGIN: 1,
  HEARTBEAT: 2,
  KICK: 3,
  ERROR: 4,
} as const;

/** A frame from the server. */
export interface Frame {
  seq: number;
  cmd: number;
  /** The body, MessagePack-encoded (decode with `decodeBody`). */
  body: Uint8Array;
  /** Its number in a resumable session (absent on a login reply). */
  n?: number;
}

/** Encodes a client frame; `body` is any value (MessagePack-encoded) or
 * raw bytes (sent as they are). */
export function encodeFrame(seq: number, cmd: number, body: unknown): Uint8Array {
  const bytes = body instanceof Uint8Array ? body : encode(body);
  return encode([seq, cmd, bytes]);
}

/** Decodes a server frame; throws on anything else. */
export function decodeFrame(data: ArrayBuffer | Uint8Array): Frame {
  const parts = decode(data instanceof Uint8Array ? data : new Uint8Array(data));
  if (!Array.isArray(parts) || parts.length < 3 || parts.length > 4) {
    throw new Error("not a [seq, cmd, body] frame");
  }
  const [seq, cmd, body, n] = parts as [unknown, unknown, unknown, unknown];
  if (typeof seq !== "number" || typeof cmd !== "number" || !(body instanceof Uint8Array)) {
    throw new Error("not a [seq, cmd, body] frame");
  }
  if (n !== undefined && typeof n !== "number") {
    throw new Error("a frame's number is not a number");
  }
  return n === undefined ? { seq, cmd, body } : { seq, cmd, body, n };
}

/** Decodes a frame's body (an empty body is null). */
export function decodeBody<T = unknown>(body: Uint8Array): T {
  return (body.length === 0 ? null : decode(body)) as T;
}
