//! Compact JSON serialization of a scrubbed [`Value`] into a buffer sized once.
//!
//! `serde_json::to_vec` starts from 128 bytes and doubles, copying a large payload several
//! times over; the scrubbed payload is about as long as the input, so the buffer is sized
//! from that. The bytes are serde_json's own (same escaping, same number formatting).

use serde_json::Value;

/// Serializes `value` compactly; `size_hint` is the expected output length (the input's
/// length: scrubbing rarely grows a payload much).
///
/// # Errors
/// Whatever `serde_json::to_writer` reports (writing to a `Vec` does not fail).
pub fn to_vec(value: &Value, size_hint: usize) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(size_hint.saturating_add(size_hint / 16).max(64));
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn same_bytes_as_serde_json() {
        let v = json!({"a": [1, -2.5, 1e300, "q\"\\\u{1}é"], "b": {}, "c": null});
        for hint in [0, 3, 1000] {
            assert_eq!(
                super::to_vec(&v, hint).expect("serializes"),
                serde_json::to_vec(&v).expect("serializes")
            );
        }
    }
}
