// Pure logic of the Test client screen: reconnect policy, close-code hints, binary
// parsing, URL building, the Origin check and saved messages. No DOM, no Svelte.
import { CloseCode } from "./wire";

/** Close codes after which reconnecting cannot help (the same request fails again). */
export const TERMINAL_CODES: readonly number[] = [
  CloseCode.Unauthorized,
  CloseCode.Forbidden,
  CloseCode.NoEndpoint,
  CloseCode.Policy,
  CloseCode.TooBig,
];

export function isTerminal(code: number): boolean {
  return TERMINAL_CODES.includes(code);
}

/** Delay before reconnect attempt `attempt` (0-based): 0.5 s doubling up to 10 s. */
export function backoffMs(attempt: number): number {
  return Math.min(500 * 2 ** Math.max(0, attempt), 10_000);
}

export type HintAction = { kind: "remint" } | { kind: "switch"; path: string };
export interface CloseHint {
  text: string;
  action?: HintAction;
}

/** What a close code (and the server's reason) means, and what to do about it. */
export function closeHint(code: number, reason: string): CloseHint {
  const r = reason.toLowerCase();
  switch (code) {
    case CloseCode.Normal:
      return { text: "normal closure" };
    case CloseCode.GoingAway:
      return { text: "the server is going away (restart or shutdown)" };
    case CloseCode.Abnormal:
      return { text: "connection lost (no close frame: network error, server down or an HTTP refusal)" };
    case CloseCode.Policy:
      return { text: "policy violation: the client fell too far behind (send queue full)" };
    case CloseCode.TooBig:
      return { text: "message too big: raise [server] max_message_bytes or send less" };
    case CloseCode.Unauthorized:
      if (r.includes("expired")) return { text: "the token expired: mint a new token", action: { kind: "remint" } };
      if (r.includes("signature")) return { text: "the secret differs: the token was signed with another secret than the server's" };
      if (r.includes("no token")) return { text: "the endpoint needs a token: choose \"mint token\" or paste one" };
      return { text: "authentication failed: check the token", action: { kind: "remint" } };
    case CloseCode.Forbidden:
      if (r.includes("reserved")) return { text: "a path parameter names a channel this endpoint may not join: pick another value" };
      return { text: "add this origin to [server] allowed_origins" };
    case CloseCode.NoEndpoint: {
      const m = reason.match(/did you mean (\S+?)\??$/);
      return m
        ? { text: `no such endpoint — did you mean ${m[1]}?`, action: { kind: "switch", path: m[1] } }
        : { text: "no such endpoint: check the path" };
    }
    case CloseCode.TooManyConnections:
      return { text: "too many connections: raise [server] max_connections" };
    default:
      return { text: code >= 4000 ? "closed by the server" : "closed" };
  }
}

