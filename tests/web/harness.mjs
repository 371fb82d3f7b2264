// Shared by the interop tests and the browser latency benchmark: the processes (signaling server, `peerdesk
// share`, Xvfb, the X painter), Debian's Chromium driven by playwright-core, and the glass-to-glass measurement
// read from frame stamps in the web viewer.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

export const ROOT = resolve(import.meta.dirname, "../..");
/** Where the workspace's binaries are: $PEERDESK_BIN, else the `ci` profile's output. */
export const BIN = process.env.PEERDESK_BIN || join(ROOT, "target", "ci");
export const CHROMIUM = "/usr/bin/chromium";

const children = [];

/** Starts a process that is killed by `stopAll`; stdout is piped for `waitLine`, stderr inherited. */
export function start(cmd, args, env = {}) {
  const child = spawn(cmd, args, { env: { ...process.env, RUST_LOG: "warn,rtc_ice=error,rtc_dtls=error", ...env }, stdio: ["pipe", "pipe", "inherit"] });
  children.push(child);
  return child;
}

/** Stops every process `start` started. */
export function stopAll() {
  for (const child of children.splice(0)) child.kill("SIGTERM");
}

/** Resolves with the first stdout line matching `re`. */
export function waitLine(child, re, what, timeout = 30_000) {
  return new Promise((resolveLine, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeout);
    createInterface({ input: child.stdout }).on("line", (line) => {
      const m = line.match(re);
      if (m) {
        clearTimeout(timer);
        resolveLine(m);
      }
    });
    child.on("exit", (code) => reject(new Error(`${what}: process exited with ${code}`)));
  });
}

/** The signaling server process, serving the web viewer, with `extraArgs` on its command line (TURN settings, …). */
export async function startServer(extraArgs = []) {
  const child = start(join(BIN, "peerdesk-signaling-server"), ["--listen", "127.0.0.1:0", "--static-dir", join(ROOT, "examples", "web-viewer"), ...extraArgs]);
  const [, addr] = await waitLine(child, /^listening on (.+)$/, "the signaling server");
  return { child, http: `http://${addr}`, ws: `ws://${addr}/ws` };
}

/** A `peerdesk share` host on `server`; resolves once it has its code. */
export async function share(server, args, env) {
  const child = start(join(BIN, "peerdesk"), ["share", "--server", server.ws, "--loopback", ...args], env);
  const [, code] = await waitLine(child, /^code: (\d+)$/, "the host's code");
  return { child, code };
}

const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required",
];

/** Debian's headless Chromium (playwright gives every launch a fresh, empty profile). */
export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/**
 * A visible Chromium on X display `display` that may share the whole screen without asking: the sending side of
 * Chromium's own screen share. Its small window sits in the bottom-right corner, away from the frame stamp.
 */
export function launchScreenSharingBrowser(display, screenWidth, screenHeight) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: false,
    env: { ...process.env, DISPLAY: display },
    args: [...CHROMIUM_ARGS, "--ozone-platform=x11", `--window-position=${screenWidth - 360},${screenHeight - 220}`, "--window-size=360,220",
      "--auto-select-desktop-capture-source=Entire screen", "--disable-backgrounding-occluded-windows"],
  });
}

/** Opens the web viewer on `code`, joining at once; `query` is appended to its URL (`&relay=1`, …). */
export async function openViewer(browser, server, code, viewport = { width: 1280, height: 800 }, query = "") {
  const page = await browser.newPage({ viewport });
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(`${server.http}/index.html?code=${code}&name=Browser%20tech&autojoin=1${query}`);
  return page;
}

/** Waits until `predicate` holds in the page; on timeout, fails with the viewer's state. */
export async function waitFor(page, predicate, arg, what, timeout = 30_000) {
  try {
    await page.waitForFunction(predicate, arg, { timeout, polling: 100 });
  } catch {
    const state = await page.evaluate(() => window.peerdesk && ({ phase: window.peerdesk.phase, error: window.peerdesk.lastError, stats: window.peerdesk.stats })).catch(() => null);
    const status = await page.textContent("#status").catch(() => null);
    throw new Error(`${what}: ${JSON.stringify({ state, status })}`);
  }
}

/** The frame stamp of the frame the viewer's `<video>` shows now (see examples/web-viewer/stamp.js), or null. */
export async function readStamp(page) {
  return page.evaluate(async () => {
    const { StampReader } = await import("./stamp.js");
    return new StampReader().read(document.getElementById("screen"));
  });
}

/** Reads a stamp, retrying for a while (a frame mid-refresh can be briefly unreadable). */
export async function readStampSoon(page) {
  for (let i = 0; i < 30; i++) {
    const stamp = await readStamp(page);
    if (stamp) return stamp;
    await page.waitForTimeout(100);
  }
  return null;
}

/** The value at quantile `q` of ascending `sorted`. */
export function quantile(sorted, q) {
  return sorted[Math.round((sorted.length - 1) * q)];
}

/**
 * Measures the viewer page for `seconds`: the glass-to-glass latency of every stamped frame presented (capture →
 * presentation, from the viewer's stamp reader; ascending), the received video kbit/s, frames decoded, codec.
 */
