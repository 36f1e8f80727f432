// State of the Test client screen: the endpoints list and the open test clients. It
// lives at module level so clients keep running while another screen is shown.
import { fetchEndpoints, mintToken, wsBase } from "./api";
import {
  backoffMs, buildWsUrl, closeHint, fillPath, isTerminal, jsonError, missingParams, parseBase64, parseHex,
  splitList, type CloseHint, type ComposerMode,
} from "./client";
import { CloseCode, type EndpointInfo, type EndpointsResponse } from "./wire";

export type AuthMode = "mint" | "paste" | "none";
export type SocketState = "idle" | "connecting" | "open" | "closing" | "closed";

export interface LogEntry {
  id: number;
  dir: "in" | "out" | "sys";
  t: number;
  size: number;
  text: string;
  binary: boolean;
}

export interface CloseInfo {
  code: number;
  reason: string;
  clean: boolean;
  hint: CloseHint;
  terminal: boolean;
  at: number;
}

const MAX_LOG = 2000;
let nextClient = 1;
let nextEntry = 1;

export const endpoints = $state({
  data: null as EndpointsResponse | null,
  error: "",
});

export async function loadEndpoints(): Promise<void> {
  try {
    endpoints.data = await fetchEndpoints();
    endpoints.error = "";
  } catch (e) {
    endpoints.error = e instanceof Error ? e.message : String(e);
  }
}

export function endpointInfo(path: string): EndpointInfo | undefined {
  return endpoints.data?.endpoints.find((e) => e.path === path);
}

const enc = new TextEncoder();

export class TestClient {
  readonly id = nextClient++;
  endpoint = $state("");
  params = $state<Record<string, string>>({});
  auth = $state<AuthMode>("mint");
  user = $state("1");
  ttl = $state(3600);
  pasted = $state("");
  extraQuery = $state("");
  subprotocols = $state("");
  state = $state<SocketState>("idle");
  url = $state("");
  error = $state("");
  close = $state<CloseInfo | null>(null);
  autoReconnect = $state(false);
  reconnectIn = $state(0);
  /** Why auto-reconnect stopped (a terminal code). */
  reconnectStopped = $state("");
  log = $state.raw<LogEntry[]>([]);
  mode = $state<ComposerMode>("text");
  input = $state("");
  closeCode = $state(String(CloseCode.Normal));
  closeReason = $state("");
  protocol = $state("");

  #ws: WebSocket | null = null;
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #tick: ReturnType<typeof setInterval> | undefined;
  #userClosed = false;

  constructor(endpoint?: EndpointInfo) {
    if (endpoint) this.setEndpoint(endpoint.path);
  }

  get label(): string {
    return `#${this.id} ${this.endpoint || "—"}`;
  }

  setEndpoint(path: string): void {
    this.endpoint = path;
    const info = endpointInfo(path);
    this.params = Object.fromEntries((info?.params ?? []).map((p) => [p, this.params[p] ?? ""]));
    if (info) this.auth = info.auth === "jwt" ? (this.auth === "paste" ? "paste" : "mint") : "none";
  }

  /** The composer's payload, or the reason it cannot be sent. */
  payload(): { data: string | ArrayBuffer; size: number; shown: string; binary: boolean } | { error: string } {
    const text = this.input;
    if (this.mode === "json") {
      const err = jsonError(text);
      if (err) return { error: `invalid JSON: ${err}` };
    }
    if (this.mode === "hex" || this.mode === "base64") {
      try {
        const bytes = this.mode === "hex" ? parseHex(text) : parseBase64(text);
        const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
        return { data: buf, size: bytes.length, shown: hexOf(bytes), binary: true };
      } catch (e) {
        return { error: e instanceof Error ? e.message : String(e) };
      }
    }
    return { data: text, size: enc.encode(text).length, shown: text, binary: false };
  }

