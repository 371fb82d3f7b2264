// Interop with a real browser: peerdesk hosts (the `peerdesk share` process) and the web viewer in Debian's
// headless Chromium, through the signaling server process, over WebRTC on this machine.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { deflateSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BIN, ROOT, start, stopAll, startServer, waitLine, share as shareOn, launchBrowser, openViewer as openViewerIn, waitFor,
  readStampSoon, measureViewer, quantile, startXvfb, startPainter, measureScreenShare,
} from "./harness.mjs";

const SHOTS = join(ROOT, "target", "screenshots");
let browser;
let server;

const share = (args, env) => shareOn(server, args, env);
const openViewer = (code) => openViewerIn(browser, server, code);

before(async () => {
  assert.ok(existsSync(join(BIN, "peerdesk")), "build first: cargo build --profile ci --workspace --bins");
  mkdirSync(SHOTS, { recursive: true });
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  stopAll();
});

test("rust host → browser viewer: AV1 frames decode, stamps advance, host end is shown", async () => {
  const host = await share(["--synthetic", "--size", "960x540", "--auto-accept", "view"]);
  const page = await openViewer(host.code);
  await waitFor(page, () => window.peerdesk.phase === "connected", null, "connected");
  await waitFor(page, () => (window.peerdesk.stats.framesDecoded || 0) > 30, null, "frames decoded");
  const stats = await page.evaluate(() => window.peerdesk.stats);
  assert.equal(stats.codec.toLowerCase(), "video/av1", `codec ${stats.codec}`);
  const first = await readStampSoon(page);
  assert.ok(first, "the frame stamp is readable from the browser's decoded pixels");
  await page.waitForTimeout(500);
  const second = await readStampSoon(page);
  assert.ok(second && second.frameNumber > first.frameNumber, `stamps advance: ${JSON.stringify([first, second])}`);
  const decodedBefore = stats.framesDecoded;
  await page.waitForTimeout(1200);
  const later = await page.evaluate(() => window.peerdesk.stats.framesDecoded);
  assert.ok(later > decodedBefore, "framesDecoded keeps growing");
  const { latencies, jitterMsPerFrame: jitter } = await measureViewer(page, 3);
  assert.ok(latencies.length > 30, `stamped frames presented: ${latencies.length}`);
  console.log(`browser glass-to-glass (capture → presented, 960x540 synthetic): p50 ${quantile(latencies, 0.5)} ms, p95 ${quantile(latencies, 0.95)} ms over ${latencies.length} frames; jitter buffer ${jitter.toFixed(1)} ms/frame`);
  assert.ok(jitter < 40, `playout delay 0 keeps Chrome's jitter buffer small: ${jitter} ms/frame`);
  await page.screenshot({ path: join(SHOTS, "web-viewer-synthetic.png") });
  // The host lowers its bitrate mid-session: the stream goes on (frames decode, stamps advance).
  host.child.stdin.write("bitrate 300000\n");
  await page.waitForTimeout(1500);
  const [beforeChange, stampBefore] = [await page.evaluate(() => window.peerdesk.stats.framesDecoded), await readStampSoon(page)];
  await page.waitForTimeout(1500);
  const [afterChange, stampAfter] = [await page.evaluate(() => window.peerdesk.stats.framesDecoded), await readStampSoon(page)];
  assert.ok(afterChange > beforeChange + 20, `frames keep decoding after the bitrate change: ${beforeChange} → ${afterChange}`);
  assert.ok(stampBefore && stampAfter && stampAfter.frameNumber > stampBefore.frameNumber, "stamps advance after the bitrate change");
  host.child.stdin.write("quit\n");
  await waitFor(page, () => window.peerdesk.phase === "ended", null, "ended");
  const text = await page.textContent("#status");
  assert.match(text, /Session ended: the host stopped sharing/);
  await page.close();
});

test("verification: the browser and the Rust host show the same code, and control applies only after confirm", async () => {
  // The derivation agrees with the Rust SDK's on its known vector (core/src/session/verification.rs).
  const A = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
  const B = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
  const host = await share(["--synthetic", "--size", "640x360", "--auto-accept", "control", "--require-verification"]);
  const hostCode = waitLine(host.child, /^verification code for viewer \S+: (\d{3} \d{3})$/, "the host's verification code");
  const page = await openViewer(host.code);
  assert.equal(await page.evaluate(([a, b]) => import("/verification.js").then((m) => m.verificationCode(a, b, "1234567890")), [A, B]), "825 223");
  await waitFor(page, () => window.peerdesk.verification !== null, null, "the page's verification code");
  const [, expected] = await hostCode;
  assert.equal(await page.evaluate(() => window.peerdesk.verification), expected, "same code on both sides");
  assert.match(await page.textContent("#verification"), new RegExp(expected));
  // Control was granted but waits for the host user's confirmation.
  assert.equal(await page.evaluate(() => window.peerdesk.permissions.control), false);
  host.child.stdin.write("confirm\n");
  await waitFor(page, () => window.peerdesk.permissions.control === true, null, "control after confirm");
  host.child.stdin.write("quit\n");
  await page.close();
});

