// One network-bench measurement with Chromium's web viewer (libwebrtc's receiver) as the viewer of a `peerdesk
// share` host, on whatever network this process runs in (scripts/bench-network.sh runs it inside the namespace
// of a scenario). The host shares the stamped synthetic desktop (1080p30), exactly as `peerdesk demo` does for
// the Rust viewer; the viewer page reads the stamp of every presented frame.
//
//   node benches/network/chromium-viewer.mjs [--seconds 10] [--still-seconds 4] [--turn-url URL --turn-secret-file F]
// With a TURN server the signaling server issues credentials for it and host and viewer use relay-only ICE.
// Prints one JSON line: join_ms (page open → first stamped frame), p50, p95 (glass-to-glass ms), fps, kbps
// (moving), still_kbps, freezes (gaps > 250 ms between presented frames), longest_ms, keyframes (decoded),
// p95_settled and longest_settled_ms (the same from 5 s into the moving phase on, as `peerdesk demo` prints them).
// Needs the ci binaries in $PEERDESK_BIN (default target/ci) and playwright-core in tests/web/node_modules.
import { parseArgs } from "node:util";
import {
  startServer, share, launchBrowser, openViewer, waitFor, measureViewer, quantile, stopAll,
} from "../../tests/web/harness.mjs";

const { values: opts } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    "still-seconds": { type: "string", default: "4" },
    "turn-url": { type: "string" },
    "turn-secret-file": { type: "string" },
  },
});
const FREEZE_MS = 250;
const SETTLE_MS = 5000;

let browser;
try {
  const relay = opts["turn-url"] !== undefined;
  const server = await startServer(relay ? ["--turn-url", opts["turn-url"], "--turn-secret-file", opts["turn-secret-file"]] : []);
  browser = await launchBrowser();
  // The host shares the synthetic desktop, as the Rust viewer's run does.
  const host = await share(server, ["--auto-accept", "view", "--synthetic", ...(relay ? ["--relay-only"] : [])]);
  const opened = Date.now();
  const page = await openViewer(browser, server, host.code, { width: 1280, height: 760 }, relay ? "&relay=1" : "");
  await waitFor(page, () => window.peerdesk.latency.samples.length > 0, null, "stamped frames in the viewer", 60_000);
  const joinMs = Date.now() - opened;
  const from = await page.evaluate(() => performance.now());
  const moving = await measureViewer(page, Number(opts.seconds));
  const samples = await page.evaluate((from) => window.peerdesk.latency.samples.filter((s) => s.at >= from), from);
  let freezes = 0;
  let longest = 0;
  let longestSettled = 0;
  for (let i = 1; i < samples.length; i++) {
    const gap = samples[i].at - samples[i - 1].at;
    if (gap > FREEZE_MS) freezes++;
    longest = Math.max(longest, gap);
    if (samples[i].at >= from + SETTLE_MS) longestSettled = Math.max(longestSettled, gap);
  }
  const settled = samples.filter((s) => s.at >= from + SETTLE_MS).map((s) => s.ms).sort((a, b) => a - b);
  const keyframes = await page.evaluate(async () => {
    let n = 0;
    (await window.peerdesk.pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") n = s.keyFramesDecoded; });
    return n;
  });
  // Still screen: the host freezes its picture; let the encoder settle, then measure.
  host.child.stdin.write("still\n");
  await page.waitForTimeout(2000);
  const still = await measureViewer(page, Number(opts["still-seconds"]));
  console.log(JSON.stringify({
    join_ms: joinMs, p50: quantile(moving.latencies, 0.5), p95: quantile(moving.latencies, 0.95), fps: moving.fps,
    kbps: moving.kbps, still_kbps: still.kbps, freezes, longest_ms: Math.round(longest), keyframes, codec: moving.codec,
    p95_settled: settled.length ? quantile(settled, 0.95) : null, longest_settled_ms: Math.round(longestSettled),
  }));
} finally {
  if (browser) await browser.close();
  stopAll();
}