  #push(e: Omit<LogEntry, "id" | "t">): void {
    const next = this.log.length >= MAX_LOG ? this.log.slice(this.log.length - MAX_LOG + 1) : this.log.slice();
    next.push({ ...e, id: nextEntry++, t: Date.now() });
    this.log = next;
  }

  note(text: string): void {
    this.#push({ dir: "sys", size: 0, text, binary: false });
  }

  clearLog(): void {
    this.log = [];
  }

  /** Opens the socket; `freshToken` forces minting (the expired-token hint's button). */
  async connect(freshToken = false): Promise<void> {
    this.#cancelRetry();
    this.reconnectStopped = "";
    if (freshToken && this.auth === "paste") this.auth = "mint";
    if (this.#ws && this.state !== "closed") return;
    this.error = "";
    const missing = missingParams(this.endpoint, this.params);
    if (!this.endpoint) {
      this.error = "choose an endpoint";
      return;
    }
    if (missing.length) {
      this.error = `fill in ${missing.map((m) => `{${m}}`).join(", ")}`;
      return;
    }
    this.state = "connecting";
    this.close = null;
    let token = "";
    try {
      if (this.auth === "mint") {
        const r = await mintToken({ user_id: this.user.trim() || "1", ttl_s: this.ttl });
        token = r.token;
        this.note(`minted a token for user ${r.user_id}, expires ${new Date(r.exp * 1000).toLocaleTimeString()}`);
      } else if (this.auth === "paste") {
        token = this.pasted.trim();
        if (!token) throw new Error("paste a token first");
      }
    } catch (e) {
      this.state = "closed";
      this.error = e instanceof Error ? e.message : String(e);
      return;
    }
    const path = fillPath(this.endpoint, this.params);
    const url = buildWsUrl(wsBase(), path, { token, tokenQuery: endpoints.data?.token_query, extraQuery: this.extraQuery });
    // Tokens are never shown, not even in part (DESIGN: redact them everywhere).
    this.url = token ? url.replace(token, "…redacted") : url;
    let ws: WebSocket;
    try {
      const protos = splitList(this.subprotocols);
      ws = protos.length ? new WebSocket(url, protos) : new WebSocket(url);
    } catch (e) {
      this.state = "closed";
      this.error = e instanceof Error ? e.message : String(e);
      return;
    }
    ws.binaryType = "arraybuffer";
    this.#ws = ws;
    this.#userClosed = false;
    ws.onopen = () => {
      if (this.#ws !== ws) return;
      this.state = "open";
      this.protocol = ws.protocol;
      this.#attempt = 0;
      this.note(`connected to ${this.url}${ws.protocol ? ` (subprotocol ${ws.protocol})` : ""}`);
    };
    ws.onmessage = (m) => {
      if (this.#ws !== ws) return;
      if (typeof m.data === "string") {
        this.#push({ dir: "in", size: enc.encode(m.data).length, text: m.data, binary: false });
      } else {
        const bytes = new Uint8Array(m.data as ArrayBuffer);
        this.#push({ dir: "in", size: bytes.length, text: hexOf(bytes), binary: true });
      }
    };
    ws.onclose = (ev) => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      this.state = "closed";
      const terminal = isTerminal(ev.code);
      this.close = { code: ev.code, reason: ev.reason, clean: ev.wasClean, hint: closeHint(ev.code, ev.reason), terminal, at: Date.now() };
      this.note(`closed ${ev.code}${ev.reason ? ` ${ev.reason}` : ""}`);
      if (this.autoReconnect && !this.#userClosed) {
        if (terminal) this.reconnectStopped = `not reconnecting: close ${ev.code} is terminal (${this.close.hint.text})`;
        else this.#scheduleRetry();
      }
    };
  }

  #scheduleRetry(): void {
    const wait = backoffMs(this.#attempt++);
    this.reconnectIn = Math.ceil(wait / 1000);
    this.#tick = setInterval(() => (this.reconnectIn = Math.max(0, this.reconnectIn - 1)), 1000);
    this.#timer = setTimeout(() => {
      this.#cancelRetry();
      void this.connect();
    }, wait);
  }

  #cancelRetry(): void {
    clearTimeout(this.#timer);
    clearInterval(this.#tick);
    this.#timer = undefined;
    this.reconnectIn = 0;
  }

  get retrying(): boolean {
    return this.reconnectIn > 0;
  }

  disconnect(): void {
    this.#cancelRetry();
    this.#userClosed = true;
    const ws = this.#ws;
    if (!ws) return;
    const code = Number(this.closeCode) || CloseCode.Normal;
    this.state = "closing";
    try {
      ws.close(code, this.closeReason);
    } catch (e) {
      // Only 1000 and 3000–4999 may be sent by a browser.
      this.error = e instanceof Error ? e.message : String(e);
      this.state = "open";
    }
  }

  send(): boolean {
    const p = this.payload();
    if ("error" in p) {
      this.error = p.error;
      return false;
    }
    return this.sendRaw(p.data, p.size, p.shown, p.binary);
  }

  /** Browsers cannot send ping frames: this sends the text `ping`. */
  ping(): void {
    this.sendRaw("ping", 4, "ping", false);
  }

  sendRaw(data: string | ArrayBuffer, size: number, shown: string, binary: boolean): boolean {
    if (!this.#ws || this.state !== "open") {
      this.error = "not connected";
      return false;
    }
    this.error = "";
    this.#ws.send(data);
    this.#push({ dir: "out", size, text: shown, binary });
    return true;
  }

  dispose(): void {
    this.#cancelRetry();
    this.#userClosed = true;
    this.#ws?.close(CloseCode.Normal, "test client closed");
    this.#ws = null;
  }
}

function hexOf(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 256), (b) => b.toString(16).padStart(2, "0")).join(" ") + (bytes.length > 256 ? " …" : "");
}

export const clients = $state({
  list: [] as TestClient[],
  active: 0,
});

export function addClient(): TestClient {
  const prev = clients.list[clients.active];
  const first = endpoints.data?.endpoints[0];
  const c = new TestClient(prev ? endpointInfo(prev.endpoint) ?? first : first);
  if (prev) {
    c.params = { ...prev.params };
    c.user = prev.user;
  }
  clients.list.push(c);
  clients.active = clients.list.length - 1;
  return c;
}

export function removeClient(i: number): void {
  const [c] = clients.list.splice(i, 1);
  c?.dispose();
  clients.active = Math.max(0, Math.min(clients.active, clients.list.length - 1));
}
