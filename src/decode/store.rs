//! The legacy store endpoint's body formats (protocol §4): JSON, standard padded base64 of
//! JSON, or base64 of zlib-compressed JSON.

use bytes::Bytes;

/// Why a store body could not be decoded. Never carries body bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreBodyError {
    #[error("empty request body")]
    Empty,
    #[error("invalid base64 data")]
    Base64,
    #[error("invalid zlib data")]
    Zlib,
    #[error("event exceeds {limit} bytes")]
    TooLarge { limit: usize },
}

/// Returns the event JSON bytes of a store body (JSON is not validated here).
///
/// # Errors
/// Empty bodies, bad base64, bad zlib, or a decoded event over `max_bytes`.
pub fn decode_store_body(body: Bytes, max_bytes: usize) -> Result<Bytes, StoreBodyError> {
    use base64::Engine as _;

    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Err(StoreBodyError::Empty);
    };
    let body = body.slice(start..);
    if body.first() == Some(&b'{') {
        return check_size(body, max_bytes);
    }
    let trimmed: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&trimmed)
        .map_err(|_| StoreBodyError::Base64)?;
    if decoded.first() == Some(&b'{') {
        return check_size(Bytes::from(decoded), max_bytes);
    }
    match super::compression::inflate_zlib(&decoded, max_bytes) {
        Ok(json) => Ok(json),
        Err(super::DecompressError::TooLarge { limit }) => Err(StoreBodyError::TooLarge { limit }),
        Err(super::DecompressError::Corrupt { .. } | super::DecompressError::OverBudget) => {
            Err(StoreBodyError::Zlib)
        }
    }
}

fn check_size(json: Bytes, max_bytes: usize) -> Result<Bytes, StoreBodyError> {
    if json.len() > max_bytes {
        Err(StoreBodyError::TooLarge { limit: max_bytes })
    } else {
        Ok(json)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use base64::Engine as _;

    use super::*;

    const EVENT: &[u8] = b"{\"message\":\"hi\"}";

    #[test]
    fn plain_base64_and_zlib_bodies() {
        assert_eq!(
            decode_store_body(Bytes::from_static(EVENT), 100).unwrap(),
            EVENT
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(EVENT);
        assert_eq!(decode_store_body(b64.into(), 100).unwrap(), EVENT);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(EVENT).unwrap();
        let b64z = base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap());
        assert_eq!(decode_store_body(b64z.into(), 100).unwrap(), EVENT);
    }

    #[test]
    fn errors() {
        assert_eq!(
            decode_store_body(Bytes::new(), 100),
            Err(StoreBodyError::Empty)
        );
        assert_eq!(
            decode_store_body(Bytes::from_static(b"%%%"), 100),
            Err(StoreBodyError::Base64)
        );
        assert_eq!(
            decode_store_body(Bytes::from_static(b"AAAA"), 100),
            Err(StoreBodyError::Zlib)
        );
        assert_eq!(
            decode_store_body(Bytes::from_static(EVENT), 5),
            Err(StoreBodyError::TooLarge { limit: 5 })
        );
    }
}
