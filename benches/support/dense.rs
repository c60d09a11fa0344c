//! The PII-dense event of the load benchmark (`examples/loadgen.rs`), shared with the
//! criterion benchmark and the callgrind harness so the engine is measured on the payload
//! that dominates the proxy's cost: a redaction every ~60 bytes (every breadcrumb holds an
//! SSN and an email in SQL and a token in a URL), where the synthetic events hold one per
//! ~500.

use serde_json::json;

/// An error event of about `size` bytes of JSON; `seed` varies ids and addresses.
pub fn pii_dense_event(size: usize, seed: usize) -> Vec<u8> {
    let mut breadcrumbs = Vec::new();
    let mut total = 0;
    let mut n = 0;
    while total < size.saturating_sub(1500) {
        let crumb = json!({
            "category": "query",
            "message": format!("SELECT * FROM patients WHERE ssn = '123-45-{:04}' AND email = 'p{n}@example.org'", n % 10000),
            "data": {"duration_ms": n % 97, "rows": n % 13, "url": format!("https://api.example.com/v1/patients/{n}?token=abc{n}&page=2")},
            "timestamp": 1732000000.0 + n as f64,
        });
        total += crumb.to_string().len();
        breadcrumbs.push(crumb);
        n += 1;
    }
    let event = json!({
        "event_id": format!("{seed:032x}"),
        "level": "error",
        "platform": "python",
        "release": "loadgen@1.0.0",
        "environment": "bench",
        "exception": {"values": [{"type": "ValueError", "value": format!("card 4111 1111 1111 1111 declined for jane.doe{seed}@example.com"),
            "stacktrace": {"frames": [{"filename": "app.py", "function": "checkout", "lineno": 42,
                "vars": {"password": "hunter2", "patient_name": "Jane Doe", "phone": "(555) 123-4567", "amount": "1999"}}]}}]},
        "user": {"id": format!("{seed}"), "email": "jane@example.com", "ip_address": "{{auto}}"},
        "request": {"url": "https://shop.example.com/checkout?email=jane%40example.com&ref=x", "method": "POST",
            "headers": {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc", "Cookie": "session=abc123; theme=dark"},
            "data": {"dob": "04/12/1961", "address": "12 Main Street", "note": "call back"}},
        "breadcrumbs": {"values": breadcrumbs},
        "extra": {"order_id": seed, "mrn": "MRN 00123456"},
    });
    event.to_string().into_bytes()
}
