// The Django drop-in, end to end: a real Django project (tests/fixtures/django: Django,
// Channels, daphne, SimpleJWT, from PyPI into target/django-venv) started by the real
// `sockpit serve` through `[proxy] command`, driven by Debian's Chromium.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer } from "node:net";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { BIN, DOCS, ROOT, launchChromium, processesWith, startServer, type Served } from "./harness";

const FIXTURE = join(ROOT, "tests/fixtures/django");
const VENV = join(ROOT, "target/django-venv/bin");
// The fixture's SECRET_KEY: SimpleJWT signs with it, Sockpit verifies with it.
const SECRET = "fixture-secret-not-for-production-0123456789abcdef";

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
  });
}

/** A free port whose next port is free too (Sockpit's and the project's, as init picks). */
async function freePair(): Promise<number> {
  for (;;) {
    const port = await freePort();
    const next = await new Promise<boolean>((ok) => {
      const s = createServer();
      s.once("error", () => ok(false));
      s.listen(port + 1, "127.0.0.1", () => s.close(() => ok(true)));
    });
    if (next) return port;
  }
}

/** While this file exists the command exits at once: the test holds the upstream down. */
const holdFile = (port: number) => join(tmpdir(), `sockpit-django-hold-${port}`);

/** Sockpit with the fixture as its upstream, run by `server` (runserver or daphne). */
async function sockpitWithDjango(server: "runserver" | "daphne", port: number): Promise<Served> {
  const run =
    server === "runserver"
      ? `${VENV}/python manage.py runserver 127.0.0.1:${port}`
      : `${VENV}/daphne -b 127.0.0.1 -p ${port} core.asgi:application`;
  const endpoints =
    server === "runserver"
      ? `[[endpoint]]\npath = "/ws/dashboard/"\nchannel = "dashboard"\n`
      : // Daphne holds /ws/dashboard/; Sockpit keeps one endpoint of its own.
        `[[endpoint]]\npath = "/_echo/"\nauth = "none"\non_message = "echo"\n`;
  const config = `
[auth]
secret = "${SECRET}"

${endpoints}
[proxy]
upstream = "http://127.0.0.1:${port}"
websockets = ${server === "daphne"}
command = "test -e ${holdFile(port)} && { echo held by the test; exit 1; }; ${VENV}/python manage.py migrate --noinput -v 0 && exec ${run}"
cwd = "${FIXTURE}"
env = { FIXTURE_DB = "${join(tmpdir(), `sockpit-django-${port}.sqlite3`)}", DJANGO_SECRET_KEY = "${SECRET}" }
`;
  return startServer({ config });
}

const keyOf = (s: Served) => new URL(s.loginUrl).searchParams.get("key")!;

async function api(s: Served, path: string, init: RequestInit = {}): Promise<any> {
  const r = await fetch(`${s.base}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${keyOf(s)}`, "content-type": "application/json" },
  });
  expect(r.ok, `${path}: ${r.status}`).toBe(true);
  return r.json();
}

