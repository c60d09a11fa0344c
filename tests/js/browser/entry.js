// The page under test: the real @sentry/browser, bundled by esbuild (driver.mjs), sending
// through scrubgate what a web shop would: an uncaught error and a caught one with PII, a
// message, user feedback, logs, a span and a session replay. tests/sdk_browser.rs checks what
// reached the upstream; this file only reports what the SDK saw of scrubgate's answers.
//
// window.SCRUBGATE_TEST (set by driver.mjs before any script runs): { scenario: "full" | "ratelimit", dsn, tunnel,
// planted: { email, ssn, password, name, ... }, envelopeUrl, auth }.
import * as Sentry from "@sentry/browser";

const cfg = window.SCRUBGATE_TEST;
const planted = cfg.planted;

// Every answer the SDK's transport got, as the page can read it: the CORS-exposed headers
// are null here unless scrubgate exposes them.
const responses = [];
const recordingFetch = async (url, init) => {
  const response = await window.fetch(url, init);
  responses.push({
    url: String(url),
    status: response.status,
    retryAfter: response.headers.get("Retry-After"),
    rateLimits: response.headers.get("X-Sentry-Rate-Limits"),
  });
  return response;
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function init(integrations) {
  Sentry.init({
    dsn: cfg.dsn,
    tunnel: cfg.tunnel || undefined,
    release: "shop-web@1.4.2",
    environment: "ci",
    // The whole point: the SDK may send PII, scrubgate must take it out.
    sendDefaultPii: true,
    sendClientReports: false,
    tracesSampleRate: 1.0,
    replaysSessionSampleRate: cfg.scenario === "full" ? 1.0 : 0,
    replaysOnErrorSampleRate: cfg.scenario === "full" ? 1.0 : 0,
    transport: (options) => Sentry.makeFetchTransport(options, recordingFetch),
    integrations,
  });
}

async function full() {
  // Nothing masked in the browser: the recording carries the page's PII and scrubgate
  // (policy.replay_recordings = "scrub") has to take it out.
  const replay = Sentry.replayIntegration({
    maskAllText: false,
    maskAllInputs: false,
    blockAllMedia: false,
    minReplayDuration: 0,
  });
  init([replay]);

  Sentry.setUser({ id: "cust-1042", email: planted.email, name: planted.name });
  Sentry.setTag("scenario", cfg.mode);
  document.getElementById("card-holder").value = planted.name;

  // 1. An uncaught error (the global onerror handler reports it).
  setTimeout(() => {
    throw new Error(`Payment failed for ${planted.email} (SSN ${planted.ssn})`);
  }, 0);
  await sleep(200);

  // 2. A caught error, with a password in extra.
  Sentry.withScope((scope) => {
    scope.setExtra("password", planted.password);
    scope.setExtra("note", `customer ${planted.name} called about order 5521`);
    Sentry.captureException(new Error(`Charge declined for ${planted.name} <${planted.email}>`));
  });

  // 3. A message.
  Sentry.captureMessage(`Address check failed for ${planted.email}`, "warning");

  // 4. User feedback.
  Sentry.captureFeedback({
    name: planted.name,
    email: planted.email,
    message: `My SSN ${planted.ssn} shows on the receipt page`,
  });

  // 5. Logs.
  Sentry.logger.info(Sentry.logger.fmt`order 5521 placed by ${planted.email}`);
  Sentry.logger.warn(`card holder ${planted.name} failed 3-D Secure`, {
    password: planted.password,
  });

  // 6. A span.
  await Sentry.startSpan(
    { name: "checkout submit", op: "ui.action", attributes: { "user.email": planted.email } },
    async () => {
      await Sentry.startSpan({ name: "validate card", op: "function" }, () => sleep(20));
    },
  );

  // 7. The replay: a little interaction, then flush its segment now.
  document.getElementById("card-holder").value = `${planted.name} ${planted.ssn}`;
  document.getElementById("card-holder").dispatchEvent(new Event("input", { bubbles: true }));
  await sleep(300);
  await Sentry.getReplay().flush();
  const replayId = Sentry.getReplay().getReplayId();

  const flushed = await Sentry.flush(10000);
  return { flushed, replayId };
}

// A tight per-project rate limit: the SDK must see 429 and read Retry-After and
// X-Sentry-Rate-Limits (exposed headers), then stop sending on its own.
async function ratelimit() {
  init((defaults) => defaults.filter((i) => i.name !== "BrowserSession"));
  Sentry.captureMessage("rate limit probe 1");
  await Sentry.flush(5000);
  Sentry.captureMessage("rate limit probe 2");
  await Sentry.flush(5000);
  Sentry.captureMessage("rate limit probe 3 (held back by the SDK)");
  const flushed = await Sentry.flush(5000);
  return { flushed };
}

// A request the browser must preflight (a non-simple header and content type), straight to
// the envelope endpoint: it only succeeds if scrubgate answers the preflight correctly.
async function preflighted() {
  const envelope =
    `{"event_id":"0f8b1c2d3e4f40718293a4b5c6d7e8f9","sent_at":"${new Date().toISOString()}"}\n` +
    `{"type":"event"}\n` +
    `{"message":"preflighted envelope","level":"info","platform":"javascript"}\n`;
  try {
    const response = await window.fetch(cfg.envelopeUrl, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-sentry-envelope",
        "X-Sentry-Auth": cfg.auth,
      },
      body: envelope,
    });
    return { status: response.status, body: await response.text() };
  } catch (error) {
    return { error: String(error) };
  }
}

async function main() {
  const outcome = cfg.scenario === "ratelimit" ? await ratelimit() : await full();
  const direct = cfg.scenario === "full" && !cfg.tunnel ? await preflighted() : null;
  window.__sgResult = { ...outcome, direct, responses };
}

main().catch((error) => {
  window.__sgResult = { failed: String(error && error.stack ? error.stack : error), responses };
});
