import { describe, expect, it } from "vitest";
import {
  EventStore,
  FrameBatcher,
  StatsRing,
  connectionEvents,
  filterEvents,
  isNewRun,
  kindMatches,
  linkStateSeverity,
  upstreamStateSeverity,
  unseen,
  severity,
  toJsonLines,
  type Scheduler,
} from "./store";
import type { Event, StatsSnapshot } from "./wire";

const ev = (i: number, extra: Partial<Event> = {}): Event => ({
  seq: i,
  ts: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, i)).toISOString(),
  kind: "message_in",
  conn: `c${i}`,
  ...extra,
});

describe("EventStore", () => {
  it("caps the buffer by dropping the oldest, while counting everything", () => {
    const s = new EventStore(5);
    s.push([ev(1), ev(2), ev(3)]);
    s.push([ev(4), ev(5), ev(6), ev(7)]);
    expect(s.events.map((e) => e.conn)).toEqual(["c3", "c4", "c5", "c6", "c7"]);
    expect(s.total).toBe(7);
    s.push(Array.from({ length: 12 }, (_, i) => ev(100 + i)));
    expect(s.events).toHaveLength(5);
    expect(s.events[0].conn).toBe("c107");
    expect(s.events[4].conn).toBe("c111");
    expect(s.total).toBe(19);
  });

  it("pause freezes the view but keeps buffering up to the cap", () => {
    const s = new EventStore(4);
    s.push([ev(1), ev(2)]);
    s.pause();
    expect(s.paused).toBe(true);
    s.push([ev(3), ev(4), ev(5)]);
    expect(s.view().map((e) => e.conn)).toEqual(["c1", "c2"]);
    expect(s.pendingWhilePaused).toBe(3);
    expect(s.events.map((e) => e.conn)).toEqual(["c2", "c3", "c4", "c5"]);
    s.resume();
    expect(s.paused).toBe(false);
    expect(s.view().map((e) => e.conn)).toEqual(["c2", "c3", "c4", "c5"]);
    expect(s.pendingWhilePaused).toBe(0);
  });

  it("clear empties the buffer but not the received counter", () => {
    const s = new EventStore();
    s.push([ev(1), ev(2)]);
    const v = s.version;
    s.clear();
    expect(s.events).toEqual([]);
    expect(s.view()).toEqual([]);
    expect(s.total).toBe(2);
    expect(s.version).toBeGreaterThan(v);
  });
});

describe("filterEvents", () => {
  const events: Event[] = [
    ev(1, { kind: "connected", endpoint: "/ws/echo/", conn: "c1" }),
    ev(2, { kind: "message_in", endpoint: "/ws/echo/", conn: "c1", preview: '{"type":"ping"}' }),
    ev(3, { kind: "message_in", endpoint: "/ws/dashboard/", conn: "c12", preview: "hello" }),
    ev(4, { kind: "handshake_rejected", endpoint: "/ws/dashboard/", code: 4001, reason: "token expired 3m12s ago" }),
  ];
  it("returns a copy when nothing filters", () => {
    const out = filterEvents(events, {});
    expect(out).toEqual(events);
    expect(out).not.toBe(events);
  });
  it("filters by kind, endpoint, connection (exact) and free text", () => {
    expect(filterEvents(events, { kind: "message_in" }).map((e) => e.conn)).toEqual(["c1", "c12"]);
    expect(filterEvents(events, { endpoint: "/ws/dashboard/" })).toHaveLength(2);
    expect(filterEvents(events, { conn: " C1 " }).map((e) => e.kind)).toEqual(["connected", "message_in"]);
    expect(filterEvents(events, { text: "EXPIRED" }).map((e) => e.code)).toEqual([4001]);
    expect(filterEvents(events, { text: "4001" })).toHaveLength(1);
    expect(filterEvents(events, { kind: "message_in", endpoint: "/ws/echo/", text: "ping" })).toHaveLength(1);
    expect(filterEvents(events, { kind: "message_out" })).toEqual([]);
  });
  it("picks one connection's recent traffic", () => {
    const more = [...events, ev(5, { kind: "published", conn: "c1" }), ev(6, { kind: "disconnected", conn: "c1", code: 1000 })];
    expect(connectionEvents(more, "c1").map((e) => e.kind)).toEqual(["connected", "message_in", "disconnected"]);
    expect(connectionEvents(more, "c1", 2).map((e) => e.kind)).toEqual(["message_in", "disconnected"]);
  });
});