test("over TLS: the web viewer on https joins through wss, the host trusts the same private CA", async () => {
  const dir = mkdtempSync(join(tmpdir(), "peerdesk-tls-"));
  execFileSync(join(ROOT, "tests", "tls", "make-test-ca.sh"), [dir]);
  const child = start(join(BIN, "peerdesk-signaling-server"), ["--listen", "127.0.0.1:0", "--static-dir", join(ROOT, "examples", "web-viewer"),
    "--tls-cert", join(dir, "server.pem"), "--tls-key", join(dir, "server.key")]);
  const [, addr] = await waitLine(child, /^listening on (.+)$/, "the TLS signaling server");
  const tlsServer = { child, http: `https://${addr}`, ws: `wss://${addr}/ws` };
  const host = await shareOn(tlsServer, ["--synthetic", "--size", "640x360", "--auto-accept", "view", "--ca-file", join(dir, "ca.pem")]);
  // The throw-away CA is not in the test browser's store; the certificate is still checked by the host (above).
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.goto(`${tlsServer.http}/index.html?code=${host.code}&name=TLS%20tech&autojoin=1`);
  await waitFor(page, () => window.peerdesk.phase === "connected", null, "connected over TLS");
  await waitFor(page, () => (window.peerdesk.stats.framesDecoded || 0) > 10, null, "frames decoded");
  assert.equal(await page.evaluate(() => window.peerdesk.ws.url.slice(0, 6)), "wss://");
  host.child.stdin.write("quit\n");
  await context.close();
  child.kill("SIGTERM");
});

/** A solid-colour RGB PNG of `size`×`size` (for a logo), built with zlib: no image files in the repository. */
function solidPng(size, [r, g, b]) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => { let c = 0xffffffff; for (const x of buf) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc(body), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0); header.writeUInt32BE(size, 4);
  header[8] = 8; header[9] = 2; // 8-bit RGB
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: size }, () => [r, g, b]).flat())]);
  const pixels = deflateSync(Buffer.concat(Array.from({ length: size }, () => row)));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", header), chunk("IDAT", pixels), chunk("IEND", Buffer.alloc(0))]);
}

test("branding: the operator's name, colours, logo and consent wording show on the web pages", async () => {
  const dir = mkdtempSync(join(tmpdir(), "peerdesk-brand-"));
  writeFileSync(join(dir, "logo.png"), solidPng(32, [0xf0, 0xc0, 0x00]));
  writeFileSync(join(dir, "branding.json"), JSON.stringify({
    product_name: "Acme Support", accent_color: "#c0392b", background_color: "#202a44",
    consent_text: "Acme Support: {name} would like to see your screen. Allow?", logo_file: "logo.png",
  }));
  const child = start(join(BIN, "peerdesk-signaling-server"), ["--listen", "127.0.0.1:0", "--static-dir", join(ROOT, "examples", "web-viewer"),
    "--branding", join(dir, "branding.json")]);
  const [, addr] = await waitLine(child, /^listening on (.+)$/, "the branded signaling server");
  const page = await browser.newPage({ viewport: { width: 900, height: 300 } });
  await page.goto(`http://${addr}/index.html`);
  await waitFor(page, () => document.documentElement.dataset.branded === "1", null, "branding applied");
  assert.equal(await page.textContent("h1"), "Acme Support");
  assert.equal(await page.title(), "Acme Support — remote support");
  assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector("header")).backgroundColor), "rgb(192, 57, 43)");
  assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), "rgb(32, 42, 68)");
  await waitFor(page, () => document.getElementById("logo").naturalWidth === 32, null, "the logo loaded");
  await page.screenshot({ path: join(SHOTS, "web-viewer-branded.png") });
  // The browser host asks in the operator's words, with the name still marked as unverified.
  const host = await browser.newPage();
  const prompts = [];
  host.on("dialog", (dialog) => { prompts.push(dialog.message()); dialog.accept(); });
  await host.goto(`http://${addr}/host.html?source=canvas&autostart=1`);
  await host.waitForFunction(() => window.peerdesk.code, null, { timeout: 30_000 });
  const code = await host.evaluate(() => window.peerdesk.code);
  const viewer = start(join(BIN, "peerdesk"), ["view", "--server", `ws://${addr}/ws`, "--code", code, "--loopback", "--seconds", "2", "--name", "Bob"]);
  await new Promise((r) => viewer.on("exit", r));
  assert.deepEqual(prompts, ['Acme Support: "Bob" (name not verified) would like to see your screen. Allow? (asking to see your screen and use your mouse and keyboard)']);
  // An unbranded server keeps peerdesk's own.
  const plain = await browser.newPage();
  await plain.goto(`${server.http}/index.html`);
  await waitFor(plain, () => document.documentElement.dataset.branded === "1", null, "default branding");
  assert.equal(await plain.textContent("h1"), "peerdesk");
  await Promise.all([page.close(), host.close(), plain.close()]);
  child.kill("SIGTERM");
});