/** Hex (`48 65 0a`, `0x48,0x65`, `48650a`) to bytes; throws a readable Error. */
export function parseHex(text: string): Uint8Array {
  const clean = text.replace(/0x/gi, "").replace(/[\s,:]/g, "");
  if (clean.length % 2 !== 0) throw new Error("hex needs an even number of digits");
  if (!/^[0-9a-fA-F]*$/.test(clean)) throw new Error("hex may only hold 0-9 and a-f");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Base64 (standard or URL-safe, padding optional) to bytes; throws a readable Error. */
export function parseBase64(text: string): Uint8Array {
  let s = text.replace(/\s/g, "").replace(/-/g, "+").replace(/_/g, "/");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw new Error("not base64");
  s = s.replace(/=+$/, "");
  if (s.length % 4 === 1) throw new Error("base64 length is wrong");
  s += "=".repeat((4 - (s.length % 4)) % 4);
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function toHex(bytes: Uint8Array, max = 64): string {
  const parts = Array.from(bytes.subarray(0, max), (b) => b.toString(16).padStart(2, "0"));
  return parts.join(" ") + (bytes.length > max ? " …" : "");
}

/** `null` when `text` is valid JSON, else the parser's message. */
export function jsonError(text: string): string | null {
  try {
    JSON.parse(text);
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** Pretty-printed JSON, or null when `text` is not a JSON object/array. */
export function prettyIfJson(text: string): string | null {
  const t = text.trimStart();
  if (!t.startsWith("{") && !t.startsWith("[")) return null;
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return null;
  }
}

/** Fills `{name}` segments of an endpoint pattern; empty params stay `{name}`. */
export function fillPath(pattern: string, params: Record<string, string>): string {
  return pattern.replace(/\{(\w+)\}/g, (m, name: string) => {
    const v = params[name]?.trim();
    return v ? encodeURIComponent(v) : m;
  });
}

/** Params of `pattern` that are still empty. */
export function missingParams(pattern: string, params: Record<string, string>): string[] {
  return [...pattern.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).filter((n) => !params[n]?.trim());
}

/** The URL `new WebSocket()` opens: ws base + path, the token and any extra query. */
export function buildWsUrl(wsBase: string, path: string, opts: { token?: string; tokenQuery?: string; extraQuery?: string } = {}): string {
  const url = new URL(path, wsBase.replace(/\/+$/, "") + "/");
  const extra = (opts.extraQuery ?? "").trim().replace(/^[?&]+/, "");
  if (extra) for (const [k, v] of new URLSearchParams(extra)) url.searchParams.append(k, v);
  if (opts.token) url.searchParams.set(opts.tokenQuery || "token", opts.token);
  return url.toString();
}

/** `a, b ,,c` → ["a", "b", "c"]. */
export function splitList(text: string): string[] {
  return text.split(",").map((s) => s.trim()).filter(Boolean);
}

/** Origins of the desktop window, which the server always allows. */
export const DESKTOP_ORIGINS = ["tauri://localhost", "http://tauri.localhost"];

/** Mirrors the server's allowed_origins match (`scheme://host[:port|:*]` or `*`). */
export function originAllowed(origin: string, patterns: string[]): boolean {
  if (DESKTOP_ORIGINS.includes(origin)) return true;
  const split = (s: string) => {
    const i = s.indexOf("://");
    if (i < 0) return null;
    const scheme = s.slice(0, i).toLowerCase();
    const rest = s.slice(i + 3);
    const m = rest.match(/^(\[[^\]]*\]|[^:]*)(?::(.*))?$/);
    return m ? { scheme, host: m[1].toLowerCase(), port: m[2] as string | undefined } : null;
  };
  const o = split(origin);
  return patterns.some((p) => {
    if (p === "*") return true;
    const q = split(p);
    if (!o || !q || o.scheme !== q.scheme || o.host !== q.host) return false;
    if (q.port === "*") return true;
    if (q.port === undefined) return o.port === undefined;
    return o.port !== undefined && Number(o.port) === Number(q.port);
  });
}

export type ComposerMode = "text" | "json" | "hex" | "base64";
export interface SavedMessage {
  name: string;
  mode: ComposerMode;
  text: string;
}

/** The part of `Storage` saved messages use (localStorage in the app, a Map in tests). */
export interface KeyValue {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

const SAVED_KEY = "sockpit.client.saved";

function readAll(kv: KeyValue): Record<string, SavedMessage[]> {
  try {
    const v = JSON.parse(kv.getItem(SAVED_KEY) ?? "{}") as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, SavedMessage[]>) : {};
  } catch {
    return {};
  }
}

/** Saved messages of an endpoint path pattern, oldest first. */
export function loadSaved(kv: KeyValue, path: string): SavedMessage[] {
  const list = readAll(kv)[path];
  return Array.isArray(list) ? list.filter((m) => m && typeof m.text === "string") : [];
}

/** Saves (or replaces, by name) a message for `path`; returns the new list. */
export function saveMessage(kv: KeyValue, path: string, msg: SavedMessage): SavedMessage[] {
  const all = readAll(kv);
  const list = (all[path] ?? []).filter((m) => m.name !== msg.name);
  list.push(msg);
  all[path] = list;
  kv.setItem(SAVED_KEY, JSON.stringify(all));
  return list;
}

export function removeSaved(kv: KeyValue, path: string, name: string): SavedMessage[] {
  const all = readAll(kv);
  const list = (all[path] ?? []).filter((m) => m.name !== name);
  if (list.length) all[path] = list;
  else delete all[path];
  kv.setItem(SAVED_KEY, JSON.stringify(all));
  return list;
}

/** A short default name for a saved message. */
export function savedName(text: string): string {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length > 40 ? `${one.slice(0, 39)}…` : one || "(empty)";
}

export const LIFETIMES: { label: string; s: number }[] = [
  { label: "5m", s: 300 },
  { label: "1h", s: 3600 },
  { label: "1d", s: 86400 },
];
