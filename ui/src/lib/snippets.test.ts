import { describe, expect, test } from "vitest";
import { curlPublish, fillChannel, jsClient, publishBody, pyLiteral, pythonPublish, shellQuote } from "./snippets";

describe("publish snippets", () => {
  const b = { kind: "channel" as const, target: "dashboard", data: { msg: "it's here", n: 1, ok: true, none: null } };

  test("body uses the kind as key", () => {
    expect(publishBody({ kind: "user", target: "42", data: "hi" })).toEqual({ user: "42", data: "hi" });
  });

  test("shellQuote escapes single quotes", () => {
    expect(shellQuote("a'b")).toBe(`'a'\\''b'`);
  });

  test("curl has the real URL, a key placeholder and the exact JSON", () => {
    const s = curlPublish("http://127.0.0.1:8123/", b);
    expect(s).toContain("'http://127.0.0.1:8123/_sockpit/api/publish'");
    expect(s).toContain(`-H "Authorization: Bearer $SOCKPIT_API_KEY"`);
    // Undo the shell quoting of the -d argument and compare the JSON.
    const arg = s.slice(s.indexOf("-d ") + 3);
    const unquoted = arg.slice(1, -1).replace(/'\\''/g, "'");
    expect(JSON.parse(unquoted)).toEqual({ channel: "dashboard", data: b.data });
  });

  test("python uses requests, the env key and Python literals", () => {
    const s = pythonPublish("http://127.0.0.1:8000", b);
    expect(s).toContain('requests.post(\n    "http://127.0.0.1:8000/_sockpit/api/publish",');
    expect(s).toContain(`os.environ['SOCKPIT_API_KEY']`);
    expect(s).toContain('"ok": True');
    expect(s).toContain('"none": None');
    expect(s).not.toContain("true");
  });

  test("pyLiteral", () => {
    expect(pyLiteral([])).toBe("[]");
    expect(pyLiteral({})).toBe("{}");
    expect(pyLiteral("x\"y")).toBe('"x\\"y"');
    expect(pyLiteral([1, false])).toBe("[\n    1,\n    False,\n]");
  });

  test("fillChannel", () => {
    expect(fillChannel("chat.{room}", { room: "lobby" })).toBe("chat.lobby");
    expect(fillChannel("user_{user}", {})).toBe("user_{user}");
  });
});

describe("js client snippet", () => {
  test("respects terminal codes and backs off to 10 s", () => {
    const s = jsClient({ url: "ws://127.0.0.1:8000/ws/echo/", jwt: false });
    expect(s).toContain("new Set([4001, 4003, 4004, 1008, 1009])");
    expect(s).toContain("Math.min(500 * 2 ** attempt++, 10000)");
    expect(s).toContain('const url = () => "ws://127.0.0.1:8000/ws/echo/";');
    expect(s).not.toContain("getToken");
    // It is valid JavaScript.
    expect(() => new Function("WebSocket", "localStorage", s)).not.toThrow();
  });

  test("jwt endpoints put the token in the configured query parameter", () => {
    const s = jsClient({ url: "ws://h:1/ws/dashboard/", jwt: true, tokenQuery: "jwt" });
    expect(s).toContain("ws://h:1/ws/dashboard/?jwt=${encodeURIComponent(getToken())}");
    expect(() => new Function("WebSocket", "localStorage", s)).not.toThrow();
  });
});
