// End-to-end on the real desktop app: the sockpit-desktop binary in a real window
// (under Xvfb in CI), driven over the W3C WebDriver protocol by WebKitWebDriver.
// Run by `make test` as: xvfb-run -a dbus-run-session -- npm run e2e:desktop
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  cpSync, existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { processesWith } from "./harness";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const APP = process.env.SOCKPIT_DESKTOP_BIN ?? join(ROOT, "target/debug/sockpit-desktop");
const DOCS = join(ROOT, "docs");
/** The app's process name, for pgrep/pkill -x: matching command lines (-f) would also
 * hit the shell that runs this suite with the binary's path in its arguments. */
const APP_NAME = basename(APP).slice(0, 15);

let driver: ChildProcess;
let dataDir: string;
let wd = ""; // http://127.0.0.1:PORT/session/ID
let port = 0; // the app's server port

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => ok(p));
    });
    s.on("error", fail);
  });
}

async function call(method: string, path: string, body?: unknown): Promise<any> {
  const r = await fetch(`${wd}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await r.json()) as { value: any };
  if (!r.ok) throw new Error(`${method} ${path}: ${JSON.stringify(json.value)}`);
  return json.value;
}

async function find(css: string): Promise<string | null> {
  const r = await fetch(`${wd}/element`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ using: "css selector", value: css }),
  });
  if (!r.ok) return null;
  // The reference's key differs between drivers (WebKitWebDriver uses an older one).
  return Object.values(((await r.json()) as { value: Record<string, string> }).value)[0] ?? null;
}

async function text(css: string): Promise<string | null> {
  const id = await find(css);
  return id ? call("GET", `/element/${id}/text`) : null;
}

async function click(css: string): Promise<void> {
  const id = await find(css);
  if (!id) throw new Error(`no element ${css}`);
  await call("POST", `/element/${id}/click`, {});
}

const run = (script: string, args: unknown[] = []) => call("POST", "/execute/sync", { script, args });

async function healthy(): Promise<boolean> {
  try {
    return (await (await fetch(`http://127.0.0.1:${port}/_sockpit/healthz`)).text()) === "ok";
  } catch {
    return false;
  }
}

// The tray menu, over D-Bus: libayatana-appindicator exports it as com.canonical.dbusmenu,
// the same object a desktop panel calls when the user clicks an item.
const MENU_PATH = "/org/ayatana/NotificationItem/tray_icon_tray_app_sockpit/Menu";

function gdbus(args: string[]): string {
  const r = spawnSync("gdbus", ["call", "--session", "--timeout", "3", ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`gdbus ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function trayBus(): string | null {
  const names = gdbus([
    "--dest", "org.freedesktop.DBus", "--object-path", "/org/freedesktop/DBus",
    "--method", "org.freedesktop.DBus.ListNames",
  ]).match(/':[0-9.]+'/g) ?? [];
  for (const quoted of names) {
    const name = quoted.slice(1, -1);
    try {
      layout(name);
      return name;
    } catch {
      /* not the tray's connection */
    }
  }
  return null;
}

function layout(bus: string): string {
  return gdbus([
    "--dest", bus, "--object-path", MENU_PATH,
    "--method", "com.canonical.dbusmenu.GetLayout", "--", "0", "-1", "[]",
  ]);
}

/** The menu's items: label → { id, checked }. */
function menu(bus: string): Map<string, { id: number; checked: boolean }> {
  const items = new Map<string, { id: number; checked: boolean }>();
  for (const m of layout(bus).matchAll(/<\((\d+), \{([^}]*)\}/g)) {
    const label = m[2].match(/'label': <'([^']*)'>/)?.[1];
    if (label) items.set(label, { id: Number(m[1]), checked: /'toggle-state': <1>/.test(m[2]) });
  }
  return items;
}

function clickTray(bus: string, label: string): void {
  const item = menu(bus).get(label);
  if (!item) throw new Error(`no tray item ${label}: ${[...menu(bus).keys()].join(", ")}`);
  gdbus([
    "--dest", bus, "--object-path", MENU_PATH,
    "--method", "com.canonical.dbusmenu.Event", "--", String(item.id), "clicked", "<int32 0>", "0",
  ]);
}

async function screenshot(name: string): Promise<void> {
  // Let the webview paint what the DOM already holds: under Xvfb a capture can otherwise
  // show an earlier frame.
  await run("return new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(ok)));");
  await new Promise((r) => setTimeout(r, 300));
  const png = await call("GET", "/screenshot");
  writeFileSync(join(DOCS, name), Buffer.from(png, "base64"));
}

/** Starts WebKitWebDriver and a session that launches the app with `port` configured:
 * through SOCKPIT_PORT, or (`inFile`) in its config file, where Settings can change it. */
async function launch(appPort: number, inFile = false, extra = ""): Promise<void> {
  dataDir = mkdtempSync(join(tmpdir(), "sockpit-desktop-e2e-"));
  const wdPort = await freePort();
  const { SOCKPIT_PORT: _inherited, ...env } = process.env;
  if (inFile) writeFileSync(join(dataDir, "sockpit.toml"), `[server]\nport = ${appPort}\n${extra}`);
  driver = spawn("WebKitWebDriver", [`--port=${wdPort}`], {
    env: {
      ...env,
      TAURI_WEBVIEW_AUTOMATION: "true",
      SOCKPIT_DATA_DIR: dataDir,
      SOCKPIT_CONFIG: join(dataDir, "sockpit.toml"),
      ...(inFile ? {} : { SOCKPIT_PORT: String(appPort) }),
      SOCKPIT_LOG: "warn",
      // Launch-at-login writes ~/.config/autostart; keep it inside the test's dir.
      HOME: dataDir,
      XDG_CONFIG_HOME: join(dataDir, ".config"),
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const base = `http://127.0.0.1:${wdPort}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${base}/status`)).ok) break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const r = await fetch(`${base}/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      capabilities: { alwaysMatch: { "webkitgtk:browserOptions": { binary: APP, args: [] } } },
    }),
  });
  const session = (await r.json()) as { value: { sessionId: string } };
  if (!r.ok) throw new Error(`no WebDriver session: ${JSON.stringify(session)}`);
  wd = `${base}/session/${session.value.sessionId}`;
  mkdirSync(DOCS, { recursive: true });
}