test("technician accounts: a signed-in technician is shown as verified by the operator, a wrong token is refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), "peerdesk-accounts-"));
  const accounts = join(dir, "accounts.json");
  const issued = execFileSync(join(BIN, "peerdesk-signaling-server"), ["--accounts", accounts, "--new-token", "alex", "--operator", "Acme Support"]).toString();
  const token = issued.match(/(pdt_\S+)/)[1];
  const child = start(join(BIN, "peerdesk-signaling-server"), ["--listen", "127.0.0.1:0", "--static-dir", join(ROOT, "examples", "web-viewer"),
    "--accounts", accounts]);
  const [, addr] = await waitLine(child, /^listening on (.+)$/, "the signaling server with accounts");
  const accountServer = { child, http: `http://${addr}`, ws: `ws://${addr}/ws` };
  const signedIn = async (code, tokenValue) => {
    const page = await browser.newPage();
    await page.goto(`${accountServer.http}/index.html?code=${code}&name=Anyone`);
    await page.click("#sign-in summary");
    await page.fill("#account", "alex");
    await page.fill("#token", tokenValue);
    await page.click("#join button[type=submit]");
    return page;
  };
  // The Rust host's prompt names the account and its operator, and what is asked for in plain words.
  const host = await shareOn(accountServer, ["--synthetic", "--size", "640x360", "--auto-accept", "view"]);
  const prompt = waitLine(host.child, /^(.*) Answering View$/, "the host's prompt");
  const page = await signedIn(host.code, token);
  const [, said] = await prompt;
  assert.equal(said, "alex (verified by Acme Support) asks to see your screen and use your mouse and keyboard.");
  await waitFor(page, () => window.peerdesk.phase === "connected", null, "connected after signing in");
  host.child.stdin.write("quit\n");
  // A wrong token never reaches the host.
  const other = await shareOn(accountServer, ["--synthetic", "--size", "640x360", "--auto-accept", "view"]);
  const refused = await signedIn(other.code, "pdt_wrong");
  await waitFor(refused, () => window.peerdesk.lastError !== null, null, "the refusal");
  assert.equal(await refused.evaluate(() => window.peerdesk.lastError.code), "authentication_failed");
  // The browser host shows a signed-in Rust technician the same way.
  const browserHost = await browser.newPage();
  const prompts = [];
  browserHost.on("dialog", (dialog) => { prompts.push(dialog.message()); dialog.accept(); });
  await browserHost.goto(`${accountServer.http}/host.html?source=canvas&autostart=1`);
  await browserHost.waitForFunction(() => window.peerdesk.code, null, { timeout: 30_000 });
  const code = await browserHost.evaluate(() => window.peerdesk.code);
  writeFileSync(join(dir, "token"), `${token}\n`);
  const viewer = start(join(BIN, "peerdesk"), ["view", "--server", accountServer.ws, "--code", code, "--loopback", "--seconds", "2",
    "--account", "alex", "--token-file", join(dir, "token")]);
  await new Promise((r) => viewer.on("exit", r));
  assert.equal(prompts.length, 1);
  assert.match(prompts[0], /^alex \(verified by Acme Support\) .* \(asking to see your screen and use your mouse and keyboard\)$/);
  other.child.stdin.write("quit\n");
  await Promise.all([page.close(), refused.close(), browserHost.close()]);
  child.kill("SIGTERM");
});

test("consent denied: the page says the customer declined", async () => {
  const host = await share(["--synthetic", "--size", "640x360", "--auto-accept", "deny"]);
  const page = await openViewer(host.code);
  await waitFor(page, () => window.peerdesk.lastError !== null, null, "an error");
  assert.equal(await page.evaluate(() => window.peerdesk.lastError.code), "denied");
  assert.match(await page.textContent("#status"), /declined/);
  host.child.stdin.write("quit\n");
  await page.close();
});

