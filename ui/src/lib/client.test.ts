import { describe, expect, test } from "vitest";
import {
  backoffMs, buildWsUrl, closeHint, fillPath, isTerminal, jsonError, loadSaved, missingParams,
  originAllowed, parseBase64, parseHex, prettyIfJson, removeSaved, saveMessage, splitList, toHex,
  type KeyValue,
} from "./client";

function memory(): KeyValue & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return { data, getItem: (k) => data.get(k) ?? null, setItem: (k, v) => void data.set(k, v) };
}

describe("reconnect policy", () => {
  test("backoff doubles from 0.5 s and caps at 10 s", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 20].map(backoffMs)).toEqual([500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
  });
  test("terminal codes", () => {
    for (const c of [4001, 4003, 4004, 1008, 1009]) expect(isTerminal(c)).toBe(true);
    for (const c of [1000, 1001, 1006, 1011, 4000, 4029]) expect(isTerminal(c)).toBe(false);
  });
});

describe("closeHint", () => {
  test("expired token offers a fresh token", () => {
    const h = closeHint(4001, "token expired 3m12s ago");
    expect(h.text).toContain("mint a new token");
    expect(h.action).toEqual({ kind: "remint" });
  });
  test("bad signature names the secret", () => {
    expect(closeHint(4001, "bad signature (check the secret)").text).toContain("the secret differs");
  });
  test("origin, path suggestion, capacity, lost", () => {
    expect(closeHint(4003, "origin http://x:1 not in allowed_origins").text).toContain("allowed_origins");
    expect(closeHint(4003, "channel user.42 is reserved: a path parameter cannot name it").text).toContain("may not join");
    const h = closeHint(4004, "no endpoint /ws/dashbord/ — did you mean /ws/dashboard/?");
    expect(h.action).toEqual({ kind: "switch", path: "/ws/dashboard/" });
    expect(closeHint(4004, "no endpoint /x/").action).toBeUndefined();
    expect(closeHint(4029, "").text).toContain("max_connections");
    expect(closeHint(1006, "").text).toContain("connection lost");
  });
});

describe("binary parsing", () => {
  test("hex in several spellings", () => {
    expect([...parseHex("48 65 0a")]).toEqual([0x48, 0x65, 0x0a]);
    expect([...parseHex("0x48,0x65")]).toEqual([0x48, 0x65]);
    expect([...parseHex("DEADbeef")]).toEqual([0xde, 0xad, 0xbe, 0xef]);
    expect(parseHex("").length).toBe(0);
    expect(() => parseHex("abc")).toThrow(/even/);
    expect(() => parseHex("zz")).toThrow(/0-9/);
  });
  test("base64 standard, url-safe, unpadded", () => {
    expect(new TextDecoder().decode(parseBase64("aGVsbG8="))).toBe("hello");
    expect(new TextDecoder().decode(parseBase64("aGVsbG8"))).toBe("hello");
    expect([...parseBase64("-_8=")]).toEqual([0xfb, 0xff]);
    expect(() => parseBase64("a")).toThrow();
    expect(() => parseBase64("no!")).toThrow(/base64/);
  });
  test("toHex truncates", () => {
    expect(toHex(new Uint8Array([1, 255]))).toBe("01 ff");
    expect(toHex(new Uint8Array(5), 2)).toBe("00 00 …");
  });
});

describe("json helpers", () => {
  test("jsonError and prettyIfJson", () => {
    expect(jsonError('{"a":1}')).toBeNull();
    expect(jsonError('"s"')).toBeNull();
    expect(jsonError("{a}")).toBeTypeOf("string");
    expect(prettyIfJson('{"a":[1]}')).toBe('{\n  "a": [\n    1\n  ]\n}');
    expect(prettyIfJson("hello")).toBeNull();
    expect(prettyIfJson("{broken")).toBeNull();
  });
});

describe("urls", () => {
  test("fillPath and missingParams", () => {
    expect(fillPath("/ws/chat/{room}/", { room: "lobby 1" })).toBe("/ws/chat/lobby%201/");
    expect(fillPath("/ws/chat/{room}/", {})).toBe("/ws/chat/{room}/");
    expect(missingParams("/ws/{a}/{b}/", { a: "x", b: " " })).toEqual(["b"]);
  });
  test("buildWsUrl puts the token in its query param and keeps extra query", () => {
    expect(buildWsUrl("ws://127.0.0.1:8000", "/ws/echo/")).toBe("ws://127.0.0.1:8000/ws/echo/");
    expect(buildWsUrl("ws://h:1/", "/ws/d/", { token: "a.b.c", tokenQuery: "jwt", extraQuery: "?x=1&y=2" })).toBe(
      "ws://h:1/ws/d/?x=1&y=2&jwt=a.b.c",
    );
    expect(buildWsUrl("ws://h:1", "/ws/d/", { token: "t" })).toBe("ws://h:1/ws/d/?token=t");
  });
  test("splitList", () => {
    expect(splitList(" a, b ,,c ")).toEqual(["a", "b", "c"]);
    expect(splitList("")).toEqual([]);
  });
});

describe("originAllowed mirrors the server", () => {
  const defaults = ["http://localhost:*", "http://127.0.0.1:*"];
  test("loopback with any port", () => {
    expect(originAllowed("http://127.0.0.1:8000", defaults)).toBe(true);
    expect(originAllowed("http://localhost", defaults)).toBe(true);
    expect(originAllowed("https://localhost:5173", defaults)).toBe(false);
    expect(originAllowed("http://localhost.evil.test:80", defaults)).toBe(false);
    expect(originAllowed("http://192.168.1.2:8000", defaults)).toBe(false);
  });
  test("exact ports, default port, star, desktop", () => {
    expect(originAllowed("https://app.example.com", ["https://app.example.com"])).toBe(true);
    expect(originAllowed("https://app.example.com:444", ["https://app.example.com"])).toBe(false);
    expect(originAllowed("http://a:3000", ["http://a:3000"])).toBe(true);
    expect(originAllowed("http://a:3001", ["http://a:3000"])).toBe(false);
    expect(originAllowed("http://anything:1", ["*"])).toBe(true);
    expect(originAllowed("tauri://localhost", [])).toBe(true);
  });
});

describe("saved messages", () => {
  test("per path, replace by name, remove, survive a new reader", () => {
    const kv = memory();
    expect(loadSaved(kv, "/ws/echo/")).toEqual([]);
    saveMessage(kv, "/ws/echo/", { name: "hi", mode: "text", text: "hi" });
    saveMessage(kv, "/ws/echo/", { name: "obj", mode: "json", text: '{"a":1}' });
    saveMessage(kv, "/ws/room/", { name: "x", mode: "text", text: "x" });
    saveMessage(kv, "/ws/echo/", { name: "hi", mode: "text", text: "hi again" });
    const list = loadSaved(kv, "/ws/echo/");
    expect(list.map((m) => m.text)).toEqual(['{"a":1}', "hi again"]);
    expect(loadSaved(kv, "/ws/room/")).toHaveLength(1);
    expect(removeSaved(kv, "/ws/room/", "x")).toEqual([]);
    expect(JSON.parse(kv.data.get("sockpit.client.saved")!)).not.toHaveProperty("/ws/room/");
  });
  test("garbage in storage reads as empty", () => {
    const kv = memory();
    kv.setItem("sockpit.client.saved", "not json");
    expect(loadSaved(kv, "/a/")).toEqual([]);
    kv.setItem("sockpit.client.saved", "[1,2]");
    expect(loadSaved(kv, "/a/")).toEqual([]);
  });
});
