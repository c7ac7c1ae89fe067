// The Warren game server's client. Start with `Client.connect`; see
// README.md.

import { Client, type ConnectOptions } from "./client.js";

export { Client };

/** Connects and logs in: `Client.connect` (see README.md). */
export function connect(options: ConnectOptions): Promise<Client> {
  return Client.connect(options);
}
export type { ClientEvents, ConnectOptions, SocketConstructor, SocketLike } from "./client.js";
export { WarrenError } from "./errors.js";
export type { ErrorCode } from "./errors.js";
export { Cmd, decodeBody, decodeFrame, encodeFrame } from "./frames.js";
export type { Frame } from "./frames.js";
export { guestLogin, login, refresh, register } from "./http.js";
export type { Tokens } from "./http.js";
