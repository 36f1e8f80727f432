// Event store, frame batching and the stats history ring.
// Plain TypeScript (no Svelte) so Vitest can exercise it directly.
import { CloseCode, type Event, type EventKind, type StatsSnapshot } from "./wire";

export const EVENT_CAP = 20_000;

/** Every kind, for the Logs filter. The check below fails to compile if wire.ts grows a kind. */
export const EVENT_KINDS = [
  "server_started",
  "server_stopped",
  "server_error",
  "handshake_rejected",
  "connected",
  "disconnected",
  "message_in",
  "message_out",
  "published",
  "webhook_failed",
  "http_request",
  "upstream_output",
  "upstream_state",
  "bridge_state",
  "broker_state",
] as const satisfies readonly EventKind[];
type MissingKind = Exclude<EventKind, (typeof EVENT_KINDS)[number]>;
const allKindsListed: [MissingKind] extends [never] ? true : MissingKind = true;
void allKindsListed;

/**
 * The events the UI holds: capped (oldest dropped), with a running counter of
 * everything received and a pause that freezes the view while buffering goes on.
 */
export class EventStore {
  /** Live buffer, oldest first, at most `cap` long. */
  events: Event[] = [];
  /** Events received since the page loaded (not capped, not reset by clear). */
  total = 0;
  /** Bumped on every change; cheap change detection for the UI. */
  version = 0;
  private frozen: Event[] | null = null;
  private totalAtPause = 0;

  constructor(readonly cap: number = EVENT_CAP) {}

  push(batch: readonly Event[]): void {
    if (batch.length === 0) return;
    this.total += batch.length;
    if (batch.length >= this.cap) {
      this.events = batch.slice(batch.length - this.cap);
    } else {
      for (const e of batch) this.events.push(e);
      const over = this.events.length - this.cap;
      if (over > 0) this.events.splice(0, over);
    }
    this.version++;
  }

  get paused(): boolean {
    return this.frozen !== null;
  }

  /** Events received while paused (shown as "N new"). */
  get pendingWhilePaused(): number {
    return this.frozen ? this.total - this.totalAtPause : 0;
  }

  /** What the Logs view shows: the live buffer, or the snapshot taken at pause. */
  view(): readonly Event[] {
    return this.frozen ?? this.events;
  }

  pause(): void {
    if (this.frozen) return;
    this.frozen = this.events.slice();
    this.totalAtPause = this.total;
    this.version++;
  }

  resume(): void {
    if (!this.frozen) return;
    this.frozen = null;
    this.version++;
  }

  /** Empties the buffer (and the paused snapshot); the received counter stays. */
  clear(): void {
    this.events = [];
    if (this.frozen) {
      this.frozen = [];
      this.totalAtPause = this.total;
    }
    this.version++;
  }
}

/**
 * Named sets of kinds the Logs filter offers besides the single kinds, under the
 * heading of the feature (`section`) that produces them.
 */
export const KIND_GROUPS = {
  http: { label: "HTTP", section: "Proxy", kinds: ["http_request"] },
  upstream: { label: "Upstream output", section: "Proxy", kinds: ["upstream_output", "upstream_state"] },
  bridge: { label: "Bridge state", section: "Bridge", kinds: ["bridge_state"] },
  broker: { label: "Broker state", section: "Broker", kinds: ["broker_state"] },
} as const satisfies Record<string, { label: string; section: string; kinds: readonly EventKind[] }>;
export type KindGroup = keyof typeof KIND_GROUPS;

/** The Logs kind filter: everything (`""`), one kind, or a group (`group:http`). */
export type KindFilter = "" | EventKind | `group:${KindGroup}`;

/** Whether an event of kind `kind` passes the kind filter `f`. */
export function kindMatches(f: KindFilter, kind: EventKind): boolean {
  if (!f) return true;
  if (f.startsWith("group:")) {
    const g = KIND_GROUPS[f.slice(6) as KindGroup] as { kinds: readonly EventKind[] } | undefined;
    return g !== undefined && g.kinds.includes(kind);
  }
  return f === kind;
}

export interface EventFilter {
  kind?: KindFilter;
  endpoint?: string;
  conn?: string;
  text?: string;
}

function haystack(e: Event): string {
  return [e.kind, e.conn, e.endpoint, e.method, e.path, e.status, e.channel, e.user, e.remote, e.origin, e.code, e.reason, e.preview]
    .filter((v) => v !== undefined && v !== null)
    .join("\u0000")
    .toLowerCase();
}

/** A predicate for `filter`; null when the filter lets everything through. */
export function eventMatcher(f: EventFilter): ((e: Event) => boolean) | null {
  const kind = f.kind || "";
  const endpoint = f.endpoint || "";
  const conn = (f.conn ?? "").trim().toLowerCase();
  const text = (f.text ?? "").trim().toLowerCase();
  if (!kind && !endpoint && !conn && !text) return null;
  return (e) =>
    (!kind || kindMatches(kind, e.kind)) &&
    (!endpoint || e.endpoint === endpoint) &&
    (!conn || (e.conn ?? "").toLowerCase() === conn) &&
    (!text || haystack(e).includes(text));
}

/** Always a new array (so reactive consumers see a change). */
export function filterEvents(events: readonly Event[], f: EventFilter): Event[] {
  const m = eventMatcher(f);
  return m ? events.filter(m) : events.slice();
}

const CONN_KINDS: ReadonlySet<EventKind> = new Set(["message_in", "message_out", "connected", "disconnected"]);

/** The last `limit` connect/message/disconnect events of one connection, oldest first. */
export function connectionEvents(events: readonly Event[], conn: string, limit = 200): Event[] {
  const out: Event[] = [];
  for (let i = events.length - 1; i >= 0 && out.length < limit; i--) {
    const e = events[i];
    if (e.conn === conn && CONN_KINDS.has(e.kind)) out.push(e);
  }
  return out.reverse();
}

