// Drives the browser half of tests/sdk_browser.rs: bundles entry.js (with @sentry/browser)
// with esbuild, serves it from a static page server on 127.0.0.1 (an ephemeral port: another
// origin than scrubgate), opens the page in Debian's headless Chromium through puppeteer-core
// and prints one JSON line: what the page reported, its console messages and page errors,
// and the CORS preflights Chromium made.
//
// Usage: node driver.mjs '{"scenario":"full","mode":"tunnel","dsn":...,"tunnel":...,...}'
// CHROMIUM names the browser (default /usr/bin/chromium). Nothing is downloaded.
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";
import puppeteer from "puppeteer-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const cfg = JSON.parse(process.argv[2]);
const planted = cfg.planted;

const built = await esbuild.build({
  entryPoints: [path.join(here, "entry.js")],
  bundle: true,
  write: false,
  format: "iife",
  platform: "browser",
  target: "chrome120",
  logLevel: "silent",
});
const bundle = built.outputFiles[0].contents;

// The page's own text holds PII too: the replay records it.
const escapeHtml = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>Checkout</title>
<link rel="icon" href="data:,">
</head><body>
<h1>Checkout</h1>
<p id="contact">Receipt goes to ${escapeHtml(planted.email)}, account holder ${escapeHtml(planted.name)}</p>
<label>Card holder <input id="card-holder" type="text" value=""></label>
<script src="/bundle.js"></script>
</body></html>`;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://page");
  if (url.pathname === "/checkout") {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(page);
  } else if (url.pathname === "/bundle.js") {
    res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" });
    res.end(bundle);
  } else {
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found");
  }
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // CI runs as root, where Chromium's sandbox cannot start. Every host name but the
  // loopback address fails to resolve: the page can reach nothing else (puppeteer's default
  // flags already turn off Chromium's background networking).
  args: [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-gpu",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
  ],
});

const consoleMessages = [];
const pageErrors = [];
const preflights = [];
const failedRequests = [];
let result;
try {
  const tab = await browser.newPage();
  tab.on("console", (message) =>
    consoleMessages.push({ type: message.type(), text: message.text() }),
  );
  tab.on("pageerror", (error) => pageErrors.push(String(error && error.message)));
  tab.on("requestfailed", (request) =>
    failedRequests.push({ url: request.url(), error: request.failure()?.errorText }),
  );

  // The scenario reaches the page before its scripts run, and never as DOM the replay records.
  await tab.evaluateOnNewDocument((config) => {
    window.SCRUBGATE_TEST = config;
  }, cfg);

  // Preflights are not requests the page sees; the DevTools protocol shows them.
  const cdp = await tab.createCDPSession();
  await cdp.send("Network.enable");
  const preflightIds = new Map();
  cdp.on("Network.requestWillBeSent", (event) => {
    if (event.request.method === "OPTIONS" || event.type === "Preflight") {
      preflightIds.set(event.requestId, {
        url: event.request.url,
        requestHeaders: event.request.headers,
      });
    }
  });
  cdp.on("Network.responseReceived", (event) => {
    const seen = preflightIds.get(event.requestId);
    if (seen) {
      preflights.push({ ...seen, status: event.response.status, headers: event.response.headers });
    }
  });

  // The query string carries PII as real shops' URLs do; the SDK reports the URL.
  await tab.goto(`${origin}/checkout?email=${encodeURIComponent(planted.email)}`, {
    waitUntil: "load",
  });
  await tab.waitForFunction(() => window.__sgResult !== undefined, {
    timeout: 45000,
    polling: 50,
  });
  result = await tab.evaluate(() => window.__sgResult);
  // Preflight answers can be reported a moment after the request they guard.
  await new Promise((resolve) => setTimeout(resolve, 200));
} finally {
  await browser.close();
  server.close();
}

process.stdout.write(
  JSON.stringify({ origin, result, console: consoleMessages, pageErrors, preflights, failedRequests }) +
    "\n",
);
