// Logging in over HTTP (PROTOCOL.md §1): a guest by device id, or a
// registered player by name and password. Each gives the token the
// websocket's login takes.

import { WarrenError } from "./errors.js";

/** What the login service answers. */
export interface Tokens {
  uid: number;
  token: string;
  /** Unix seconds. */
  expires_at: number;
  refresh_token?: string;
  refresh_expires_at?: number;
}

async function post<T>(url: string, body: unknown): Promise<T> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: reported below with the status.
  }
  if (!response.ok) {
    const error = (json as { error?: { code?: string; message?: string } } | null)?.error;
    throw new WarrenError(
      error?.code ?? "http_error",
      error?.message ?? `HTTP ${response.status}: ${text.slice(0, 200)}`,
      response.status,
    );
  }
  return json as T;
}

const base = (loginUrl: string) => loginUrl.replace(/\/+$/, "");

/** A guest: the same `deviceId` always gets the same player. */
export function guestLogin(loginUrl: string, deviceId: string): Promise<Tokens> {
  return post(`${base(loginUrl)}/v1/guest`, { device_id: deviceId });
}

/** A new player with a name and a password (409 `taken` if the name is). */
export function register(loginUrl: string, username: string, password: string): Promise<Tokens> {
  return post(`${base(loginUrl)}/v1/register`, { username, password });
}

/** A registered player (401 on a wrong name or password). */
export function login(loginUrl: string, username: string, password: string): Promise<Tokens> {
  return post(`${base(loginUrl)}/v1/login`, { username, password });
}

/** New tokens for a refresh token (which is used up). */
export function refresh(loginUrl: string, refreshToken: string): Promise<Tokens> {
  return post(`${base(loginUrl)}/v1/refresh`, { refresh_token: refreshToken });
}
