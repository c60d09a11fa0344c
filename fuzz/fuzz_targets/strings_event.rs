//! The event the `scrub_strings` target scrubs: one arbitrary string put everywhere an event
//! carries structured text. Shared with `tests/fuzz_regressions.rs`, so a saved input replays
//! in exactly the places it was found in.

use serde_json::{json, Value};

pub fn strings_event(s: &str) -> Value {
    json!({
        "message": s,
        "logentry": {"formatted": s},
        "exception": {"values": [{"type": "Error", "value": s}]},
        "request": {
            "url": s,
            "query_string": s,
            "data": s,
            "cookies": s,
            "headers": {"Cookie": s, "Referer": s, "X-Custom": s},
        },
        "breadcrumbs": {"values": [
            {"category": "query", "message": s},
            {"category": "http", "data": {"url": s}},
        ]},
        "spans": [
            {"op": "db.sql.query", "description": s},
            {"op": "http.client", "description": s, "data": {"url": s}},
        ],
        "extra": {"payload": s},
    })
}
