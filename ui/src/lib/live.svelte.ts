// App-wide live state: the events socket, its reconnect loop, the event store
// and the stats ring, exposed to components through a small $state object.
import { fetchStats, openEvents } from "./api";
import { EventStore, FrameBatcher, StatsRing, isNewRun, unseen } from "./store";
import type { Event, StatsSnapshot } from "./wire";

export type LinkState = "connecting" | "open" | "closed";

export const live = $state({
  link: "connecting" as LinkState,
  /** Seconds until the next reconnect attempt while closed. */
  retryIn: 0,
  lastClose: "",
  stats: null as StatsSnapshot | null,
  statsVersion: 0,
  eventsVersion: 0,
  /** Bumped when a batch holds connected/disconnected events. */
  connChanges: 0,
  total: 0,
  missed: 0,
  now: Date.now(),
});

export const store = new EventStore();
export const ring = new StatsRing();

/** Highest `seq` taken in from the current server run, and that run's start. */
let lastSeq: number | null = null;
let runStart: string | null = null;

const batcher = new FrameBatcher<Event>((batch) => {
  store.push(batch);
  live.total = store.total;
  live.eventsVersion = store.version;
  if (batch.some((e) => e.kind === "connected" || e.kind === "disconnected")) live.connChanges++;
});

/** Takes in a hello's ring or a live batch; a reconnect's hello repeats what was seen. */
function ingest(events: Event[], hello: boolean): void {
  if (hello && isNewRun(events, runStart)) {
    lastSeq = null;
    runStart = events.find((e) => e.kind === "server_started")?.ts ?? null;
  }
  const fresh = unseen(events, lastSeq);
  if (fresh.length === 0) return;
  lastSeq = fresh[fresh.length - 1].seq;
  batcher.add(fresh);
}

function setStats(s: StatsSnapshot): void {
  live.stats = s;
  ring.push(s);
  live.statsVersion++;
}

/** Re-reads the store's version after a local change (pause, clear). */
export function touchEvents(): void {
  live.eventsVersion = store.version;
  live.total = store.total;
}

let started = false;
let delay = 500;
let socket: WebSocket | null = null;
let retryTimer: ReturnType<typeof setTimeout> | undefined;
let retryTick: ReturnType<typeof setInterval> | undefined;
/** The desktop app turns retries off while its server is stopped. */
let retryAllowed: () => boolean = () => true;

export function setRetryGate(allowed: () => boolean): void {
  retryAllowed = allowed;
}

/** Reconnects now (the server moved or came back), dropping any pending retry. */
export function reconnect(): void {
  if (!started) return;
  clearTimeout(retryTimer);
  clearInterval(retryTick);
  delay = 500;
  const old = socket;
  socket = null;
  if (old) {
    old.onclose = null;
    old.close();
  }
  connect();
}

function connect(): void {
  live.link = "connecting";
  socket = openEvents({
    onOpen() {
      live.link = "open";
      live.lastClose = "";
      delay = 500;
    },
    onFrame(f) {
      switch (f.type) {
        case "hello":
          ingest(f.events, true); // after a reconnect the ring is sent again
          setStats(f.stats);
          break;
        case "events":
          ingest(f.events, false);
          break;
        case "stats":
          setStats(f.stats);
          break;
        case "lagged":
          live.missed += f.missed;
          break;
      }
    },
    onClose(ev) {
      live.link = "closed";
      live.lastClose = ev.code === 1006 ? "connection lost" : `${ev.code}${ev.reason ? ` ${ev.reason}` : ""}`;
      if (!retryAllowed()) return;
      const wait = delay;
      delay = Math.min(delay * 2, 10_000);
      live.retryIn = Math.ceil(wait / 1000);
      retryTick = setInterval(() => (live.retryIn = Math.max(0, live.retryIn - 1)), 1000);
      retryTimer = setTimeout(() => {
        clearInterval(retryTick);
        connect();
      }, wait);
    },
  });
}

/** Starts the socket and the 1 s clock once; true if this call started them. */
export function startLive(): boolean {
  if (started) return false;
  started = true;
  fetchStats()
    .then((s) => {
      if (!live.stats) setStats(s);
    })
    .catch(() => {
      /* the socket's hello carries stats too */
    });
  connect();
  setInterval(() => (live.now = Date.now()), 1000);
  return true;
}
