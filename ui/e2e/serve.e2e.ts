// End-to-end: the real `sockpit serve` binary, the real UI it embeds, Debian's Chromium
// driven by playwright-core. Run by `make test` (npm run e2e) with SOCKPIT_BIN set.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { DOCS, launchChromium, startServer, type Served } from "./harness";

let served: Served;
let base = ""; // http://127.0.0.1:PORT
let browser: Browser;
let ui: Page; // the UI
let clients: Page; // a same-origin page that hosts test WebSocket clients

beforeAll(async () => {
  served = await startServer();
  base = served.base;
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  ui = await context.newPage();
  await ui.goto(served.loginUrl);
  clients = await context.newPage();
  await clients.goto(`${base}/_sockpit/healthz`);
  await clients.evaluate(() => {
    const w = window as any;
    w.sockets = [];
    w.closes = [];
    w.open = (path: string) =>
      new Promise<number>((ok) => {
        const ws = new WebSocket(`ws://${location.host}${path}`);
        const i = w.sockets.push(ws) - 1;
        ws.onopen = () => ok(i);
        ws.onclose = (e: CloseEvent) => {
          w.closes.push({ i, code: e.code, reason: e.reason });
          ok(i);
        };
      });
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  served?.stop();
});

const open = (path: string) => clients.evaluate((p) => (window as any).open(p), path);
const closeAll = () =>
  clients.evaluate(() => (window as any).sockets.forEach((s: WebSocket) => s.close()));

describe("sockpit serve in a browser", () => {
  test("login lands on the UI and the live count follows 3 real clients", async () => {
    expect(ui.url()).toBe(`${base}/_sockpit/`);
    const count = ui.getByTestId("conn-count");
    await expect.poll(() => count.textContent()).toBe("0");
    for (let i = 0; i < 3; i++) await open("/ws/echo/");
    await expect.poll(() => count.textContent(), { timeout: 5000 }).toBe("3");
    await clients.evaluate(() => (window as any).sockets[0].send('{"hello":"world"}'));
    await ui.waitForTimeout(1500); // let the chart gather a few points
    await ui.screenshot({ path: join(DOCS, "overview.png") });
    await closeAll();
    await expect.poll(() => count.textContent(), { timeout: 5000 }).toBe("0");
  });

  test("a rejected handshake shows in Logs with its code and reason", async () => {
    const i = await open("/ws/dashboard/"); // no token
    // The refusal is a close after the 101, so `open` may resolve on onopen first: wait
    // for this socket's close (an earlier test's sockets may still be reporting theirs).
    const closeOf = () =>
      clients.evaluate((n) => (window as any).closes.find((c: { i: number }) => c.i === n), i);
    await expect.poll(closeOf, { timeout: 5000 }).toBeDefined();
    expect(await closeOf()).toMatchObject({
      code: 4001,
      reason: "no token (expected ?token=…)",
    });
    await open("/ws/dashbord/");
    await ui.getByTestId("nav-logs").click();
    const rejected = ui.getByTestId("log-row").filter({ hasText: "no token (expected ?token=…)" });
    await expect.poll(() => rejected.count(), { timeout: 5000 }).toBeGreaterThan(0);
    await expect.poll(() => rejected.first().textContent()).toContain("4001");
    await ui.screenshot({ path: join(DOCS, "logs.png") });
  });

  test("kicking a connection from the table closes that client", async () => {
    // Two signed-in users on the dashboard (tokens from the API, with the session
    // cookie), and one anonymous echo client that gets kicked.
    for (const user of ["42", "7"]) {
      await clients.evaluate(async (u) => {
        const r = await fetch("/_sockpit/api/token", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ user_id: u }),
        });
        const { token } = await r.json();
        await (window as any).open(`/ws/dashboard/?token=${token}`);
      }, user);
    }
    const before = await clients.evaluate(() => (window as any).closes.length);
    const i = await open("/ws/echo/");
    await clients.evaluate(() => (window as any).sockets.at(-1).send("hi from the echo client"));
    await ui.getByTestId("nav-connections").click();
    const rows = ui.getByTestId("conn-row");
    await expect.poll(() => rows.count(), { timeout: 5000 }).toBe(3);
    await ui.waitForTimeout(1200); // one poll of the table, so the counters show
    await ui.screenshot({ path: join(DOCS, "connections.png") });
    const echoRow = rows.filter({ hasText: "/ws/echo/" });
    await echoRow.getByTestId("kick").click();
    await expect
      .poll(() => clients.evaluate(() => (window as any).closes.length), { timeout: 5000 })
      .toBe(before + 1);
    const closed = await clients.evaluate(() => (window as any).closes.at(-1));
    expect(closed.i).toBe(i);
    expect(closed.code).toBe(4000);
    await expect.poll(() => rows.count(), { timeout: 5000 }).toBe(2);
    await ui.getByTestId("nav-overview").click();
    await ui.waitForTimeout(600);
    await ui.emulateMedia({ colorScheme: "dark" });
    await ui.waitForTimeout(300);
    await ui.screenshot({ path: join(DOCS, "overview-dark.png") });
    await ui.emulateMedia({ colorScheme: "light" });
    await closeAll();
  });

  test("1,000 events/s for 10 s keeps the page responsive and the count right", async () => {
    await ui.getByTestId("nav-logs").click();
    const counter = ui.getByTestId("event-count");
    const start = Number(await counter.textContent());
    await ui.evaluate(() => {
      const w = window as any;
      w.longTasks = [];
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) w.longTasks.push(e.duration);
      }).observe({ type: "longtask", buffered: false });
    });
    // One echo client sending 500 messages/s: each makes message_in + message_out.
    const sent: number = await clients.evaluate(
      () =>
        new Promise<number>((ok) => {
          const ws = new WebSocket(`ws://${location.host}/ws/echo/`);
          let n = 0;
          ws.onopen = () => {
            const t0 = performance.now();
            const timer = setInterval(() => {
              const due = Math.min(5000, Math.floor(((performance.now() - t0) / 1000) * 500));
              while (n < due) ws.send(`{"seq":${n++}}`);
              if (n >= 5000) {
                clearInterval(timer);
                setTimeout(() => {
                  ws.close();
                  ok(n);
                }, 500);
              }
            }, 10);
          };
        }),
    );
    expect(sent).toBe(5000);
    // connected + 5000 × (message_in + message_out) + disconnected
    const expected = start + 2 + 2 * sent;
    await expect
      .poll(async () => Number(await counter.textContent()), { timeout: 15_000 })
      .toBe(expected);
    const longTasks: number[] = await ui.evaluate(() => (window as any).longTasks);
    const total = longTasks.reduce((a, b) => a + b, 0);
    const worst = Math.max(0, ...longTasks);
    console.log(`long tasks during 10 s at 1,000 events/s: ${longTasks.length}, total ${total.toFixed(0)} ms, worst ${worst.toFixed(0)} ms`);
    expect(worst).toBeLessThan(500);
    expect(total).toBeLessThan(3000);
    // The list is virtualised: the DOM holds a screenful, not thousands of rows.
    expect(await ui.getByTestId("log-row").count()).toBeLessThan(200);
  }, 60_000);
});