test("browser click and key press reach an X display through the host only while control is granted", async (t) => {
  if (!existsSync("/usr/bin/Xvfb") || !existsSync("/usr/bin/xdotool") || !existsSync("/usr/bin/xev")) {
    if (process.env.PEERDESK_REQUIRE_XVFB) assert.fail("Xvfb, xdotool and xev are required: run scripts/setup.sh");
    t.skip("Xvfb, xdotool or xev missing");
    return;
  }
  const { child: xvfb, display } = await startXvfb(800, 600);
  const env = { DISPLAY: display };
  const pointer = () => {
    const out = execFileSync("xdotool", ["getmouselocation"], { env: { ...process.env, ...env } }).toString();
    const [, x, y] = out.match(/x:(\d+) y:(\d+)/);
    return { x: Number(x), y: Number(y) };
  };
  for (const [answer, expectMove] of [["view", false], ["control", true]]) {
    execFileSync("xdotool", ["mousemove", "10", "10"], { env: { ...process.env, ...env } });
    await new Promise((r) => setTimeout(r, 100));
    const baseline = pointer();
    // Key events on the X screen, as xev on the root window sees them (no window manager: focus follows the pointer).
    const xev = start("stdbuf", ["-oL", "xev", "-root", "-event", "keyboard"], env);
    const keys = [];
    createInterface({ input: xev.stdout }).on("line", (line) => {
      const m = line.match(/\(keysym 0x[0-9a-f]+, (\w+)\)/);
      if (m) keys.push(m[1]);
    });
    const host = await share(["--auto-accept", answer], env);
    const page = await openViewer(host.code);
    await waitFor(page, () => window.peerdesk.phase === "connected", null, "connected");
    await waitFor(page, () => document.getElementById("screen").videoWidth > 0, null, "video");
    const box = await page.locator("#screen").boundingBox();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.25);
    await page.mouse.move(box.x + box.width * 0.5 + 1, box.y + box.height * 0.25);
    await page.mouse.down();
    await page.mouse.up();
    await page.keyboard.press("KeyQ");
    await page.waitForTimeout(800);
    const at = pointer();
    if (expectMove) {
      assert.ok(Math.abs(at.x - 400) <= 3 && Math.abs(at.y - 150) <= 3, `pointer at ${JSON.stringify(at)}`);
      assert.ok(keys.includes("q"), `the key press reached the X screen: ${JSON.stringify(keys)}`);
      await page.screenshot({ path: join(SHOTS, "web-viewer-x11-control.png") });
    } else {
      assert.deepEqual(at, baseline, "view only: the pointer must not move");
      assert.deepEqual(keys, [], "view only: no key may reach the X screen");
    }
    xev.kill("SIGTERM");
    host.child.stdin.write("quit\n");
    await page.close();
  }
  xvfb.kill("SIGTERM");
});

test("browser host → rust viewer: Chromium's AV1 encoder and packetizer decode in peerdesk, stamps in order", async () => {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  // The customer is asked (there is no switch to skip it) and sees the name marked as unverified, cleaned of
  // control characters.
  const prompts = [];
  page.on("dialog", (dialog) => { prompts.push(dialog.message()); dialog.accept(); });
  await page.goto(`${server.http}/host.html?source=canvas&autostart=1&autoaccept=1`);
  await page.waitForFunction(() => window.peerdesk.code, null, { timeout: 30_000 });
  const code = await page.evaluate(() => window.peerdesk.code);
  const viewer = start(join(BIN, "peerdesk"), ["view", "--server", server.ws, "--code", code, "--loopback", "--seconds", "6", "--print-stamps", "--name", "rust viewer"]);
  const stamps = [];
  createInterface({ input: viewer.stdout }).on("line", (line) => {
    const m = line.match(/^stamp (\d+)$/);
    if (m) stamps.push(Number(m[1]));
  });
  const exitCode = await new Promise((r) => viewer.on("exit", r));
  assert.equal(exitCode, 0, "the viewer exits cleanly");
  // `autoaccept=1` in the link (the old consent bypass) changes nothing: the customer was asked.
  assert.equal(prompts.length, 1, `consent prompts: ${JSON.stringify(prompts)}`);
  assert.match(prompts[0], /^"rust viewer" \(name not verified\) asks to see your screen/);
  // In order: never backwards. A picture may come twice (Chromium re-encodes its last frame to answer the viewer's
  // start-up keyframe request), but not often.
  const distinct = new Set(stamps).size;
  assert.ok(distinct >= 30, `distinct stamped frames decoded by the Rust viewer: ${distinct}`);
  assert.ok(stamps.length - distinct <= 5, `repeated pictures: ${stamps.length - distinct} in ${stamps.slice(0, 40)}`);
  for (let i = 1; i < stamps.length; i++) assert.ok(stamps[i] >= stamps[i - 1], `in order: ${stamps.slice(0, 40)}`);
  await page.close();
});

