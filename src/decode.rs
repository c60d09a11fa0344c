//! Everything that turns bytes from an SDK into typed data, and typed data back into bytes.
//!
//! This module owns the Sentry auth grammar, DSNs, body decompression with size caps, the
//! legacy store body formats and the envelope format. It is pure and synchronous: no HTTP
//! types, no tokio, no knowledge of scrub rules. The server, the offline `scrub` command and
//! the fixture runner all decode through here, so they agree byte for byte.
//!
//! Errors never carry payload bytes: every message is a short, fixed reason that is safe to
//! return to a client and to log.

pub mod auth;
pub mod compression;
pub mod dsn;
pub mod envelope;
pub mod item_type;
pub mod store;

pub use auth::{AuthError, AuthPairs};
pub use compression::{ContentEncoding, DecompressError};
pub use dsn::{Dsn, DsnError};
pub use envelope::{Envelope, EnvelopeError, EnvelopeHeader, EnvelopeLimits, Item};
pub use item_type::ItemType;
pub use store::StoreBodyError;