describe("a log file that cannot be written", () => {
  let full: Served;
  afterAll(() => full?.stop());

  test("the Overview says so while the server keeps serving", async () => {
    // /dev/full fails every write with ENOSPC: a full disk.
    full = await startServer({ config: '[log]\nfile = "/dev/full"\n' });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await page.goto(full.loginUrl);
    await page.evaluate(
      (url) =>
        new Promise<void>((ok) => {
          const ws = new WebSocket(url);
          ws.onopen = () => {
            for (let i = 0; i < 20; i++) ws.send(`message ${i}`);
            setTimeout(() => ok(), 300);
          };
        }),
      `${full.base.replace("http", "ws")}/ws/echo/`,
    );
    const alert = page.getByTestId("log-error");
    await alert.waitFor({ timeout: 10_000 });
    expect(await alert.textContent()).toContain("No space left on device");
    expect(await page.getByTestId("conn-count").textContent()).toBe("1");
    await page.screenshot({ path: join(DOCS, "overview-log-error.png") });
    await context.close();
  });
});

describe("webhooks", () => {
  let hooked: Served;
  let backend: Server;
  afterAll(() => {
    hooked?.stop();
    backend?.close();
  });

  test("deliveries are listed, a failure shows its tries, a re-send reaches the client again", async () => {
    // The app's backend: /hook echoes the JSON it gets, /fail always answers 500.
    backend = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        if (req.url === "/hook") {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ echo: JSON.parse(body).message }));
        } else {
          res.writeHead(500, { "content-type": "text/plain" });
          res.end("boom");
        }
      });
    });
    await new Promise<void>((ok) => backend.listen(0, "127.0.0.1", ok));
    const port = (backend.address() as AddressInfo).port;
    hooked = await startServer({
      config: `[[endpoint]]
path = "/ws/hook/"
auth = "none"
on_message = "webhook"
webhook = "http://127.0.0.1:${port}/hook"
webhook_disconnect = "http://127.0.0.1:${port}/fail"
`,
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await page.goto(hooked.loginUrl);
    await page.evaluate(
      (url) =>
        new Promise<void>((ok) => {
          const w = window as any;
          w.replies = [];
          w.hook = new WebSocket(url);
          w.hook.onmessage = (m: MessageEvent) => {
            w.replies.push(m.data);
            if (w.replies.length === 2) ok();
          };
          w.hook.onopen = () => {
            w.hook.send("hello");
            w.hook.send("again");
          };
        }),
      `${hooked.base.replace("http", "ws")}/ws/hook/`,
    );
    const replies = () => page.evaluate(() => (window as any).replies as string[]);
    expect(await replies()).toEqual(['{"echo":"hello"}', '{"echo":"again"}']);

    await page.getByTestId("nav-webhooks").click();
    const rows = page.getByTestId("webhook-row");
    await expect.poll(() => rows.count(), { timeout: 5000 }).toBe(2);
    expect(await rows.first().getByTestId("webhook-status").textContent()).toBe("200");
    expect(await rows.first().textContent()).toContain('"again"'); // newest first

    // Re-send the first message while its connection is open: the reply goes to it.
    await rows.nth(1).click();
    expect(await page.getByTestId("webhook-request").textContent()).toContain('"message": "hello"');
    await page.getByTestId("webhook-resend").click();
    await expect.poll(() => rows.count(), { timeout: 5000 }).toBe(3);
    await expect.poll(replies, { timeout: 5000 }).toHaveLength(3);
    expect((await replies())[2]).toBe('{"echo":"hello"}');
    // The new delivery is at the top, open.
    expect(await rows.first().textContent()).toContain('"hello"');
    expect(await page.getByTestId("webhook-response").textContent()).toContain('"echo": "hello"');

    // The disconnect hook answers 500: tried 3 times (0.5 s + 1 s apart), then logged.
    await page.evaluate(() => (window as any).hook.close());
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(4);
    const failed = rows.first();
    expect(await failed.textContent()).toContain("disconnect");
    expect(await failed.getByTestId("webhook-status").textContent()).toBe("500");
    expect(await failed.textContent()).toContain("HTTP 500: boom");
    await failed.click();
    expect(await page.getByTestId("webhook-request").textContent()).toContain('"event": "disconnect"');
    await page.screenshot({ path: join(DOCS, "webhooks.png") });
    await context.close();
  });
});