async function quit(): Promise<void> {
  if (wd) await fetch(wd, { method: "DELETE" }).catch(() => {});
  wd = "";
  driver?.kill();
  // Closing the window only hides it to the tray (as it should), so end the app itself:
  // a second launch would otherwise just focus this one (single instance).
  spawnSync("pkill", ["-KILL", "-x", APP_NAME]);
  for (let i = 0; i < 50 && spawnSync("pgrep", ["-x", APP_NAME]).status === 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true, maxRetries: 5 });
}

describe("the desktop app", () => {
  beforeAll(async () => {
    port = await freePort();
    await launch(port);
  }, 60_000);
  afterAll(quit);

  test("opens its window with the server answering on its port", async () => {
    await expect.poll(() => text('[data-testid="conn-count"]'), { timeout: 20_000 }).toBe("0");
    expect(await healthy()).toBe(true);
    expect(await call("GET", "/title")).toBe("Sockpit");
  });

  test("counts update live as clients connect and leave", async () => {
    await run(
      `window.__e2e = [0, 1].map(() => new WebSocket("ws://127.0.0.1:" + arguments[0] + "/ws/echo/"));`,
      [port],
    );
    await expect.poll(() => text('[data-testid="conn-count"]'), { timeout: 10_000 }).toBe("2");
    await run(`window.__e2e[0].send('{"from":"the desktop window"}');`);
    await new Promise((r) => setTimeout(r, 1500));
    await screenshot("desktop.png");
    await run(`window.__e2e.forEach((s) => s.close());`);
    await expect.poll(() => text('[data-testid="conn-count"]'), { timeout: 10_000 }).toBe("0");
  });

  test("the test client connects with one click and sends", async () => {
    const key = readFileSync(join(dataDir, "api_key"), "utf8").trim();
    const api = (path: string, body?: unknown) =>
      fetch(`http://127.0.0.1:${port}/_sockpit/api/${path}`, {
        method: body === undefined ? "GET" : "POST",
        headers: { "x-api-key": key, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      }).then((r) => r.json() as Promise<any>);
    const before = (await api("stats")).messages_in;
    await click('[data-testid="nav-client"]');
    // One click: the first endpoint is /ws/dashboard/ (jwt); the client mints the token.
    await click('[data-testid="client-connect"]');
    await expect.poll(async () => (await api("stats")).connections, { timeout: 10_000 }).toBe(1);
    expect((await api("publish", { channel: "dashboard", data: "hello desktop" })).delivered).toBe(1);
    const received = () =>
      run(`return [...document.querySelectorAll('[data-testid="client-msg"]')].map((e) => e.textContent).join("|")`);
    await expect.poll(received, { timeout: 10_000 }).toContain("hello desktop");
    const input = await find('[data-testid="client-input"]');
    await call("POST", `/element/${input}/value`, { text: "from the desktop client" });
    await click('[data-testid="client-send"]');
    await expect.poll(async () => (await api("stats")).messages_in, { timeout: 10_000 }).toBe(before + 1);
    await expect.poll(received, { timeout: 10_000 }).toContain("from the desktop client");
    await screenshot("desktop-client.png");
    await click('[data-testid="client-close"]');
    await expect.poll(async () => (await api("stats")).connections, { timeout: 10_000 }).toBe(0);
    await click('[data-testid="nav-overview"]');
  });

  test("stop and start through the controller the tray menu uses", async () => {
    await click('[data-testid="server-stop"]');
    await expect.poll(() => find('[data-testid="server-panel"]'), { timeout: 10_000 }).not.toBeNull();
    expect(await healthy()).toBe(false);
    await screenshot("desktop-stopped.png");
    await click('[data-testid="server-start"]');
    await expect.poll(() => text('[data-testid="conn-count"]'), { timeout: 10_000 }).toBe("0");
    expect(await healthy()).toBe(true);
  });
});

describe("a Django project opened in the desktop app", () => {
  // The fixture's SECRET_KEY: the saved profile holds it, the window never shows it.
  const SECRET = "fixture-secret-not-for-production-0123456789abcdef";
  let project = "";
  beforeAll(async () => {
    port = await freePort();
    await launch(port);
    // A copy of the fixture with its venv where a developer keeps one: .venv beside manage.py.
    project = join(mkdtempSync(join(tmpdir(), "sockpit-desktop-project-")), "mysite");
    cpSync(join(ROOT, "tests/fixtures/django"), project, {
      recursive: true,
      filter: (src) => !src.includes("__pycache__") && !src.endsWith(".sqlite3"),
    });
    symlinkSync(join(ROOT, "target/django-venv"), join(project, ".venv"));
  }, 60_000);
  afterAll(async () => {
    await quit();
    rmSync(join(project, ".."), { recursive: true, force: true });
  });

  const page = async () => {
    try {
      return await (await fetch(`http://127.0.0.1:${port}/`)).text();
    } catch {
      return "";
    }
  };

  test("reads it, saves it as a profile that runs the project behind Sockpit; the tray switches back", async () => {
    await expect.poll(() => text('[data-testid="conn-count"]'), { timeout: 20_000 }).toBe("0");
    expect(await text('[data-testid="first-run"]')).toContain("Open a Django project");
    await click('[data-testid="nav-projects"]');
    const input = await find('[data-testid="project-dir"]');
    await call("POST", `/element/${input}/value`, { text: project });
    await click('[data-testid="project-read"]');
    await expect.poll(() => text('[data-testid="project-preview"]'), { timeout: 30_000 }).toContain("daphne 4.2.3");
    const preview = (await text('[data-testid="project-preview"]')) ?? "";
    expect(preview).toContain("/ws/dashboard/ → dashboard.consumers.DashboardConsumer");
    expect(preview).toContain(`${project}/.venv/bin/python`);
    const shown = await run(`return document.querySelector('[data-testid="project-preview"]').textContent`);
    expect(shown).toContain("# secret = \"…\"");
    expect(shown).not.toContain(SECRET);
    await run(`document.querySelector('[data-testid="project-preview"] details').open = true;`);
    await screenshot("desktop-projects.png");

    await click('[data-testid="project-save"]');
    // One server: the same port now serves the project's pages, through daphne.
    await expect.poll(page, { timeout: 45_000 }).toContain("<title>Sockpit Django fixture</title>");
    const file = join(dataDir, "profiles", "mysite.toml");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8")).toContain(`secret = "${SECRET}"`);
    await expect
      .poll(() => run(`return document.querySelector('[data-testid="profile"].active')?.dataset.name`), { timeout: 10_000 })
      .toBe("mysite");
    const bus = trayBus()!;
    await expect.poll(() => menu(bus).get("mysite")?.checked, { timeout: 5000 }).toBe(true);
    expect(menu(bus).get("Default")?.checked).toBe(false);

    clickTray(bus, "Default");
    await expect.poll(async () => (await fetch(`http://127.0.0.1:${port}/`)).status, { timeout: 20_000 }).toBe(404);
    await expect.poll(() => processesWith(`-p ${port + 1} core.asgi`).length, { timeout: 10_000 }).toBe(0);
    await expect.poll(() => menu(bus).get("Default")?.checked, { timeout: 5000 }).toBe(true);
    await expect
      .poll(() => run(`return document.querySelector('[data-testid="profile"].active')?.dataset.name`), { timeout: 10_000 })
      .toBe("Default");
  });

  test("a folder that is not a Django project is named in a clear error", async () => {
    const input = await find('[data-testid="project-dir"]');
    await call("POST", `/element/${input}/clear`, {});
    await call("POST", `/element/${input}/value`, { text: dataDir });
    await click('[data-testid="project-read"]');
    await expect.poll(() => text('[data-testid="project-error"]'), { timeout: 10_000 }).toContain("no manage.py here");
    expect(readFileSync(join(dataDir, "profiles", "active"), "utf8")).toBe("Default");
  });
});

describe("a second launch", () => {
  let first: ChildProcess | undefined;
  afterAll(async () => {
    first?.kill("SIGTERM");
    await quit();
  });

  /** Mapped top-level windows titled Sockpit (what a person could see). */
  const visibleWindows = () =>
    (spawnSync("xdotool", ["search", "--onlyvisible", "--name", "^Sockpit$"], { encoding: "utf8" }).stdout ?? "")
      .split("\n")
      .filter(Boolean).length;

  test("focuses the first instance's window and exits", async () => {
    port = await freePort();
    dataDir = mkdtempSync(join(tmpdir(), "sockpit-desktop-e2e-"));
    const env = {
      ...process.env,
      SOCKPIT_DATA_DIR: dataDir,
      SOCKPIT_CONFIG: join(dataDir, "sockpit.toml"),
      SOCKPIT_PORT: String(port),
      SOCKPIT_LOG: "warn",
      HOME: dataDir,
      XDG_CONFIG_HOME: join(dataDir, ".config"),
    };
    // As Launch at login starts it: serving, in the tray, no window.
    first = spawn(APP, ["--hidden"], { env, stdio: "ignore" });
    await expect.poll(healthy, { timeout: 20_000 }).toBe(true);
    await new Promise((r) => setTimeout(r, 500));
    expect(visibleWindows()).toBe(0);
    // The second launch, as from the desktop's app menu.
    const second = spawn(APP, [], { env, stdio: "ignore" });
    const exit = await new Promise<number | null>((ok) => {
      const timer = setTimeout(() => ok(-1), 15_000);
      second.on("exit", (code) => {
        clearTimeout(timer);
        ok(code);
      });
    });
    expect(exit).toBe(0);
    await expect.poll(visibleWindows, { timeout: 10_000 }).toBe(1);
    // Still the first instance: one process, one server on its port.
    expect(await healthy()).toBe(true);
    expect(spawnSync("pgrep", ["-x", APP_NAME]).stdout.toString().trim().split("\n")).toHaveLength(1);
  });
});

describe("the tray menu", () => {
  let bus = "";
  // The app runs an upstream through [proxy] command: Stop, Start and Quit act on it too.
  let upstream = "";
  beforeAll(async () => {
    port = await freePort();
    const upPort = await freePort();
    upstream = `http.server ${upPort}`;
    await launch(
      port,
      true,
      `[proxy]\nupstream = "http://127.0.0.1:${upPort}"\ncommand = "exec python3 -m ${upstream} --bind 127.0.0.1"\n`,
    );
    // The tray is exported once the app has set up.
    for (let i = 0; i < 100 && !bus; i++) {
      bus = trayBus() ?? "";
      if (!bus) await new Promise((r) => setTimeout(r, 200));
    }
    if (!bus) throw new Error("the tray menu never appeared on the session bus");
  }, 60_000);
  afterAll(quit);

  test("lists the design's items", () => {
    // The design's items, plus the profiles ("Profile ▸ Default") and "Open a Django project…".
    expect([...menu(bus).keys()]).toEqual([
      "Stop", "Restart", "Profile", "Default", "Open a Django project…", "Open Sockpit",
      "Copy WebSocket URL", "Copy test token", "Launch at login", "Quit",
    ]);
  });

  test("Stop and Start follow the state, in the tray and the window", async () => {
    await expect.poll(() => processesWith(upstream).length, { timeout: 10_000 }).toBe(1);
    clickTray(bus, "Stop");
    await expect.poll(healthy, { timeout: 10_000 }).toBe(false);
    await expect.poll(() => menu(bus).has("Start"), { timeout: 5000 }).toBe(true);
    await expect.poll(() => find('[data-testid="server-panel"]'), { timeout: 5000 }).not.toBeNull();
    expect(processesWith(upstream)).toEqual([]);
    clickTray(bus, "Start");
    await expect.poll(healthy, { timeout: 10_000 }).toBe(true);
    await expect.poll(() => processesWith(upstream).length, { timeout: 10_000 }).toBe(1);
    await expect.poll(() => menu(bus).has("Stop"), { timeout: 5000 }).toBe(true);
    clickTray(bus, "Restart");
    await expect.poll(healthy, { timeout: 10_000 }).toBe(true);
  });

  test("Launch at login writes and removes a real autostart entry", async () => {
    const entry = join(dataDir, ".config", "autostart", "Sockpit.desktop");
    clickTray(bus, "Launch at login");
    await expect.poll(() => existsSync(entry), { timeout: 5000 }).toBe(true);
    // It starts this very binary (the installed one, from the .deb), hidden in the tray.
    const exec = readFileSync(entry, "utf8").match(/^Exec=(.*)$/m)?.[1] ?? "";
    expect(exec.split(" ")[0]).toBe(APP);
    expect(exec).toContain("--hidden");
    await expect.poll(() => menu(bus).get("Launch at login")?.checked, { timeout: 5000 }).toBe(true);
    clickTray(bus, "Launch at login");
    await expect.poll(() => existsSync(entry), { timeout: 5000 }).toBe(false);
    expect(menu(bus).get("Launch at login")?.checked).toBe(false);
  });

  test("Quit stops the server and exits", async () => {
    clickTray(bus, "Quit");
    await expect.poll(healthy, { timeout: 10_000 }).toBe(false);
    await expect
      .poll(() => spawnSync("pgrep", ["-x", APP_NAME]).status, { timeout: 10_000 })
      .not.toBe(0);
    expect(processesWith(upstream)).toEqual([]);
  });
});

describe("the desktop app on a taken port", () => {
  let holder: ReturnType<typeof createServer>;
  beforeAll(async () => {
    port = await freePort();
    holder = createServer();
    await new Promise<void>((ok) => holder.listen(port, "127.0.0.1", ok));
    await launch(port);
  }, 60_000);
  afterAll(async () => {
    await quit();
    holder?.close();
  });

  test("names the process holding the port and moves to a free one in one click", async () => {
    const error = () => text('[data-testid="server-error"]');
    await expect.poll(error, { timeout: 20_000 }).toContain(`port ${port} is in use (held by `);
    expect(await error()).toContain(`pid ${process.pid})`);
    await screenshot("desktop-port-in-use.png");
    await click('[data-testid="server-free-port"]');
    await expect.poll(() => text('[data-testid="conn-count"]'), { timeout: 10_000 }).toBe("0");
    // textContent: the cell is clipped with an ellipsis, which WebDriver's text hides.
    const url = () =>
      run(`return document.querySelector('[data-testid="endpoint-url"]')?.textContent ?? ""`);
    await expect.poll(url, { timeout: 10_000 }).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\//);
    expect(await url()).not.toContain(`:${port}/`);
  });
});

describe("Settings in the desktop window", () => {
  beforeAll(async () => {
    port = await freePort();
    await launch(port, true);
  }, 60_000);
  afterAll(quit);

  test("Apply saves the file and restarts the server on the new port", async () => {
    await expect.poll(() => text('[data-testid="conn-count"]'), { timeout: 20_000 }).toBe("0");
    const next = await freePort();
    await click('[data-testid="nav-settings"]');
    await expect
      .poll(() => run(`return document.querySelector('[data-testid="settings-toml"]')?.value ?? ""`), { timeout: 10_000 })
      .toContain(`port = ${port}`);
    // Type the new port and Tab out of the field (U+E004 is WebDriver's Tab key).
    const field = await find('[data-testid="settings-port"]');
    if (!field) throw new Error("no port field");
    await call("POST", `/element/${field}/clear`, {});
    await call("POST", `/element/${field}/value`, { text: `${next}\uE004` });
    await expect
      .poll(() => run(`return document.querySelector('[data-testid="settings-toml"]')?.value ?? ""`), { timeout: 5000 })
      .toContain(`port = ${next}`);
    await click('[data-testid="settings-apply"]');
    // (The window follows the restarted server at once, so the "Saved" line may be gone
    // before it could be read; the new port answering is the proof.)
    const old = port;
    port = next;
    await expect.poll(healthy, { timeout: 20_000 }).toBe(true);
    port = old;
    await expect.poll(healthy, { timeout: 10_000 }).toBe(false);
    port = next;
    expect(readFileSync(join(dataDir, "sockpit.toml"), "utf8")).toContain(`port = ${next}`);
    // The window follows the server to its new port.
    await click('[data-testid="nav-overview"]');
    const url = () =>
      run(`return document.querySelector('[data-testid="endpoint-url"]')?.textContent ?? ""`);
    await expect.poll(url, { timeout: 10_000 }).toContain(`:${next}/`);
    await expect.poll(() => text('[data-testid="conn-count"]'), { timeout: 10_000 }).toBe("0");
    await screenshot("desktop-settings-applied.png");
  });
});
