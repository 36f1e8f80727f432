// The only module that knows URLs and auth. Served by Sockpit, the UI lives at
// /_sockpit/ and authenticates with the session cookie; inside Tauri the shell
// injects `window.__SOCKPIT__ = { base, key }` and the key goes in a header
// (and in `?key=` on the events WebSocket, which cannot carry headers).
import type {
  ConfigApplied, ConfigText, ConfigView, ConnectionsResponse, Delivery, DoctorRequest, EndpointsResponse, ErrorBody,
  EventsFrame, KickRequest, Kicked, PublishRequest, PublishResponse, Report, StatsSnapshot, TokenRequest, TokenResponse,
  Validated, WebhooksResponse,
} from "./wire";

declare global {
  interface Window {
    __SOCKPIT__?: { base?: string; key?: string };
  }
}

export interface ApiConfig {
  /** Absolute URL of the reserved prefix, e.g. `http://127.0.0.1:8000/_sockpit` (no trailing slash). */
  base: string;
  key?: string;
}

export function resolveConfig(
  loc: { pathname: string; origin: string },
  injected?: { base?: string; key?: string },
): ApiConfig {
  if (loc.pathname.startsWith("/_sockpit/")) return { base: `${loc.origin}/_sockpit`, key: injected?.key };
  const base = injected?.base ? injected.base.replace(/\/+$/, "") : `${loc.origin}/_sockpit`;
  return { base, key: injected?.key };
}

let cached: ApiConfig | null = null;
export function config(): ApiConfig {
  cached ??= resolveConfig(location, window.__SOCKPIT__);
  return cached;
}

/** Points the UI at a server (the desktop app does, from the shell's status). */
export function setConfig(c: ApiConfig): void {
  cached = { base: c.base.replace(/\/+$/, ""), key: c.key };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The API's `detail` (or the body text), without the status prefix. */
    readonly detail = message,
  ) {
    super(message);
  }
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const { base, key } = config();
  const headers: Record<string, string> = { Accept: "application/json" };
  if (key) headers["X-API-Key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) {
    let detail = text || res.statusText;
    try {
      const body = JSON.parse(text) as ErrorBody;
      detail = body.detail || body.error || detail;
    } catch {
      /* not JSON: keep the text */
    }
    throw new ApiError(res.status, `${res.status}: ${detail}`, detail);
  }
  return (text ? JSON.parse(text) : undefined) as T;
}

export const fetchStats = () => request<StatsSnapshot>("GET", "/api/stats");

export const fetchConnections = () => request<ConnectionsResponse>("GET", "/api/connections");

export function kickConnection(id: string, kick: KickRequest = { code: 4000, reason: "kicked from Sockpit UI" }): Promise<Kicked> {
  const q = new URLSearchParams();
  if (kick.code !== undefined) q.set("code", String(kick.code));
  if (kick.reason !== undefined) q.set("reason", kick.reason);
  return request<Kicked>("DELETE", `/api/connections/${encodeURIComponent(id)}?${q}`);
}

export const fetchEndpoints = () => request<EndpointsResponse>("GET", "/api/endpoints");

export const mintToken = (req: TokenRequest) => request<TokenResponse>("POST", "/api/token", req);

export const publish = (req: PublishRequest) => request<PublishResponse>("POST", "/api/publish", req);

export const runDoctor = (req: DoctorRequest) => request<Report>("POST", "/api/doctor", req);

/** The latest webhook deliveries (up to 200), oldest first. */
export const fetchWebhooks = () => request<WebhooksResponse>("GET", "/api/webhooks");

/** Sends delivery `id` again and returns the new delivery (404 unknown id, 409 body not kept). */
export const resendWebhook = (id: number) => request<Delivery>("POST", `/api/webhooks/${encodeURIComponent(String(id))}/resend`);

export const fetchConfig = () => request<ConfigView>("GET", "/api/config");

/** 422 throws an ApiError whose `detail` names file:line: key: reason. */
export const validateConfig = (toml: string) => request<Validated>("POST", "/api/config/validate", { toml } satisfies ConfigText);

/** Writes the file; the server then restarts (maybe on another port). */
export const applyConfig = (toml: string) => request<ConfigApplied>("PUT", "/api/config", { toml } satisfies ConfigText);

/** `http://127.0.0.1:8000`: the server's own URL, for copyable commands. */
export function serverOrigin(): string {
  return new URL(config().base).origin;
}

/** Host (with port) of the Sockpit server, for the WebSocket URLs shown to the user. */
export function serverHost(): string {
  return new URL(config().base).host;
}

/** `ws://127.0.0.1:8000/ws/echo/` for an endpoint path. */
export function endpointUrl(path: string): string {
  const u = new URL(config().base);
  return `${u.protocol === "https:" ? "wss" : "ws"}://${u.host}${path}`;
}

export function eventsUrl(): string {
  const { base, key } = config();
  const url = new URL(`${base}/api/events`);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  if (key) url.searchParams.set("key", key);
  return url.toString();
}

export interface EventsHandlers {
  onOpen(): void;
  onFrame(frame: EventsFrame): void;
  onClose(ev: CloseEvent): void;
}

/** Opens the events WebSocket; the caller owns reconnecting. */
export function openEvents(h: EventsHandlers): WebSocket {
  const ws = new WebSocket(eventsUrl());
  ws.onopen = () => h.onOpen();
  ws.onmessage = (m) => {
    if (typeof m.data !== "string") return;
    try {
      h.onFrame(JSON.parse(m.data) as EventsFrame);
    } catch {
      /* a malformed frame is skipped, not fatal */
    }
  };
  ws.onclose = (ev) => h.onClose(ev);
  return ws;
}

/** `ws://127.0.0.1:8000`: where the configured WebSocket endpoints live. */
export function wsBase(): string {
  const u = new URL(config().base);
  return `${u.protocol === "https:" ? "wss" : "ws"}://${u.host}`;
}
