// Errors a request or a login can end with.

/** The codes a request can fail with: the server's (PROTOCOL.md §2, "Error
 * codes", and each service's own), and the client's. */
export type ErrorCode =
  | "unauthorized"
  | "unknown_cmd"
  | "bad_request"
  | "overloaded"
  | "unavailable"
  | "timeout"
  | "internal"
  // The client's own:
  /** The session could not be resumed: the server may or may not have
   * carried the request out; reload the game's state. */
  | "resync"
  /** The client was kicked (`reason` says why) or closed. */
  | "closed"
  /** No connection could be made (after `reconnect.maxAttempts`). */
  | "disconnected"
  | (string & {});

/** A request, a login or an HTTP call that failed, with its code. */
export class WarrenError extends Error {
  readonly code: ErrorCode;
  /** The HTTP status, for the login helpers. */
  readonly status?: number;

  constructor(code: ErrorCode, message: string, status?: number) {
    super(`${code}: ${message}`);
    this.name = "WarrenError";
    this.code = code;
    this.status = status;
  }
}
