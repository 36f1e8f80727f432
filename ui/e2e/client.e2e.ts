// End-to-end for the Test client, Publish, Doctor and Settings screens: the real
// `sockpit serve` binary started with a config file, and Debian's Chromium.
import { createHmac } from "node:crypto";
import { createServer } from "node:net";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { DOCS, launchChromium, startServer, type Served } from "./harness";

const SECRET = "e2e-client-secret-0123456789abcdef";

// A file's endpoints replace the defaults, so the defaults are declared again.
const CONFIG = `[[endpoint]]
path = "/ws/dashboard/"
channel = ["dashboard", "user_{user}"]
auth = "jwt"
on_message = "drop"

[[endpoint]]
path = "/ws/echo/"
auth = "none"
on_message = "echo"

[[endpoint]]
path = "/ws/room/"
channel = "room"
auth = "none"
on_message = "broadcast"
`;

let served: Served;
let base = "";
let browser: Browser;
let ui: Page;

/** An HS256 JWT signed with the server's secret. */
function signJwt(claims: Record<string, unknown>): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${head}.${createHmac("sha256", SECRET).update(head).digest("base64url")}`;
}

beforeAll(async () => {
  served = await startServer({ config: CONFIG, env: { SOCKPIT_JWT_SECRET: SECRET } });
  base = served.base;
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  ui = await context.newPage();
  await ui.goto(served.loginUrl);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  served?.stop();
});

const tid = (id: string) => ui.getByTestId(id);
const inRows = () => ui.locator('[data-testid="client-msg"][data-dir="in"]');
const outRows = () => ui.locator('[data-testid="client-msg"][data-dir="out"]');

async function connectTo(path: string) {
  await tid("client-endpoint").selectOption(path);
  await tid("client-connect").click();
  await tid("client-close").waitFor({ timeout: 5000 });
}

async function send(text: string) {
  await tid("client-input").fill(text);
  await tid("client-send").click();
}

describe("test client, publish, doctor", () => {
  test("one click connects a client to /ws/echo/ and messages go both ways", async () => {
    await tid("nav-client").click();
    await expect.poll(() => tid("client-tab").count()).toBe(1);
    await connectTo("/ws/echo/");
    await send("hello echo");
    await expect.poll(() => inRows().filter({ hasText: "hello echo" }).count(), { timeout: 5000 }).toBe(1);
    expect(await outRows().filter({ hasText: "hello echo" }).count()).toBe(1);
    // JSON mode: validated as you type, pretty-printed when a row is expanded.
    await tid("client-mode").selectOption("json");
    await tid("client-input").fill('{"type": "hi",');
    expect(await tid("client-send").isDisabled()).toBe(true);
    await send('{"type":"hi","n":[1,2]}');
    const row = inRows().filter({ hasText: '"type":"hi"' });
    await expect.poll(() => row.count(), { timeout: 5000 }).toBe(1);
    await row.locator("button").click();
    expect(await row.locator("pre").textContent()).toBe('{\n  "type": "hi",\n  "n": [\n    1,\n    2\n  ]\n}');
    // Binary (hex) arrives back as bytes.
    await tid("client-mode").selectOption("hex");
    await send("de ad be ef");
    await expect.poll(() => inRows().filter({ hasText: "de ad be ef" }).count(), { timeout: 5000 }).toBe(1);
    // Saved for reload below.
    await tid("client-mode").selectOption("text");
    await tid("client-input").fill("saved hello");
    await tid("client-save").click();
    await expect.poll(() => tid("client-saved").count()).toBe(1);
    // The code panel has a client for this endpoint.
    expect(await tid("snippet-js").textContent()).toContain(`ws://${new URL(base).host}/ws/echo/`);
  });

  test("three tabs on a broadcast endpoint all receive a message sent from one", async () => {
    for (let i = 0; i < 3; i++) {
      await tid("client-add").click();
      await connectTo("/ws/room/");
    }
    await expect.poll(() => tid("client-tab").count()).toBe(4);
    await send("hi room");
    for (const i of [1, 2, 3]) {
      await tid("client-tab").nth(i).click();
      await expect.poll(() => inRows().filter({ hasText: "hi room" }).count(), { timeout: 5000 }).toBe(1);
    }
    // The sender saw its own send.
    expect(await outRows().filter({ hasText: "hi room" }).count()).toBe(1);
    await tid("client-mode").selectOption("json");
    await send('{"type":"chat","text":"hello everyone","from":3}');
    await inRows().filter({ hasText: "hello everyone" }).first().locator("button").click();
    await ui.locator("details.code").evaluate((d) => ((d as HTMLDetailsElement).open = true));
    await ui.waitForTimeout(200);
    await ui.screenshot({ path: join(DOCS, "client.png") });
    await ui.locator("details.code").evaluate((d) => ((d as HTMLDetailsElement).open = false));
  });

  test("publish delivers to a channel and to a user, with the right counts", async () => {
    // A signed-in dashboard client for user 42 (token minted by the UI).
    await tid("client-add").click();
    await tid("client-endpoint").selectOption("/ws/dashboard/");
    await tid("client-user").fill("42");
    await tid("client-connect").click();
    await tid("client-close").waitFor({ timeout: 5000 });

    await tid("nav-publish").click();
    await tid("publish-kind").selectOption("channel");
    await tid("publish-target").fill("room");
    await tid("publish-data").fill('{"type":"notice","text":"to the room"}');
    await tid("publish-send").click();
    await expect.poll(() => tid("publish-result").textContent(), { timeout: 5000 }).toBe("delivered: 3");

    await tid("publish-kind").selectOption("user");
    await tid("publish-target").fill("42");
    await tid("publish-data").fill('"plain text for 42"');
    await tid("publish-send").click();
    await expect.poll(() => tid("publish-result").textContent(), { timeout: 5000 }).toBe("delivered: 1");

    await tid("publish-target").fill("nobody");
    await tid("publish-send").click();
    await expect.poll(() => tid("publish-result").textContent(), { timeout: 5000 }).toBe("delivered: 0");

    // Invalid JSON cannot be sent.
    await tid("publish-data").fill("{nope");
    expect(await tid("publish-send").isDisabled()).toBe(true);
    await tid("publish-data").fill('{"type":"notice","text":"hello user 42"}');
    await tid("publish-target").fill("42");

    // Copy as curl: the real URL, the key placeholder, never the key.
    await tid("publish-copy-curl").click();
    const curl = await ui.evaluate(() => navigator.clipboard.readText());
    expect(curl).toContain(`'${base}/_sockpit/api/publish'`);
    expect(curl).toContain("$SOCKPIT_API_KEY");
    expect(curl).toContain(`'{"user":"42","data":{"type":"notice","text":"hello user 42"}}'`);
    expect(curl).not.toContain(new URL(served.loginUrl).searchParams.get("key")!);
    await tid("publish-copy-python").click();
    const py = await ui.evaluate(() => navigator.clipboard.readText());
    expect(py).toContain(`"${base}/_sockpit/api/publish"`);
    expect(py).toContain("os.environ['SOCKPIT_API_KEY']");
    await tid("publish-send").click();
    await ui.waitForTimeout(300);
    await ui.screenshot({ path: join(DOCS, "publish.png") });

    // The user's client got both messages.
    await tid("nav-client").click();
    await expect.poll(() => inRows().filter({ hasText: "plain text for 42" }).count(), { timeout: 5000 }).toBe(1);
    expect(await inRows().filter({ hasText: "hello user 42" }).count()).toBe(1);
  });

  test("an expired token closes with 4001 and its reason, and a fresh token fixes it", async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = signJwt({ user_id: "7", token_type: "access", iat: now - 600, exp: now - 120 });
    await tid("client-add").click();
    await tid("client-endpoint").selectOption("/ws/dashboard/");
    await ui.getByLabel("paste token").check();
    await tid("client-token").fill(expired);
    await tid("client-connect").click();
    const info = tid("client-close-info");
    await info.waitFor({ timeout: 5000 });
    const text = await info.textContent();
    expect(text).toContain("4001");
    expect(text).toMatch(/token expired \d+m\d+s ago/);
    expect(text).toContain("mint a new token");
    await tid("client-remint").click();
    await tid("client-close").waitFor({ timeout: 5000 });
  });

  test("saved messages survive a reload", async () => {
    await ui.reload();
    await tid("client-endpoint").waitFor();
    await tid("client-endpoint").selectOption("/ws/echo/");
    await expect.poll(() => tid("client-saved").count()).toBe(1);
    await tid("client-saved").click();
    expect(await tid("client-input").inputValue()).toBe("saved hello");
    await tid("client-endpoint").selectOption("/ws/room/");
    expect(await tid("client-saved").count()).toBe(0);
  });

  test("Doctor runs and shows pass rows", async () => {
    await tid("nav-doctor").click();
    await tid("doctor-token").fill(signJwt({ user_id: "5", token_type: "access", exp: Math.floor(Date.now() / 1000) + 3600 }));
    await tid("doctor-origin").fill("http://localhost:3000");
    await tid("doctor-run").click();
    await tid("doctor-summary").waitFor({ timeout: 10_000 });
    expect(await ui.locator('[data-testid="doctor-check"][data-verdict="pass"]').count()).toBeGreaterThan(2);
    expect(await tid("doctor-summary").textContent()).toMatch(/\d+ passed/);
    await ui.screenshot({ path: join(DOCS, "doctor.png") });
  });
});

