import { describe, expect, it } from "vitest";
import {
  bodyView,
  failedAnswerLine,
  formatBytes,
  formatClock,
  formatCount,
  formatDuration,
  formatHttpRequest,
  formatMs,
  formatRate,
  formatRelative,
  httpRequestParts,
  httpStatusTone,
  linkStateLabel,
  linkStateTone,
  lostTone,
  newestDeliveries,
  prettyJson,
  processStateLabel,
  processStateTone,
  splitUrl,
  webhookStatusLabel,
  webhookStatusTone,
} from "./format";
import type { BridgeState, BrokerState } from "./wire";

describe("formatBytes", () => {
  it("uses binary units", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(1024 * 1024)).toBe("1.0 MiB");
    expect(formatBytes(230 * 1024 * 1024)).toBe("230 MiB");
    expect(formatBytes(3 * 1024 ** 3)).toBe("3.0 GiB");
    expect(formatBytes(-1)).toBe("–");
  });
});

describe("formatRelative", () => {
  const now = Date.parse("2026-01-01T12:00:00.000Z");
  it("counts seconds, minutes, hours, days", () => {
    expect(formatRelative("2026-01-01T12:00:00.000Z", now)).toBe("just now");
    expect(formatRelative("2026-01-01T11:59:48.000Z", now)).toBe("12s ago");
    expect(formatRelative("2026-01-01T11:56:48.000Z", now)).toBe("3m 12s ago");
    expect(formatRelative("2026-01-01T09:55:00.000Z", now)).toBe("2h 5m ago");
    expect(formatRelative("2025-12-29T12:00:00.000Z", now)).toBe("3d ago");
  });
  it("never goes negative and tolerates garbage", () => {
    expect(formatRelative(now + 5000, now)).toBe("just now");
    expect(formatRelative("not a date", now)).toBe("–");
  });
});

describe("formatClock", () => {
  it("is local HH:MM:SS.mmm", () => {
    expect(formatClock(new Date(2026, 0, 2, 3, 4, 5, 6).toISOString())).toBe("03:04:05.006");
    expect(formatClock(new Date(2026, 0, 2, 23, 59, 59, 999))).toBe("23:59:59.999");
    expect(formatClock("nope")).toBe("--:--:--.---");
  });
});

describe("counts, rates, durations", () => {
  it("groups thousands", () => {
    expect(formatCount(0)).toBe("0");
    expect(formatCount(999)).toBe("999");
    expect(formatCount(10000)).toBe("10,000");
    expect(formatCount(1234567)).toBe("1,234,567");
  });
  it("formats rates", () => {
    expect(formatRate(0)).toBe("0/s");
    expect(formatRate(4.54)).toBe("4.5/s");
    expect(formatRate(3)).toBe("3/s");
    expect(formatRate(120.4)).toBe("120/s");
    expect(formatRate(1250)).toBe("1.3k/s");
    expect(formatRate(2_500_000)).toBe("2.5M/s");
  });
  it("formats uptime", () => {
    expect(formatDuration(42)).toBe("42s");
    expect(formatDuration(303)).toBe("5m 03s");
    expect(formatDuration(7500)).toBe("2h 05m");
    expect(formatDuration(3 * 86400 + 4 * 3600)).toBe("3d 4h");
  });
});

describe("prettyJson", () => {
  it("pretty-prints objects and arrays only", () => {
    expect(prettyJson('{"a":1,"b":[2]}')).toBe('{\n  "a": 1,\n  "b": [\n    2\n  ]\n}');
    expect(prettyJson("[1]")).toBe("[\n  1\n]");
    expect(prettyJson("hello")).toBeNull();
    expect(prettyJson("42")).toBeNull();
    expect(prettyJson('{"cut off')).toBeNull();
    expect(prettyJson(undefined)).toBeNull();
  });
});

describe("proxy formatting", () => {
  it("formats milliseconds", () => {
    expect(formatMs(0)).toBe("0 ms");
    expect(formatMs(12.4)).toBe("12 ms");
    expect(formatMs(999)).toBe("999 ms");
    expect(formatMs(1234)).toBe("1.2 s");
    expect(formatMs(12_400)).toBe("12 s");
    expect(formatMs(125_000)).toBe("2m 05s");
    expect(formatMs(-1)).toBe("–");
  });
  it("writes an http_request line", () => {
    expect(formatHttpRequest({ method: "GET", path: "/path", status: 200, duration_ms: 12, bytes: 3482 })).toBe(
      "GET /path → 200 · 12 ms · 3.4 KiB",
    );
    expect(formatHttpRequest({ method: "POST", path: "/api/?token=[redacted]", status: 502, duration_ms: 3, bytes: 0 })).toBe(
      "POST /api/?token=[redacted] → 502 · 3 ms · 0 B",
    );
    expect(formatHttpRequest({ method: "GET", path: "/slow/", status: 0, duration_ms: 30_000 })).toBe("GET /slow/ → no answer · 30 s");
    expect(formatHttpRequest({ method: "GET", path: "/" })).toBe("GET / → ?");
    expect(httpRequestParts({ method: "GET", path: "/x", status: 404, duration_ms: 1, bytes: 10 })).toEqual({
      request: "GET /x",
      status: "404",
      tone: "warn",
      rest: "1 ms · 10 B",
    });
  });
  it("colours statuses", () => {
    expect(httpStatusTone(200)).toBeNull();
    expect(httpStatusTone(304)).toBeNull();
    expect(httpStatusTone(404)).toBe("warn");
    expect(httpStatusTone(499)).toBe("warn");
    expect(httpStatusTone(500)).toBe("err");
    expect(httpStatusTone(503)).toBe("err");
    expect(httpStatusTone(0)).toBe("warn");
    expect(httpStatusTone(undefined)).toBeNull();
  });
  it("colours process states", () => {
    expect(processStateTone("ready")).toBe("ok");
    expect(processStateTone("starting")).toBe("warn");
    expect(processStateTone("exited")).toBe("err");
    expect(processStateTone("crash_loop")).toBe("err");
    expect(processStateTone("stopped")).toBe("off");
    expect(processStateLabel("crash_loop")).toBe("crash loop");
    expect(processStateLabel("ready")).toBe("ready");
  });
});

