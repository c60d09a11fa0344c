// The Node half of tests/sdk_node.rs: an express app instrumented by @sentry/node
// (instrument.mjs, loaded with --import) on an ephemeral port of 127.0.0.1. It prints
// "listening PORT" once it accepts requests. The Rust test sends it requests full of PII:
//   POST /checkout  throws, with PII in the query string, JSON body, cookies, headers and
//                   the exception message;
//   GET  /notify    captureMessage and a custom span inside the request's transaction;
// A line "flush" on stdin makes it wait until the SDK has sent everything (Sentry.flush)
// and print "flushed true" (not an HTTP route: that request would be traced too, and its own
// spans would race the flush).
import * as Sentry from "@sentry/node";
import express from "express";

const app = express();
app.use(express.json());

app.post("/checkout", (req, res) => {
  Sentry.setUser({ id: "cust-2093", email: req.body.email, username: req.body.card_holder });
  // The message carries the customer's e-mail and name, as careless error messages do.
  throw new Error(`Card declined for ${req.body.card_holder} <${req.body.email}>`);
});

app.get("/notify", async (req, res) => {
  await Sentry.startSpan({ name: "lookup customer", op: "db.query" }, async () => {
    await new Promise((resolve) => setTimeout(resolve, 5));
  });
  Sentry.captureMessage(`Reminder e-mail bounced for ${req.query.email}`, "warning");
  res.json({ ok: true });
});

Sentry.setupExpressErrorHandler(app);
// After Sentry's handler: answers 500 without echoing the error.
app.use((err, req, res, next) => {
  res.status(500).json({ error: "internal" });
});

const server = app.listen(0, "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", async (chunk) => {
  input += chunk;
  while (input.includes("\n")) {
    const line = input.slice(0, input.indexOf("\n"));
    input = input.slice(input.indexOf("\n") + 1);
    if (line.trim() === "flush") {
      const flushed = await Sentry.flush(10000);
      process.stdout.write(`flushed ${flushed}\n`);
    }
  }
});
// The test closing stdin (or dropping the process) ends the app.
process.stdin.on("end", () => stop());

function stop() {
  server.close();
  server.closeAllConnections();
  Sentry.close(2000).then(() => process.exit(0));
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