// Needs GET/POST/PUT /_sockpit/api/config on the server side.
describe("settings", () => {
  test("the form edits the TOML, validation shows errors, apply restarts", async () => {
    await tid("nav-settings").click();
    const toml = tid("settings-toml");
    await expect.poll(() => toml.inputValue(), { timeout: 5000 }).toContain("/ws/room/");
    await tid("settings-max_connections").fill("500");
    await tid("settings-max_connections").press("Tab");
    expect(await toml.inputValue()).toMatch(/max_connections = 500/);
    await tid("settings-validate").click();
    await tid("settings-result").waitFor({ timeout: 5000 });
    expect(await tid("settings-result").getAttribute("class")).toContain("ok");
    await ui.screenshot({ path: join(DOCS, "settings.png") });

    await tid("settings-max_connections").fill("0");
    await tid("settings-max_connections").press("Tab");
    await tid("settings-validate").click();
    await expect.poll(() => tid("settings-result").textContent(), { timeout: 5000 }).toContain("max_connections");
    expect(await tid("settings-result").getAttribute("class")).toContain("bad");

    await tid("settings-max_connections").fill("500");
    await tid("settings-max_connections").press("Tab");
    await ui.evaluate(() => ((window as any).beforeApply = true));
    await tid("settings-apply").click();
    await tid("settings-restarting").waitFor({ timeout: 5000 });
    // The page follows login_url to the restarted server: a new document.
    await expect.poll(() => ui.evaluate(() => (window as any).beforeApply === undefined).catch(() => false), { timeout: 15_000 }).toBe(true);
    await ui.waitForURL(/\/_sockpit\/(#.*)?$/, { timeout: 15_000 });
    await tid("nav-settings").click();
    await expect.poll(() => tid("settings-toml").inputValue(), { timeout: 10_000 }).toMatch(/max_connections = 500/);
  });

  test("an unknown key is refused and the old config keeps running; a new port applies", async () => {
    await tid("nav-settings").click();
    const toml = tid("settings-toml");
    await expect.poll(() => toml.inputValue(), { timeout: 5000 }).toContain("/ws/room/");
    const good = await toml.inputValue();
    const before = new URL(ui.url()).port;
    await toml.fill(`${good}\n[server]\nbogus_key = 1\n`.replace("[server]\nbogus", "[log]\nbogus"));
    await tid("settings-apply").click();
    await expect.poll(() => tid("settings-result").textContent(), { timeout: 5000 }).toContain("bogus_key");
    expect(await tid("settings-result").getAttribute("class")).toContain("bad");
    // Nothing restarted: same page, same server, still answering.
    expect(new URL(ui.url()).port).toBe(before);
    expect((await fetch(`http://127.0.0.1:${before}/_sockpit/healthz`)).status).toBe(200);

    const port = await new Promise<number>((ok) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => ok(p));
      });
    });
    await toml.fill(good);
    await tid("settings-port").fill(String(port));
    await tid("settings-port").press("Tab");
    await tid("settings-apply").click();
    await ui.waitForURL(new RegExp(`^http://127\\.0\\.0\\.1:${port}/_sockpit/`), { timeout: 15_000 });
    await expect.poll(() => tid("conn-count").textContent(), { timeout: 10_000 }).toBe("0");
    expect((await fetch(`http://127.0.0.1:${port}/_sockpit/healthz`)).status).toBe(200);
  });
});
