//! scrubgate: a Sentry-compatible ingest proxy that scrubs PII/PHI before anything leaves
//! your network.
//!
//! # The life of an envelope
//!
//! 1. **[`server`]** accepts an HTTP/1.1 or HTTP/2 connection (cleartext, or TLS with ALPN;
//!    capped in number, with header, idle and size limits) and hands each request
//!    to [`ingest::handle`], which picks the route (`/api/{pid}/envelope/`, `/api/{pid}/store/`,
//!    `/api/store/`, the tunnel, health checks) and answers CORS preflights.
//! 2. **[`ingest`]** authenticates before reading the body (exactly one credential source;
//!    only projects listed in the config pass), then reads the body with a byte cap and a
//!    timeout.
//! 3. **[`decode`]** undoes `Content-Encoding` with a cap on the inflated size, turns legacy
//!    store bodies into an envelope, and parses the envelope exactly like Relay does, keeping
//!    every part's raw bytes.
//! 4. **[`pipeline`]** strips client-identifying envelope-header keys, asks [`decide`] what to
//!    do with each item (scrub, forward as is, or drop) and calls [`scrub`] on every JSON
//!    payload. Untouched items keep their original bytes.
//! 5. **[`forward`]** rewrites the DSN, auth and `trace.public_key` for the project's
//!    upstream and sends the envelope (or writes it to a `file://` sink). The upstream's status
//!    and rate-limit headers go back to the SDK.
//!
//! At the side, every ingest request gets exactly one hash-chained [`audit`] record (written
//! before the SDK gets its answer; if it cannot be written, the answer is 503 and nothing is
//! forwarded), and every stage counts into [`metrics`] (`GET /metrics`).
//!
//! [`config`] is loaded and fully validated before a port is bound; [`app`] wires it all up.

pub mod app;
pub mod audit;
pub mod config;
pub mod decide;
pub mod decode;
pub mod delivery;
pub mod fixtures;
pub mod forward;
pub mod fs_probe;
pub mod ingest;
pub mod json;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod scrub;
pub mod server;
pub mod spool;
