import { describe, expect, test } from "vitest";
import { parse } from "smol-toml";
import { parseToml, setTomlKey, tomlLiteral } from "./tomledit";

const SAMPLE = `# Sockpit
[server]
port = 8000   # the port
allowed_origins = [
  "http://localhost:*",
  "http://127.0.0.1:*",
]

[auth]
algorithm = "HS256"

[[endpoint]]
path = "/ws/echo/"
auth = "none"
`;

describe("setTomlKey", () => {
  test("replaces a value and keeps its comment", () => {
    const t = setTomlKey(SAMPLE, "server", "port", 9001);
    expect(t).toContain("port = 9001  # the port");
    expect(t.startsWith("# Sockpit\n")).toBe(true);
    expect((parse(t) as any).server.port).toBe(9001);
  });
  test("replaces a multi-line array", () => {
    const t = setTomlKey(SAMPLE, "server", "allowed_origins", ["https://a.example"]);
    const doc = parse(t) as any;
    expect(doc.server.allowed_origins).toEqual(["https://a.example"]);
    expect(doc.server.port).toBe(8000);
    expect(doc.endpoint[0].path).toBe("/ws/echo/");
  });
  test("adds a missing key into its section, and a missing section", () => {
    let t = setTomlKey(SAMPLE, "auth", "leeway_s", 5);
    t = setTomlKey(t, "api", "key_env", "K");
    const doc = parse(t) as any;
    expect(doc.auth).toEqual({ algorithm: "HS256", leeway_s: 5 });
    expect(doc.api).toEqual({ key_env: "K" });
    expect(t.indexOf("leeway_s")).toBeLessThan(t.indexOf("[[endpoint]]"));
    expect(t.indexOf("[api]")).toBeLessThan(t.indexOf("[[endpoint]]"));
    const only = setTomlKey('# endpoints\n[[endpoint]]\npath = "/a/"\n', "server", "port", 1);
    expect(only).toBe('[server]\nport = 1\n\n# endpoints\n[[endpoint]]\npath = "/a/"\n');
    expect((parse(only) as any).endpoint[0].path).toBe("/a/");
  });
  test("removes a key", () => {
    const t = setTomlKey(SAMPLE, "auth", "algorithm", undefined);
    expect((parse(t) as any).auth).toEqual({});
    expect(setTomlKey("", "auth", "x", undefined)).toBe("");
  });
  test("works on empty text", () => {
    expect(setTomlKey("", "server", "port", 1)).toBe("[server]\nport = 1\n");
  });
  test("literals escape strings", () => {
    expect(tomlLiteral('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(tomlLiteral(true)).toBe("true");
    expect((parse(`x = ${tomlLiteral('q"\n')}`) as any).x).toBe('q"\n');
  });
  test("parseToml reports errors", () => {
    expect(parseToml("a = ")).toHaveProperty("error");
    expect(parseToml("a = 1")).toEqual({ doc: { a: 1 } });
  });
});
