// Formatters shared by every screen. Pure functions, tested in format.test.ts.
import type { BridgeState, BrokerState, ProcessState } from "./wire";

const UNITS = ["KiB", "MiB", "GiB", "TiB"];

/** `512 B`, `1.5 KiB`, `12.0 MiB`, `230 MiB`. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "–";
  if (n < 1024) return `${Math.round(n)} B`;
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${UNITS[i]}`;
}

function toMs(t: string | number | Date): number {
  if (typeof t === "number") return t;
  if (t instanceof Date) return t.getTime();
  return Date.parse(t);
}

/** `just now`, `12s ago`, `3m 12s ago`, `2h 5m ago`, `3d ago`. */
export function formatRelative(since: string | number | Date, now: number = Date.now()): string {
  const t = toMs(since);
  if (Number.isNaN(t)) return "–";
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 1) return "just now";
  if (s < 60) return `${s}s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s ago`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m ago`;
  return `${Math.floor(h / 24)}d ago`;
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** Local wall-clock time `HH:MM:SS.mmm`. */
export function formatClock(ts: string | number | Date): string {
  const t = toMs(ts);
  if (Number.isNaN(t)) return "--:--:--.---";
  const d = new Date(t);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** `10,000` — fixed grouping, independent of the browser locale. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return "–";
  const sign = n < 0 ? "-" : "";
  return sign + String(Math.trunc(Math.abs(n))).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** Messages per second: `0/s`, `4.5/s`, `120/s`, `1.2k/s`, `3.4M/s`. */
export function formatRate(perS: number): string {
  if (!Number.isFinite(perS) || perS <= 0) return "0/s";
  if (perS < 10) return `${Number.isInteger(perS) ? perS : perS.toFixed(1)}/s`;
  if (perS < 1000) return `${Math.round(perS)}/s`;
  if (perS < 1_000_000) return `${(perS / 1000).toFixed(1)}k/s`;
  return `${(perS / 1_000_000).toFixed(1)}M/s`;
}

/** Uptime: `42s`, `5m 03s`, `2h 05m`, `3d 4h`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${pad(m % 60)}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** Pretty-print `text` if it is a JSON object/array, else null. */
export function prettyJson(text: string | undefined): string | null {
  if (!text) return null;
  const t = text.trim();
  if (!(t.startsWith("{") || t.startsWith("["))) return null;
  try {
    return JSON.stringify(JSON.parse(t), null, 2);
  } catch {
    return null;
  }
}

/** `0 ms`, `12 ms`, `999 ms`, `1.2 s`, `12 s`, then as {@link formatDuration}. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  return formatDuration(ms / 1000);
}

/** Colour of a status or state: good, needs a look, broken, inactive. */
export type Tone = "ok" | "warn" | "err" | "off";

/** 2xx/3xx plain (null), 4xx amber, 5xx red; 0 (no answer was sent) amber. */
export function httpStatusTone(status: number | undefined): Tone | null {
  if (status === undefined) return null;
  if (status >= 500) return "err";
  if (status >= 400 || status < 100) return "warn";
  return null;
}

/** ready green, starting amber, exited/crash loop red, stopped grey. */
export function processStateTone(state: ProcessState): Tone {
  switch (state) {
    case "ready":
      return "ok";
    case "starting":
      return "warn";
    case "exited":
    case "crash_loop":
      return "err";
    case "stopped":
      return "off";
  }
}

/** `crash_loop` → `crash loop`. */
export function processStateLabel(state: ProcessState): string {
  return state.replace(/_/g, " ");
}

/** The state of a link to Redis: the channels bridge's and the cluster broker's. */
export type LinkState = BridgeState | BrokerState;

/** connected green, connecting amber, reconnecting (Redis lost or unreachable) red. */
export function linkStateTone(state: LinkState): Tone {
  switch (state) {
    case "connected":
      return "ok";
    case "connecting":
      return "warn";
    case "reconnecting":
      return "err";
  }
}

/** `connected`, `connecting…`, `reconnecting…` (the last two are still trying). */
export function linkStateLabel(state: LinkState): string {
  return state === "connected" ? state : `${state}…`;
}

/**
 * The broker's count of publishes that could not cross to the other instances: none
 * plain (null), some amber, some while Redis is still away red (more are being lost).
 */
export function lostTone(lost: number, state: LinkState): Tone | null {
  if (!(lost > 0)) return null;
  return state === "reconnecting" ? "err" : "warn";
}

export interface HttpLine {
  /** `GET /path` */
  request: string;
  /** `200`, or `no answer` when the request ended before one (status 0). */
  status: string;
  tone: Tone | null;
  /** `12 ms · 3.4 KiB` (parts that are missing left out). */
  rest: string;
}

/** The parts of an `http_request` event's line. */
export function httpRequestParts(e: { method?: string; path?: string; status?: number; duration_ms?: number; bytes?: number }): HttpLine {
  const request = [e.method, e.path].filter(Boolean).join(" ");
  const status = e.status === undefined ? "?" : e.status === 0 ? "no answer" : String(e.status);
  const rest = [e.duration_ms !== undefined ? formatMs(e.duration_ms) : "", e.bytes !== undefined ? formatBytes(e.bytes) : ""]
    .filter(Boolean)
    .join(" · ");
  return { request, status, tone: httpStatusTone(e.status), rest };
}

/** `GET /path → 200 · 12 ms · 3.4 KiB`. */
export function formatHttpRequest(e: Parameters<typeof httpRequestParts>[0]): string {
  const p = httpRequestParts(e);
  return `${p.request} → ${p.status}${p.rest ? ` · ${p.rest}` : ""}`;
}

/** A webhook's last status: 2xx green, 3xx/4xx amber (the backend's answer), 5xx or none red. */
export function webhookStatusTone(status: number | undefined): Tone {
  if (status === undefined || status >= 500 || status < 100) return "err";
  if (status >= 200 && status < 300) return "ok";
  return "warn";
}

/** `200`, or `—` when no answer came. */
export function webhookStatusLabel(status: number | undefined): string {
  return status === undefined ? "—" : String(status);
}

/** `http://127.0.0.1:8001/hook?x=1` → origin `http://127.0.0.1:8001`, path `/hook?x=1` (`/` when none). */
export function splitUrl(url: string): { origin: string; path: string } {
  const m = url.match(/^([a-z][a-z0-9+.-]*:\/\/[^/?#]*)(.*)$/i);
  if (!m) return { origin: "", path: url };
  return { origin: m[1], path: m[2] || "/" };
}

export interface BodyView {
  /** Pretty-printed when it parses as JSON, else as sent. */
  text: string;
  json: boolean;
  /** The server keeps the first 2 KiB and marks the cut with `…`. */
  truncated: boolean;
}

/** How a logged request or reply body is shown. */
export function bodyView(body: string | undefined, shownBytes = 2048): BodyView {
  const raw = body ?? "";
  const truncated = raw.endsWith("…") && new TextEncoder().encode(raw).length > shownBytes;
  const pretty = prettyJson(raw);
  return pretty === null ? { text: raw, json: false, truncated } : { text: pretty, json: true, truncated };
}

/**
 * Newest first (by start time, then id), one entry per id: a re-send's result joins the
 * list before the next poll brings it.
 */
export function newestDeliveries<T extends { id: number; ts: string }>(...lists: T[][]): T[] {
  const byId = new Map<number, T>();
  for (const list of lists) for (const d of list) byId.set(d.id, d);
  // RFC 3339 UTC with milliseconds: a string compare orders by time.
  return [...byId.values()].sort((a, b) => (a.ts < b.ts ? 1 : a.ts > b.ts ? -1 : b.id - a.id));
}

/**
 * What a failed delivery's answer said: the server keeps no body for a non-2xx answer,
 * only its first line in the error (`HTTP 500: boom` → `boom`); null when there is none.
 */
export function failedAnswerLine(error: string | undefined, status: number | undefined): string | null {
  if (!error || status === undefined) return null;
  const prefix = `HTTP ${status}: `;
  return error.startsWith(prefix) ? error.slice(prefix.length) : null;
}