/** Waits until the command's state is `state`; returns the process status. */
async function processState(s: Served, state: string, ms = 45_000): Promise<any> {
  const until = Date.now() + ms;
  for (;;) {
    const p = (await api(s, "/_sockpit/api/stats")).proxy.process;
    if (p.state === state) return p;
    if (Date.now() > until) throw new Error(`process never ${state}: ${JSON.stringify(p)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function logIn(page: Page) {
  await page.fill("#password", "wonderland");
  await page.click("#login");
  await page.waitForFunction(() => document.querySelector("#who")?.textContent === "alice");
}

describe("a Django project behind Sockpit", () => {
  test("runserver: pages and login through the proxy, the socket on a Sockpit endpoint, a crash restarts it, Quit leaves no Python", async () => {
    const port = await freePort();
    const served = await sockpitWithDjango("runserver", port);
    try {
      await processState(served, "ready");
      const page = await browser.newPage();
      // Loaded through Sockpit: Django sets its CSRF cookie on the page.
      const r = await page.goto(`${served.base}/`);
      expect(r!.status()).toBe(200);
      expect(await page.title()).toBe("Sockpit Django fixture");
      // POST with CSRF through the proxy, session cookie back, socket on Sockpit.
      await logIn(page);
      await page.waitForFunction(() => document.querySelector("#status")?.textContent === "open");
      const delivered = await api(served, "/_sockpit/api/publish", {
        method: "POST",
        body: JSON.stringify({ channel: "dashboard", data: { type: "dashboard.update", count: 3 } }),
      });
      expect(delivered.delivered).toBe(1);
      await page.waitForFunction(() =>
        (window as any).fixture.messages.includes('{"count":3,"type":"dashboard.update"}'),
      );
      const conns = await api(served, "/_sockpit/api/connections");
      expect(conns.connections[0].endpoint).toBe("/ws/dashboard/");
      expect(conns.connections[0].user).toBe("1");

      // The upstream killed mid-test (and held down until the page is seen): the 502
      // page names it and shows its output; released, Sockpit restarts it.
      const before = await processState(served, "ready");
      writeFileSync(holdFile(port), "");
      process.kill(before.pid, "SIGKILL");
      // Killed, then restarted into the hold: it exits with 1, and goes on doing so.
      await expect
        .poll(async () => (await api(served, "/_sockpit/api/stats")).proxy.process.detail, { timeout: 10_000 })
        .toMatch(/^exited with code 1/);
      const down = await page.goto(`${served.base}/`);
      expect(down!.status()).toBe(502);
      const text = await page.textContent("body");
      expect(text).toContain(`http://127.0.0.1:${port}`);
      expect(text).toContain("Sockpit runs it");
      expect(text).toContain("exited with code 1");
      // Its output, not only its command line.
      expect(await page.textContent("pre")).toContain("held by the test");
      await page.screenshot({ path: join(DOCS, "proxy-502.png") });
      // Leave the page: its 2 s self-reload would race the next navigation.
      await page.goto("about:blank");
      rmSync(holdFile(port));
      const again = await processState(served, "ready");
      expect(again.restarts).toBeGreaterThanOrEqual(1);
      expect((await page.goto(`${served.base}/`))!.status()).toBe(200);
      await page.close();
    } finally {
      served.stop();
      await served.exited;
      rmSync(join(tmpdir(), `sockpit-django-${port}.sqlite3`), { force: true });
      rmSync(holdFile(port), { force: true });
    }
    // Quit (SIGTERM) took runserver and its autoreloader child with it.
    expect(processesWith(`runserver 127.0.0.1:${port}`)).toEqual([]);
  }, 120_000);

  test("daphne: consumers behind Sockpit, messages both ways, an expired token closes 4003 with a reason", async () => {
    const port = await freePort();
    const served = await sockpitWithDjango("daphne", port);
    try {
      await processState(served, "ready");
      const page = await browser.newPage();
      await page.goto(`${served.base}/`);
      await logIn(page);
      await page.waitForFunction(() => document.querySelector("#status")?.textContent === "open");
      await page.waitForFunction(() =>
        (window as any).fixture.messages.some((m: string) => m.includes('"type": "hello"')),
      );
      await page.fill("#msg", "hi from the browser");
      await page.click("#send");
      await page.waitForFunction(() =>
        (window as any).fixture.messages.some((m: string) => m.includes("hi from the browser")),
      );
      const conns = await api(served, "/_sockpit/api/connections");
      expect(conns.connections.map((c: any) => c.endpoint)).toEqual(["upstream"]);
      expect(conns.connections[0].msgs_in).toBe(1);

      // Daphne answers the refused handshake with HTTP 403; the page reads why.
      await page.click("#expired");
      await page.waitForFunction(() => document.querySelector("#status")?.textContent?.startsWith("closed 4"));
      const status = await page.textContent("#status");
      expect(status).toMatch(/^closed 4003 upstream refused: HTTP 403 \(token expired or invalid\? Origin not allowed\?\)/);
      await page.screenshot({ path: join(DOCS, "django-expired-token.png") });

      // A path routing.py lacks: daphne answers a bare 500; the page reads the likely cause.
      await page.goto(`${served.base}/?ws=/ws/nope/`);
      await logIn(page);
      await page.waitForFunction(() => document.querySelector("#status")?.textContent?.startsWith("closed 4"));
      expect(await page.textContent("#status")).toMatch(
        /^closed 4502 upstream refused: HTTP 500 \(no route for \/ws\/nope\/ in routing\.py/,
      );
      await page.close();
    } finally {
      served.stop();
      await served.exited;
      rmSync(join(tmpdir(), `sockpit-django-${port}.sqlite3`), { force: true });
      rmSync(holdFile(port), { force: true });
    }
    expect(processesWith(`-p ${port} core.asgi`)).toEqual([]);
  }, 120_000);

  test("sockpit init --write: the config it proposes serves the project unedited", async () => {
    // A copy of the project, migrated (alice is in its own db.sqlite3), as a user has it.
    const project = join(mkdtempSync(join(tmpdir(), "sockpit-init-e2e-")), "project");
    cpSync(FIXTURE, project, {
      recursive: true,
      filter: (src) => !src.includes("__pycache__") && !src.endsWith(".sqlite3"),
    });
    const env = { ...process.env };
    delete env.DJANGO_SECRET_KEY;
    delete env.FIXTURE_DB;
    execFileSync(`${VENV}/python`, ["manage.py", "migrate", "--noinput", "-v", "0"], { cwd: project, env });
    const port = await freePair();
    const report = execFileSync(
      BIN,
      ["init", project, "--python", `${VENV}/python`, "--write", "--port", String(port)],
      { env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
    );
    expect(report).toBe(""); // --write: the report is on stderr, nothing on stdout
    expect(readFileSync(join(project, "sockpit.toml"), "utf8")).toContain("websockets = true");
    const served = await startServer({ cwd: project });
    try {
      expect(served.base).toBe(`http://127.0.0.1:${port}`);
      // This binary carries the real UI (a wheel's too), not the placeholder page.
      const ui = await (
        await fetch(`${served.base}/_sockpit/`, { headers: { authorization: `Bearer ${keyOf(served)}` } })
      ).text();
      expect(ui).toContain('<script type="module"');
      expect(ui).not.toContain("built without its UI");
      await processState(served, "ready");
      const page = await browser.newPage();
      expect((await page.goto(`${served.base}/`))!.status()).toBe(200);
      await logIn(page);
      await page.waitForFunction(() => document.querySelector("#status")?.textContent === "open");
      await page.waitForFunction(() =>
        (window as any).fixture.messages.some((m: string) => m.includes('"type": "hello"')),
      );
      const conns = await api(served, "/_sockpit/api/connections");
      expect(conns.connections.map((c: any) => c.endpoint)).toEqual(["upstream"]);
      // Sockpit's minted tokens are ones the project accepts: same key, same claims.
      const minted = await api(served, "/_sockpit/api/token", {
        method: "POST",
        body: JSON.stringify({ user_id: "1", ttl_s: 60 }),
      });
      const me = await page.evaluate(
        (t) => fetch("/api/me/", { headers: { authorization: `Bearer ${t}` } }).then((r) => r.json()),
        minted.token,
      );
      expect(me.user).toBe("alice");

      await page.click("#expired");
      await page.waitForFunction(() => document.querySelector("#status")?.textContent?.startsWith("closed 4"));
      expect(await page.textContent("#status")).toMatch(/^closed 4003 upstream refused: HTTP 403/);
      await page.close();
    } finally {
      served.stop();
      await served.exited;
      rmSync(join(project, ".."), { recursive: true, force: true });
    }
    expect(processesWith(`-p ${port + 1} core.asgi`)).toEqual([]);
  }, 120_000);
});
