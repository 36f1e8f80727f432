// Code snippets the UI offers to copy: publish calls (curl, Python requests) and a
// browser client for an endpoint. Pure string builders; the API key is never embedded,
// only the `$SOCKPIT_API_KEY` / `SOCKPIT_API_KEY` environment variable.
import { TERMINAL_CODES } from "./client";

export type PublishKind = "channel" | "user" | "connection";

export interface PublishBody {
  kind: PublishKind;
  target: string;
  data: unknown;
}

/** The JSON body of `POST /_sockpit/api/publish`. */
export function publishBody(b: PublishBody): Record<string, unknown> {
  return { [b.kind]: b.target, data: b.data };
}

/** Quotes for a POSIX shell: `'…'` with `'` as `'\''`. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** `http://127.0.0.1:8000` + `/_sockpit/api/publish`. */
export function publishUrl(serverOrigin: string): string {
  return `${serverOrigin.replace(/\/+$/, "")}/_sockpit/api/publish`;
}

export function curlPublish(serverOrigin: string, b: PublishBody): string {
  return [
    `curl -sS -X POST ${shellQuote(publishUrl(serverOrigin))} \\`,
    `  -H "Authorization: Bearer $SOCKPIT_API_KEY" \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -d ${shellQuote(JSON.stringify(publishBody(b)))}`,
  ].join("\n");
}

/** A JSON value as a Python literal (True/False/None, dicts, lists, strings). */
export function pyLiteral(v: unknown, indent = 0): string {
  const pad = "    ".repeat(indent + 1);
  const end = "    ".repeat(indent);
  if (v === null || v === undefined) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : "None";
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) {
    if (v.length === 0) return "[]";
    return `[\n${v.map((x) => pad + pyLiteral(x, indent + 1)).join(",\n")},\n${end}]`;
  }
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length === 0) return "{}";
  return `{\n${entries.map(([k, x]) => `${pad}${JSON.stringify(k)}: ${pyLiteral(x, indent + 1)}`).join(",\n")},\n${end}}`;
}

export function pythonPublish(serverOrigin: string, b: PublishBody): string {
  return [
    "import os",
    "import requests",
    "",
    "r = requests.post(",
    `    ${JSON.stringify(publishUrl(serverOrigin))},`,
    `    headers={"Authorization": f"Bearer {os.environ['SOCKPIT_API_KEY']}"},`,
    `    json=${pyLiteral(publishBody(b), 1)},`,
    "    timeout=5,",
    ")",
    "r.raise_for_status()",
    `print(r.json()["delivered"], "delivered")`,
  ].join("\n");
}

/** Fills `{name}` in a channel template from path params (unknown ones stay as-is). */
export function fillChannel(template: string, params: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, n: string) => params[n]?.trim() || m);
}

export interface JsClientOptions {
  /** `ws://127.0.0.1:8000/ws/echo/` (no token). */
  url: string;
  /** Whether the endpoint needs a JWT. */
  jwt: boolean;
  /** Query parameter the token goes in. */
  tokenQuery?: string;
}

/** A browser client that reconnects with backoff and stops on terminal close codes. */
export function jsClient(o: JsClientOptions): string {
  const q = o.tokenQuery || "token";
  const urlLine = o.jwt
    ? `const url = () => \`${o.url}?${q}=\${encodeURIComponent(getToken())}\`;`
    : `const url = () => ${JSON.stringify(o.url)};`;
  return [
    ...(o.jwt ? ["// getToken(): your app's JWT for this user (e.g. from your login API).", "const getToken = () => localStorage.getItem(\"access\");"] : []),
    urlLine,
    `// Reconnecting cannot fix these: bad/expired token, origin, path, policy, size.`,
    `const TERMINAL = new Set([${TERMINAL_CODES.join(", ")}]);`,
    "let attempt = 0;",
    "",
    "function connect() {",
    "  const ws = new WebSocket(url());",
    "  ws.onopen = () => {",
    "    attempt = 0;",
    "    console.log(\"connected\");",
    "  };",
    "  ws.onmessage = (e) => {",
    "    let msg = e.data;",
    "    try { msg = JSON.parse(e.data); } catch { /* plain text */ }",
    "    console.log(\"message\", msg);",
    "  };",
    "  ws.onclose = (e) => {",
    "    if (TERMINAL.has(e.code)) {",
    "      console.error(`closed ${e.code} ${e.reason}: not reconnecting`);",
    "      return;",
    "    }",
    "    const delay = Math.min(500 * 2 ** attempt++, 10000); // 0.5 s → 10 s",
    "    console.warn(`closed ${e.code}, reconnecting in ${delay} ms`);",
    "    setTimeout(connect, delay);",
    "  };",
    "  return ws;",
    "}",
    "",
    "connect();",
  ].join("\n");
}
