// Loaded with `node --import` before the app, as @sentry/node wants for its instrumentation
// of http and express. SCRUBGATE_TEST_DSN points straight at scrubgate.
import * as Sentry from "@sentry/node";

Sentry.init({
  dsn: process.env.SCRUBGATE_TEST_DSN,
  release: "shop-api@3.1.0",
  environment: "ci",
  // The SDK may send PII (request data, cookies, headers, user): scrubgate must take it out.
  sendDefaultPii: true,
  sendClientReports: false,
  tracesSampleRate: 1.0,
});