test("a keyframe request from the browser is answered by the host", async () => {
  const host = await share(["--synthetic", "--size", "640x360", "--auto-accept", "view"]);
  const page = await openViewer(host.code);
  await waitFor(page, () => (window.peerdesk.stats.framesDecoded || 0) > 10, null, "frames decoded");
  // A receiver transform whose transformer asks the sender for a keyframe (WebRTC Encoded Transform).
  const ready = await page.evaluate(() => new Promise((resolveReady) => {
    const source = `onrtctransform = (e) => {
      const t = e.transformer;
      t.readable.pipeTo(t.writable);
      onmessage = async () => { try { await t.sendKeyFrameRequest(); postMessage("sent"); } catch (err) { postMessage("error " + err); } };
      postMessage("ready " + typeof t.sendKeyFrameRequest);
    };`;
    const worker = new Worker(URL.createObjectURL(new Blob([source], { type: "text/javascript" })));
    window.keyframeWorker = worker;
    worker.onmessage = (m) => { window.keyframeWorkerReply = m.data; if (m.data.startsWith("ready")) resolveReady(m.data); };
    const receiver = window.peerdesk.pc.getReceivers().find((r) => r.track.kind === "video");
    receiver.transform = new RTCRtpScriptTransform(worker, {});
  }));
  assert.equal(ready, "ready function", "Chromium exposes sendKeyFrameRequest");
  const keyFrames = async () => page.evaluate(async () => {
    const report = await window.peerdesk.pc.getStats();
    let k = 0;
    report.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") k = s.keyFramesDecoded || 0; });
    return k;
  });
  await page.waitForTimeout(1500); // let the start-up keyframes settle
  const before = await keyFrames();
  await page.evaluate(() => window.keyframeWorker.postMessage("keyframe"));
  await waitFor(page, () => window.keyframeWorkerReply === "sent", null, "the request was sent");
  let after = before;
  for (let i = 0; i < 50 && after <= before; i++) {
    await page.waitForTimeout(100);
    after = await keyFrames();
  }
  assert.ok(after > before, `keyFramesDecoded ${before} → ${after}`);
  host.child.stdin.write("quit\n");
  await page.close();
});

test("screen-share latency harness: stamps painted on an X screen are read back from peerdesk's and Chromium's own share", async (t) => {
  if (!existsSync("/usr/bin/Xvfb")) {
    if (process.env.PEERDESK_REQUIRE_XVFB) assert.fail("Xvfb is required: run scripts/setup.sh");
    t.skip("Xvfb missing");
    return;
  }
  // The benchmark (scripts/bench-browser.sh) runs this for longer and compares the figures; here it must work.
  const { child: xvfb, display } = await startXvfb(1280, 720, { randr: false });
  const painter = await startPainter(display, 30);
  for (const [mode, codec] of [["peerdesk", "video/av1"], ["chromium", "video/vp8"]]) {
    // Warm-up for both: in two CI runs (2026-12-03, 2026-12-04), Chromium's own share presented only 6 stamped
    // frames in 3 s after a fixed 1 s, then 3 s warm-up (its sender was still ramping up; rerun at once, 84 frames).
    // measureScreenShare now waits until 10 stamped frames a second arrive, up to 15 s more.
    const result = await measureScreenShare({ mode, server, viewerBrowser: browser, display, size: "1280x720", warmup: 3, seconds: 3 });
    console.log(`${mode}: ${result.codec}, glass-to-glass p50 ${quantile(result.latencies, 0.5)} ms, p95 ${quantile(result.latencies, 0.95)} ms over ${result.latencies.length} frames, ${result.kbps.toFixed(0)} kbit/s`);
    assert.equal(result.codec.toLowerCase(), codec, `${mode} codec`);
    assert.ok(result.latencies.length >= 30, `${mode}: stamped frames presented in 3 s: ${result.latencies.length}`);
    assert.ok(result.latencies.every((ms) => ms >= 0 && ms < 5000), `${mode}: latencies are plausible: ${result.latencies.slice(-5)}`);
  }
  painter.kill("SIGTERM");
  xvfb.kill("SIGTERM");
});
