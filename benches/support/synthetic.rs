//! The synthetic events of the scrub benchmark, shared with the callgrind harness
//! (`examples/scrub_profile.rs`) so both measure the same inputs.

use serde_json::{json, Value};

/// One frame as SDKs send it: locals, context lines, a home path.
fn frame(i: usize) -> Value {
    json!({
        "filename": "app/billing.py",
        "abs_path": format!("/srv/app/billing_{i}.py"),
        "function": format!("charge_card_{i}"),
        "module": "app.billing",
        "lineno": 40 + i,
        "in_app": true,
        "pre_context": [
            "def charge_card(customer_email, card_number, amount_cents):",
            "    log.info('charging %s', customer_email)",
            "    if amount_cents <= 0:",
            "        raise ValueError('bad amount')"
        ],
        "context_line": "    return gateway.charge(card_number, amount_cents, currency='USD')",
        "post_context": ["", "", "def refund(order_id):", "    pass"],
        "vars": {
            "customer_email": "'alice@example.com'",
            "card_number": "'4111 1111 1111 1111'",
            "amount_cents": "1999",
            "order_id": format!("{}", 1000 + i),
            "retries": "3",
            "self": "<app.billing.Gateway object at 0x7f3823b36c50>"
        }
    })
}

fn crumb(i: usize) -> Value {
    match i % 4 {
        0 => json!({"category": "query", "timestamp": 1795343762.31,
            "message": format!("SELECT id, status FROM orders WHERE id = {i} AND customer = 'alice@example.com'")}),
        1 => json!({"category": "http", "type": "http", "timestamp": 1795343762.31,
            "data": {"url": "https://api.payments.example/v1/charges", "method": "POST", "status_code": 200}}),
        2 => json!({"category": "console", "timestamp": 1795343762.31,
            "message": format!("processed batch {i} in 12ms (status ok, 42 rows)")}),
        _ => json!({"category": "navigation", "timestamp": 1795343762.31,
            "data": {"from": "/orders", "to": format!("/orders/{i}")}}),
    }
}

/// A realistic error event of roughly `size` bytes of JSON.
pub fn synthetic_event(size: usize) -> Vec<u8> {
    let mut event = json!({
        "event_id": "59aa86fc723645769c6a7eb19ac62cef",
        "timestamp": "2026-11-22T10:35:58.024692Z",
        "platform": "python",
        "level": "error",
        "release": "demo-shop@1.4.2",
        "environment": "production",
        "server_name": "web-1",
        "transaction": "POST /api/orders/checkout",
        "user": {"id": "8812", "email": "alice@example.com", "ip_address": "203.0.113.42"},
        "request": {
            "url": "https://shop.example.com/api/orders/checkout?ref=newsletter&email=alice%40example.com",
            "method": "POST",
            "headers": {"User-Agent": "Mozilla/5.0", "Cookie": "sessionid=abc; theme=dark", "Accept": "application/json"},
            "data": "{\"card_number\":\"4111 1111 1111 1111\",\"amount\":1999}"
        },
        "contexts": {
            "trace": {"trace_id": "2408a528950b4408bb1a7ff1a56317bc", "span_id": "9274e003bf2ac2fa"},
            "runtime": {"name": "CPython", "version": "3.11.7"},
            "os": {"name": "Linux", "version": "6.1.0"}
        },
        "tags": {"order_id": "1234", "region": "us-east-1"},
        "exception": {"values": [{"type": "GatewayError", "module": "app.billing",
            "value": "card declined for alice@example.com (card 4111 1111 1111 1111)",
            "stacktrace": {"frames": []}}]},
        "breadcrumbs": {"values": []},
        "sdk": {"name": "sentry.python", "version": "2.75.0", "settings": {"infer_ip": "never"}}
    });
    let mut i = 0;
    loop {
        let current = serde_json::to_vec(&event).map(|v| v.len()).unwrap_or(0);
        if current >= size {
            break;
        }
        // Grow in chunks to keep construction fast for 10 MB.
        let step = ((size - current) / 1500).clamp(1, 500);
        for _ in 0..step {
            if let Some(Value::Array(frames)) =
                event.pointer_mut("/exception/values/0/stacktrace/frames")
            {
                if i % 3 == 0 {
                    frames.push(frame(i));
                }
            }
            if let Some(Value::Array(crumbs)) = event.pointer_mut("/breadcrumbs/values") {
                crumbs.push(crumb(i));
            }
            i += 1;
        }
    }
    serde_json::to_vec(&event).expect("serializable")
}
