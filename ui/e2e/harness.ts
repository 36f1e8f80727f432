// What the browser end-to-end suites share: the real `sockpit serve` binary started in a
// fresh data dir, and Debian's Chromium driven by playwright-core.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium, type Browser } from "playwright-core";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const DOCS = join(ROOT, "docs");
export const BIN = process.env.SOCKPIT_BIN ?? join(ROOT, "target/debug/sockpit");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

export interface Served {
  /** `http://127.0.0.1:PORT` */
  base: string;
  /** The UI login URL `sockpit serve` printed. */
  loginUrl: string;
  dataDir: string;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  stop(): void;
}

/** Starts `sockpit serve --port 0` in a fresh dir (with `config` as its sockpit.toml);
 * or, given `cwd`, plain `sockpit serve` there, with the sockpit.toml found there. */
export function startServer(
  opts: { config?: string; env?: Record<string, string>; cwd?: string } = {},
): Promise<Served> {
  const dataDir = mkdtempSync(join(tmpdir(), "sockpit-e2e-"));
  if (opts.config) writeFileSync(join(dataDir, "sockpit.toml"), opts.config);
  const server: ChildProcess = spawn(BIN, opts.cwd ? ["serve"] : ["serve", "--port", "0"], {
    cwd: opts.cwd ?? dataDir,
    env: { ...process.env, SOCKPIT_DATA_DIR: dataDir, SOCKPIT_LOG: "warn", ...opts.env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<number | null>((ok) => server.once("exit", (code) => ok(code)));
  const stop = () => {
    server.kill("SIGTERM");
    void exited.then(() => rmSync(dataDir, { recursive: true, force: true }));
  };
  let base = "";
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("sockpit serve printed no login URL")), 20_000);
    server.once("exit", (code) => fail(new Error(`sockpit serve exited with ${code}`)));
    createInterface({ input: server.stdout! }).on("line", (line) => {
      const port = line.match(/listening on 127\.0\.0\.1:(\d+)/);
      if (port) base = `http://127.0.0.1:${port[1]}`;
      const login = line.match(/UI login\s+(\S+)/);
      if (login) {
        clearTimeout(timer);
        ok({ base, loginUrl: login[1], dataDir, exited, stop });
      }
    });
  });
}

/** Headless Chromium, quiet on a closed network. */
export function launchChromium(): Promise<Browser> {
  mkdirSync(DOCS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

/** Live processes (zombies aside) whose command line contains `marker`. */
export function processesWith(marker: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const zombie = stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
      if (!zombie && cmd.includes(marker) && pid !== String(process.pid)) found.push(`${pid}: ${cmd}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}