describe("link state (bridge and broker)", () => {
  it("colours connected green, connecting amber, reconnecting red", () => {
    expect(linkStateTone("connected")).toBe("ok");
    expect(linkStateTone("connecting")).toBe("warn");
    expect(linkStateTone("reconnecting")).toBe("err");
  });
  it("marks the states that are still trying", () => {
    expect(linkStateLabel("connected")).toBe("connected");
    expect(linkStateLabel("connecting")).toBe("connecting…");
    expect(linkStateLabel("reconnecting")).toBe("reconnecting…");
  });
  it("takes the bridge's and the broker's states alike", () => {
    const bridge: BridgeState = "reconnecting";
    const broker: BrokerState = "reconnecting";
    expect(linkStateTone(bridge)).toBe(linkStateTone(broker));
    expect(linkStateLabel(bridge)).toBe(linkStateLabel(broker));
  });
  it("flags lost publishes: amber once some were lost, red while Redis is still away", () => {
    expect(lostTone(0, "connected")).toBeNull();
    expect(lostTone(0, "reconnecting")).toBeNull();
    expect(lostTone(3, "connected")).toBe("warn");
    expect(lostTone(3, "connecting")).toBe("warn");
    expect(lostTone(3, "reconnecting")).toBe("err");
  });
});

describe("webhookStatusTone", () => {
  it("is green for 2xx, amber for 3xx/4xx, red for 5xx and no answer", () => {
    expect(webhookStatusTone(200)).toBe("ok");
    expect(webhookStatusTone(204)).toBe("ok");
    expect(webhookStatusTone(302)).toBe("warn");
    expect(webhookStatusTone(404)).toBe("warn");
    expect(webhookStatusTone(500)).toBe("err");
    expect(webhookStatusTone(503)).toBe("err");
    expect(webhookStatusTone(undefined)).toBe("err");
  });
  it("labels a missing answer with a dash", () => {
    expect(webhookStatusLabel(500)).toBe("500");
    expect(webhookStatusLabel(undefined)).toBe("—");
  });
});

describe("splitUrl", () => {
  it("separates origin from path and query", () => {
    expect(splitUrl("http://127.0.0.1:8001/ws-hook/?x=1")).toEqual({ origin: "http://127.0.0.1:8001", path: "/ws-hook/?x=1" });
    expect(splitUrl("https://api.example.com/hooks#frag")).toEqual({ origin: "https://api.example.com", path: "/hooks#frag" });
  });
  it("shows / for a bare origin and keeps anything else whole", () => {
    expect(splitUrl("http://localhost:9000")).toEqual({ origin: "http://localhost:9000", path: "/" });
    expect(splitUrl("not a url")).toEqual({ origin: "", path: "not a url" });
  });
});

describe("bodyView", () => {
  it("pretty-prints JSON and keeps other text as sent", () => {
    expect(bodyView('{"a":1,"b":[2]}')).toEqual({ text: '{\n  "a": 1,\n  "b": [\n    2\n  ]\n}', json: true, truncated: false });
    expect(bodyView("boom")).toEqual({ text: "boom", json: false, truncated: false });
    expect(bodyView(undefined)).toEqual({ text: "", json: false, truncated: false });
  });
  it("notices the server's 2 KiB cut", () => {
    const cut = `{"message":"${"x".repeat(2100)}`.slice(0, 2048) + "…";
    expect(bodyView(cut)).toEqual({ text: cut, json: false, truncated: true });
    expect(bodyView("short…").truncated).toBe(false);
  });
});

describe("newestDeliveries", () => {
  const d = (id: number, ts: string) => ({ id, ts });
  it("orders by start time, newest first, then by id", () => {
    const list = [d(1, "2026-01-01T12:00:00.000Z"), d(3, "2026-01-01T12:00:00.500Z"), d(2, "2026-01-01T12:00:01.000Z"), d(4, "2026-01-01T12:00:01.000Z")];
    expect(newestDeliveries(list).map((x) => x.id)).toEqual([4, 2, 3, 1]);
  });
  it("merges a re-send's result once", () => {
    const a = [d(1, "2026-01-01T12:00:00.000Z")];
    const fresh = d(2, "2026-01-01T12:00:05.000Z");
    expect(newestDeliveries(a, [fresh]).map((x) => x.id)).toEqual([2, 1]);
    expect(newestDeliveries([...a, fresh], [fresh]).map((x) => x.id)).toEqual([2, 1]);
  });
});

describe("failedAnswerLine", () => {
  it("takes the answer's first line out of the error", () => {
    expect(failedAnswerLine("HTTP 500: boom", 500)).toBe("boom");
    expect(failedAnswerLine("HTTP 404", 404)).toBeNull();
    expect(failedAnswerLine("connection refused", undefined)).toBeNull();
    expect(failedAnswerLine(undefined, 500)).toBeNull();
  });
});
