// Is the UI smooth under load? Opens the UI in headless Chromium (Debian's), prints
// "ready", then for SECS seconds on each of the Overview and Logs screens records the
// main thread's long tasks (PerformanceObserver "longtask": any task over 50 ms) and the
// longest gap between animation frames, while the caller (benches/load) drives traffic.
// Prints one JSON line per screen, and a screenshot of each to OUT_DIR.
//
//   node bench/smooth.mjs LOGIN_URL SECS OUT_DIR
import { chromium } from "playwright-core";

const [loginUrl, secsArg, outDir] = process.argv.slice(2);
const secs = Number(secsArg ?? 5);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.addInitScript(() => {
    const w = /** @type {any} */ (window);
    w.__long = [];
    w.__gap = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) w.__long.push(Math.round(e.duration));
    }).observe({ type: "longtask", buffered: true });
    let last = performance.now();
    const frame = (/** @type {number} */ t) => {
      w.__gap = Math.max(w.__gap, t - last);
      last = t;
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  });
  await page.goto(loginUrl);
  await page.waitForSelector("nav", { timeout: 15000 });
  await page.waitForTimeout(1000);
  console.log("ready");
  for (const screen of ["overview", "logs"]) {
    await page.evaluate((s) => {
      location.hash = `#/${s}`;
    }, screen);
    await page.waitForTimeout(500);
    await page.evaluate(() => {
      const w = /** @type {any} */ (window);
      w.__long = [];
      w.__gap = 0;
    });
    await page.waitForTimeout(secs * 1000);
    const r = await page.evaluate(() => {
      const w = /** @type {any} */ (window);
      return { long: w.__long, gap: Math.round(w.__gap) };
    });
    if (outDir) await page.screenshot({ path: `${outDir}/ui-under-load-${screen}.png` });
    console.log(
      JSON.stringify({
        screen,
        long_tasks: r.long.length,
        longest_task_ms: r.long.length ? Math.max(...r.long) : 0,
        longest_frame_gap_ms: r.gap,
      }),
    );
  }
} finally {
  await browser.close();
}