export async function measureViewer(page, seconds) {
  const inbound = () => page.evaluate(async () => {
    const report = await window.peerdesk.pc.getStats();
    let found = null;
    const codecs = {};
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") found = s;
      if (s.type === "codec") codecs[s.id] = s.mimeType;
    });
    return found && { bytes: found.bytesReceived, frames: found.framesDecoded, time: found.timestamp, codec: codecs[found.codecId] || "",
      jitterDelay: found.jitterBufferDelay, jitterEmitted: found.jitterBufferEmittedCount };
  });
  const first = await inbound();
  const from = await page.evaluate(() => performance.now());
  await page.waitForTimeout(seconds * 1000);
  const last = await inbound();
  const latencies = await page.evaluate((from) => window.peerdesk.latency.samples.filter((s) => s.at >= from).map((s) => s.ms), from);
  latencies.sort((a, b) => a - b);
  return {
    latencies,
    kbps: ((last.bytes - first.bytes) * 8) / (last.time - first.time),
    frames: last.frames - first.frames,
    fps: ((last.frames - first.frames) * 1000) / (last.time - first.time),
    codec: last.codec,
    jitterMsPerFrame: last.jitterEmitted > first.jitterEmitted ? ((last.jitterDelay - first.jitterDelay) / (last.jitterEmitted - first.jitterEmitted)) * 1000 : 0,
  };
}

/**
 * A private Xvfb for the screen-share comparison, started without RandR: Chromium's X11 screen capturer cannot
 * select Xvfb's RandR monitor ("Could not start video source"); without RandR both Chromium and peerdesk capture
 * the whole screen.
 */
export async function startXvfb(width, height, { randr = true } = {}) {
  for (let n = 200 + (process.pid % 300) * 4, tries = 0; tries < 50; n++, tries++) {
    if (existsSync(`/tmp/.X${n}-lock`) || existsSync(`/tmp/.X11-unix/X${n}`)) continue;
    const args = [`:${n}`, "-screen", "0", `${width}x${height}x24`, "-nolisten", "tcp", "-noreset"];
    if (!randr) args.push("-extension", "RANDR");
    const child = start("Xvfb", args);
    for (let i = 0; i < 200 && !existsSync(`/tmp/.X11-unix/X${n}`) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
    if (child.exitCode === null && existsSync(`/tmp/.X11-unix/X${n}`)) return { child, display: `:${n}` };
  }
  throw new Error("could not start Xvfb");
}

/** The X painter (benches/src/x11_painter.rs): the synthetic desktop, stamped, drawn on `display` at `fps`. */
export async function startPainter(display, fps = 30) {
  const child = start(join(BIN, "x11-painter"), ["--display", display, "--fps", String(fps)]);
  await waitLine(child, /^painting /, "the X painter");
  return child;
}

/** How many stamped frames the viewer page presented in the last second. */
async function stampedFramesInLastSecond(page) {
  return page.evaluate(() => {
    const since = performance.now() - 1000;
    return window.peerdesk.latency.samples.filter((s) => s.at >= since).length;
  });
}

/**
 * One glass-to-glass measurement of a screen share of X display `display` into the web viewer in `viewerBrowser`:
 * `peerdesk` (a `peerdesk share` host capturing the display) or `chromium` (Chromium's own getDisplayMedia share,
 * browser's default codec, from the web page host.html in a visible Chromium on that display). Waits `warmup`
 * seconds after the first stamped frame (and up to 15 s more until 10 stamped frames a second arrive), then
 * measures for `seconds`.
 */
export async function measureScreenShare({ mode, server, viewerBrowser, display, size = "1920x1080", warmup = 3, seconds = 10 }) {
  let host, sharer, hostPage;
  if (mode === "peerdesk") {
    host = await share(server, ["--auto-accept", "view"], { DISPLAY: display });
  } else if (mode === "chromium") {
    const [width, height] = size.split("x").map(Number);
    sharer = await launchScreenSharingBrowser(display, width, height);
    hostPage = await sharer.newPage();
    hostPage.on("pageerror", (e) => console.error("host page error:", e));
    hostPage.on("dialog", (dialog) => dialog.accept()); // the customer consents
    await hostPage.goto(`${server.http}/host.html?codec=browser&size=${size}&autostart=1`);
    await waitFor(hostPage, () => window.peerdesk.code, null, "the browser host's code");
    host = { code: await hostPage.evaluate(() => window.peerdesk.code) };
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  const page = await openViewer(viewerBrowser, server, host.code, { width: 1280, height: 760 });
  try {
    await waitFor(page, () => window.peerdesk.latency.samples.length > 0, null, `${mode}: stamped frames in the viewer`);
    await page.waitForTimeout(warmup * 1000);
    // A sender still ramping up (Chromium's own share, once in a CI run: 6 stamped frames in 3 s after the warm-up)
    // gets up to 15 s more to present 10 stamped frames a second; the measurement that follows judges it either way.
    for (let i = 0; i < 30 && (await stampedFramesInLastSecond(page)) < 10; i++) await page.waitForTimeout(500);
    return { mode, ...(await measureViewer(page, seconds)) };
  } finally {
    await page.close();
    if (host.child) host.child.stdin.write("quit\n");
    if (sharer) await sharer.close();
  }
}