describe("kind filter", () => {
  const events: Event[] = [
    ev(1, { kind: "http_request", endpoint: "upstream", method: "GET", path: "/api/items/", status: 404 }),
    ev(2, { kind: "upstream_output", reason: "Watching for file changes with StatReloader" }),
    ev(3, { kind: "upstream_state", reason: "ready at http://127.0.0.1:8001 after 1.2s" }),
    ev(4, { kind: "message_in", preview: "hi" }),
    ev(5, { kind: "http_request", endpoint: "upstream", method: "POST", path: "/login/", status: 302 }),
  ];
  it("matches single kinds and groups", () => {
    expect(kindMatches("", "message_in")).toBe(true);
    expect(kindMatches("http_request", "http_request")).toBe(true);
    expect(kindMatches("http_request", "upstream_output")).toBe(false);
    expect(kindMatches("group:http", "http_request")).toBe(true);
    expect(kindMatches("group:http", "message_in")).toBe(false);
    expect(kindMatches("group:upstream", "upstream_output")).toBe(true);
    expect(kindMatches("group:upstream", "upstream_state")).toBe(true);
    expect(kindMatches("group:upstream", "http_request")).toBe(false);
    expect(kindMatches("group:bridge", "bridge_state")).toBe(true);
    expect(kindMatches("group:bridge", "published")).toBe(false);
    expect(kindMatches("group:bridge", "broker_state")).toBe(false);
    expect(kindMatches("group:broker", "broker_state")).toBe(true);
    expect(kindMatches("group:broker", "bridge_state")).toBe(false);
    expect(kindMatches("group:nope" as never, "http_request")).toBe(false);
  });
  it("combines a group with the other filters", () => {
    expect(filterEvents(events, { kind: "group:http" }).map((e) => e.seq)).toEqual([1, 5]);
    expect(filterEvents(events, { kind: "group:upstream" }).map((e) => e.seq)).toEqual([2, 3]);
    expect(filterEvents(events, { kind: "group:http", text: "post" }).map((e) => e.seq)).toEqual([5]);
    expect(filterEvents(events, { kind: "group:http", text: "404" }).map((e) => e.seq)).toEqual([1]);
    expect(filterEvents(events, { kind: "group:upstream", text: "reloader" }).map((e) => e.seq)).toEqual([2]);
    expect(filterEvents(events, { endpoint: "upstream" }).map((e) => e.seq)).toEqual([1, 5]);
  });
});

describe("severity", () => {
  it("reads bridge_state reasons", () => {
    const up = 'listening on redis://127.0.0.1:6379/0 for group_send (prefix "asgi", both channels_redis layers)';
    const down = "redis://127.0.0.1:6379/0: Connection refused (os error 111); retrying in 2.0s";
    expect(linkStateSeverity(up)).toBeNull();
    expect(linkStateSeverity("connecting")).toBeNull();
    expect(linkStateSeverity(down)).toBe("warn");
    expect(linkStateSeverity(undefined)).toBeNull();
    expect(severity(ev(1, { kind: "bridge_state", reason: down }))).toBe("warn");
    expect(severity(ev(1, { kind: "bridge_state", reason: up }))).toBeNull();
    // The wording belongs to bridge_state: another kind saying it is not flagged.
    expect(severity(ev(1, { kind: "published", reason: "retrying in 2.0s" }))).toBeNull();
  });
  it("reads broker_state reasons", () => {
    const up = "sharing channels through redis://127.0.0.1:6379/0 as instance 3f2a9c01d4e5b6a7";
    const down = "Connection refused (os error 111); serving local clients only, retrying in 2.0s";
    expect(linkStateSeverity(up)).toBeNull();
    expect(linkStateSeverity(down)).toBe("warn");
    expect(severity(ev(1, { kind: "broker_state", reason: down }))).toBe("warn");
    expect(severity(ev(1, { kind: "broker_state", reason: up }))).toBeNull();
    expect(severity(ev(1, { kind: "broker_state", reason: "connecting" }))).toBeNull();
  });
  it("flags 5xx answers and upstream trouble", () => {
    expect(severity(ev(1, { kind: "http_request", status: 502 }))).toBe("error");
    expect(severity(ev(1, { kind: "http_request", status: 404 }))).toBeNull();
    expect(severity(ev(1, { kind: "http_request", status: 200 }))).toBeNull();
    expect(severity(ev(1, { kind: "disconnected", code: 4502 }))).toBe("error");
    expect(severity(ev(1, { kind: "upstream_state", reason: "exited with code 1; restarting in 0.5s", code: 1 }))).toBe("warn");
    expect(severity(ev(1, { kind: "upstream_output", reason: "exited with code 1" }))).toBeNull();
  });
  it("reads upstream_state reasons", () => {
    expect(upstreamStateSeverity("started `python3 -m http.server` (pid 12)")).toBeNull();
    expect(upstreamStateSeverity("ready at http://127.0.0.1:8001 after 1.2s")).toBeNull();
    expect(upstreamStateSeverity("stopped with the server")).toBeNull();
    expect(upstreamStateSeverity("killed by signal 9; restarting in 0.5s")).toBe("warn");
    expect(upstreamStateSeverity("http://127.0.0.1:8001 already answers before the command starts: another server holds it")).toBe("warn");
    expect(upstreamStateSeverity("exited with code 1 (3 quick exits in a row: crash loop); restarting in 2.0s")).toBe("error");
    expect(upstreamStateSeverity("cannot start `nope`: No such file or directory")).toBe("error");
    expect(upstreamStateSeverity(undefined)).toBeNull();
  });

  it("flags refusals and policy closes", () => {
    expect(severity(ev(1, { kind: "handshake_rejected", code: 4004 }))).toBe("error");
    expect(severity(ev(1, { kind: "disconnected", code: 4001 }))).toBe("error");
    expect(severity(ev(1, { kind: "disconnected", code: 1008 }))).toBe("warn");
    expect(severity(ev(1, { kind: "disconnected", code: 1009 }))).toBe("warn");
    expect(severity(ev(1, { kind: "disconnected", code: 1000 }))).toBeNull();
    expect(severity(ev(1, { kind: "message_in" }))).toBeNull();
  });
});