export type Severity = "error" | "warn" | null;

/**
 * How an `upstream_state` reason reads: a crash loop or a command that cannot start is
 * an error, an exit (or a port already taken) a warning. The event has no state field,
 * so this goes by the wording of `src/proxy/process.rs`.
 */
export function upstreamStateSeverity(reason: string | undefined): Severity {
  const r = reason ?? "";
  if (/crash loop|^cannot start/.test(r)) return "error";
  if (/^(exited|killed)\b|already answers/.test(r)) return "warn";
  return null;
}

/**
 * How a `bridge_state` or `broker_state` reason reads: a lost or unreachable Redis
 * (`…; retrying in 2.0s`, `…; serving local clients only, retrying in 2.0s`) is a
 * warning. The events have no state field, so this goes by the wording of
 * `src/bridge.rs` and `src/broker.rs`.
 */
export function linkStateSeverity(reason: string | undefined): Severity {
  return /\bretrying in\b/.test(reason ?? "") ? "warn" : null;
}

/** Rows that must stand out: refused handshakes, server errors, policy closes, 5xx answers. */
export function severity(e: Event): Severity {
  switch (e.kind) {
    case "handshake_rejected":
    case "server_error":
    case "webhook_failed":
      return "error";
    case "http_request":
      return e.status !== undefined && e.status >= 500 ? "error" : null;
    case "upstream_state":
      return upstreamStateSeverity(e.reason);
    case "bridge_state":
    case "broker_state":
      return linkStateSeverity(e.reason);
    case "disconnected":
      if (e.code === undefined) return null;
      if (e.code >= 4000) return "error";
      if (e.code === CloseCode.Policy || e.code === CloseCode.TooBig) return "warn";
      return null;
    default:
      return null;
  }
}

/** JSON Lines: one event per line, newline-terminated (empty string for no events). */
export function toJsonLines(events: readonly Event[]): string {
  if (events.length === 0) return "";
  return events.map((e) => JSON.stringify(e)).join("\n") + "\n";
}

/** Events strictly newer than `ts` (RFC 3339 UTC strings compare lexically). */
/**
 * Events not yet seen, by the server's `seq` (numbered per server run, from 1).
 * `lastSeq` is the highest seq seen from this run; null accepts everything.
 */
export function unseen(events: readonly Event[], lastSeq: number | null): Event[] {
  if (lastSeq === null) return events.slice();
  return events.filter((e) => e.seq > lastSeq);
}

/**
 * Whether a hello comes from a new server run (a restart numbers from 1 again): its
 * ring holds a `server_started` other than the one already seen.
 */
export function isNewRun(events: readonly Event[], seenStart: string | null): boolean {
  const start = events.find((e) => e.kind === "server_started");
  return start !== undefined && start.ts !== seenStart;
}

export type Scheduler = (cb: () => void) => void;

/** requestAnimationFrame, with a timer fallback so a hidden tab still drains. */
export const frameScheduler: Scheduler = (cb) => {
  let done = false;
  const run = () => {
    if (done) return;
    done = true;
    cb();
  };
  if (typeof requestAnimationFrame === "function") requestAnimationFrame(run);
  setTimeout(run, 250);
};

/** Collects items and hands them over once per scheduled tick (per animation frame). */
export class FrameBatcher<T> {
  private queue: T[] = [];
  private scheduled = false;

  constructor(
    private readonly flush: (items: T[]) => void,
    private readonly schedule: Scheduler = frameScheduler,
  ) {}

  add(items: readonly T[]): void {
    if (items.length === 0) return;
    for (const it of items) this.queue.push(it);
    if (this.scheduled) return;
    this.scheduled = true;
    this.schedule(() => {
      this.scheduled = false;
      const q = this.queue;
      this.queue = [];
      if (q.length) this.flush(q);
    });
  }

  get pending(): number {
    return this.queue.length;
  }
}

export interface StatsPoint {
  /** Unix seconds. */
  t: number;
  connections: number;
  inPerS: number;
  outPerS: number;
}

/** Bounded history of stats samples for the Overview chart (5 minutes by default). */
export class StatsRing {
  private pts: StatsPoint[] = [];

  constructor(
    readonly windowS = 300,
    readonly capacity = 1500,
  ) {}

  push(s: StatsSnapshot): void {
    const parsed = Date.parse(s.ts);
    const t = (Number.isNaN(parsed) ? Date.now() : parsed) / 1000;
    const last = this.pts[this.pts.length - 1];
    if (last && t < last.t) this.pts = []; // server restarted with a clock jump: start over
    this.pts.push({ t, connections: s.connections, inPerS: s.messages_in_per_s, outPerS: s.messages_out_per_s });
    let drop = Math.max(0, this.pts.length - this.capacity);
    while (drop < this.pts.length && this.pts[drop].t < t - this.windowS) drop++;
    if (drop > 0) this.pts.splice(0, drop);
  }

  get length(): number {
    return this.pts.length;
  }

  points(): readonly StatsPoint[] {
    return this.pts;
  }

  /** uPlot's column layout: [x, connections, in/s, out/s]. */
  columns(): [number[], number[], number[], number[]] {
    const n = this.pts.length;
    const x = new Array<number>(n), c = new Array<number>(n), i = new Array<number>(n), o = new Array<number>(n);
    for (let k = 0; k < n; k++) {
      const p = this.pts[k];
      x[k] = p.t;
      c[k] = p.connections;
      i[k] = p.inPerS;
      o[k] = p.outPerS;
    }
    return [x, c, i, o];
  }
}