describe("export", () => {
  it("produces JSON lines that parse back", () => {
    const events = [ev(1), ev(2, { kind: "disconnected", code: 1000, reason: "bye\nnow" })];
    const text = toJsonLines(events);
    const lines = text.split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe("");
    expect(lines.slice(0, 2).map((l) => JSON.parse(l))).toEqual(events);
    expect(toJsonLines([])).toBe("");
  });
});

describe("unseen / isNewRun", () => {
  it("keeps only events past the last seq", () => {
    const events = [ev(1, { kind: "connected" }), ev(2), ev(3, { kind: "message_out" })];
    expect(unseen(events, 2)).toEqual([events[2]]);
    expect(unseen(events, null)).toEqual(events);
    expect(unseen(events, 3)).toEqual([]);
  });
  it("tells a restart by its server_started", () => {
    const first = [ev(1, { kind: "server_started" }), ev(2, { kind: "connected" })];
    expect(isNewRun(first, null)).toBe(true);
    expect(isNewRun(first, first[0].ts)).toBe(false);
    expect(isNewRun([ev(5, { kind: "connected" })], first[0].ts)).toBe(false);
    const again = [ev(1, { kind: "server_started", ts: "2026-01-01T00:00:09.000Z" })];
    expect(isNewRun(again, first[0].ts)).toBe(true);
  });
});

describe("FrameBatcher", () => {
  it("delivers everything added before a frame in one flush", () => {
    const frames: (() => void)[] = [];
    const schedule: Scheduler = (cb) => frames.push(cb);
    const flushed: number[][] = [];
    const b = new FrameBatcher<number>((items) => flushed.push(items), schedule);
    b.add([1, 2]);
    b.add([3]);
    b.add([]);
    expect(frames).toHaveLength(1);
    expect(b.pending).toBe(3);
    frames.shift()!();
    expect(flushed).toEqual([[1, 2, 3]]);
    b.add([4]);
    expect(frames).toHaveLength(1);
    frames.shift()!();
    expect(flushed).toEqual([[1, 2, 3], [4]]);
  });
});

describe("StatsRing", () => {
  const snap = (sec: number, connections: number): StatsSnapshot => ({
    ts: new Date(Date.UTC(2026, 0, 1, 0, 0, sec)).toISOString(),
    uptime_s: sec,
    connections,
    endpoints: {},
    channels: {},
    channel_count: 0,
    messages_in: 0,
    messages_out: 0,
    bytes_in: 0,
    bytes_out: 0,
    published: 0,
    messages_in_per_s: connections * 2,
    messages_out_per_s: connections * 3,
    dropped_clients: {},
    log_dropped: 0,
  });
  it("keeps only the time window and the capacity", () => {
    const r = new StatsRing(10, 100);
    for (let s = 0; s <= 20; s++) r.push(snap(s, s));
    expect(r.points()[0].connections).toBe(10);
    expect(r.length).toBe(11);
    const [x, c, i, o] = r.columns();
    expect(x).toHaveLength(11);
    expect(c[10]).toBe(20);
    expect(i[10]).toBe(40);
    expect(o[10]).toBe(60);
    const small = new StatsRing(1000, 3);
    for (let s = 0; s < 10; s++) small.push(snap(s, s));
    expect(small.points().map((p) => p.connections)).toEqual([7, 8, 9]);
  });
});
