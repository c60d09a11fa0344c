//! `Content-Encoding` handling (protocol §4): gzip, deflate (zlib wrapper), br, zstd and
//! identity, each decoded with a hard cap on the output so a decompression bomb is cut off
//! while streaming, long before it is fully inflated.

use std::io::Read;

use bytes::Bytes;

/// The encodings we accept. Anything else is a 415 with [`ContentEncoding::ACCEPTED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    Identity,
    Gzip,
    /// zlib-wrapped deflate (RFC 1950), as Relay and the SDKs mean it.
    Deflate,
    Brotli,
    Zstd,
}

/// The `Content-Encoding` value was not one we can decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported content encoding")]
pub struct UnsupportedEncoding;

/// Why a body could not be decompressed. Never carries body bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    #[error("decompressed body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("invalid {encoding} data")]
    Corrupt { encoding: &'static str },
    /// The caller's memory budget refused more output (see [`decompress_within`]).
    #[error("decompressed body does not fit the in-flight budget")]
    OverBudget,
}

impl ContentEncoding {
    /// The value for the `Accept-Encoding` header of a 415 response.
    pub const ACCEPTED: &'static str = "gzip, deflate, br, zstd";

    /// The header token, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
            Self::Brotli => "br",
            Self::Zstd => "zstd",
        }
    }

    /// Maps a `Content-Encoding` header value. `None`, empty, `identity` and `UTF-8` (sent by
    /// some old SDKs, protocol §4) mean identity.
    ///
    /// # Errors
    /// Any other value, including lists like `gzip, br`.
    pub fn from_header(value: Option<&[u8]>) -> Result<Self, UnsupportedEncoding> {
        let Some(raw) = value else {
            return Ok(Self::Identity);
        };
        if raw.is_empty() || raw == b"identity" || raw.eq_ignore_ascii_case(b"utf-8") {
            return Ok(Self::Identity);
        }
        match raw {
            b"gzip" => Ok(Self::Gzip),
            b"deflate" => Ok(Self::Deflate),
            b"br" => Ok(Self::Brotli),
            b"zstd" => Ok(Self::Zstd),
            _ => Err(UnsupportedEncoding),
        }
    }
}

/// Decodes `body` and fails as soon as the output would exceed `max_bytes`.
///
/// # Errors
/// [`DecompressError::TooLarge`] past the cap (also for identity bodies), and
/// [`DecompressError::Corrupt`] for data that is not valid in its encoding.
pub fn decompress(
    body: Bytes,
    encoding: ContentEncoding,
    max_bytes: usize,
) -> Result<Bytes, DecompressError> {
    decompress_within(body, encoding, max_bytes, &mut |_| true)
}

/// [`decompress`], asking `may_grow(bytes)` before the output buffer grows past each
/// doubling step (from 64 KiB), so a caller with a memory budget can stop a body that
/// would inflate beyond what it may hold, before it is inflated.
///
/// # Errors
/// As [`decompress`], and [`DecompressError::OverBudget`] when `may_grow` says no.
pub fn decompress_within(
    body: Bytes,
    encoding: ContentEncoding,
    max_bytes: usize,
    may_grow: &mut dyn FnMut(usize) -> bool,
) -> Result<Bytes, DecompressError> {
    match encoding {
        ContentEncoding::Identity => {
            if body.len() > max_bytes {
                Err(DecompressError::TooLarge { limit: max_bytes })
            } else {
                Ok(body)
            }
        }
        ContentEncoding::Gzip => read_capped(
            flate2::read::MultiGzDecoder::new(&body[..]),
            max_bytes,
            "gzip",
            may_grow,
        ),
        ContentEncoding::Deflate => read_capped(
            flate2::read::ZlibDecoder::new(&body[..]),
            max_bytes,
            "deflate",
            may_grow,
        ),
        ContentEncoding::Brotli => read_capped(
            brotli::Decompressor::new(&body[..], 8192),
            max_bytes,
            "br",
            may_grow,
        ),
        ContentEncoding::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(&body[..])
                .map_err(|_| DecompressError::Corrupt { encoding: "zstd" })?;
            read_capped(decoder, max_bytes, "zstd", may_grow)
        }
    }
}

/// zlib-inflates `data` with an output cap; used by the legacy store body and replay
/// recordings.
///
/// # Errors
/// As [`decompress`].
pub fn inflate_zlib(data: &[u8], max_bytes: usize) -> Result<Bytes, DecompressError> {
    read_capped(
        flate2::read::ZlibDecoder::new(data),
        max_bytes,
        "deflate",
        &mut |_| true,
    )
}

/// First output size checked with the caller's `may_grow`; then every doubling.
const GROWTH_STEP: usize = 64 * 1024;

/// Reads at most `max_bytes + 1` bytes from `reader`: one byte past the cap proves the
/// output is too large without inflating the rest.
fn read_capped(
    reader: impl Read,
    max_bytes: usize,
    encoding: &'static str,
    may_grow: &mut dyn FnMut(usize) -> bool,
) -> Result<Bytes, DecompressError> {
    let cap = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut reader = reader.take(cap);
    let mut out = Vec::new();
    let mut allowed = 0usize;
    loop {
        if out.len() >= allowed {
            let next = (allowed.max(GROWTH_STEP / 2) * 2).min(max_bytes.saturating_add(1));
            if !may_grow(next) {
                return Err(DecompressError::OverBudget);
            }
            allowed = next.max(out.len() + 1);
        }
        let want = allowed - out.len();
        let before = out.len();
        (&mut reader)
            .take(u64::try_from(want).unwrap_or(u64::MAX))
            .read_to_end(&mut out)
            .map_err(|_| DecompressError::Corrupt { encoding })?;
        if out.len() == before {
            break;
        }
    }
    if out.len() > max_bytes {
        return Err(DecompressError::TooLarge { limit: max_bytes });
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn a_budget_that_says_no_stops_inflation_before_the_output_grows() {
        let data = vec![b'a'; 1024 * 1024];
        let body = Bytes::from(gzip(&data));
        let mut asked = Vec::new();
        let result = decompress_within(body.clone(), ContentEncoding::Gzip, 10 << 20, &mut |n| {
            asked.push(n);
            n <= 256 * 1024
        });
        assert_eq!(result, Err(DecompressError::OverBudget));
        assert_eq!(asked, [64 * 1024, 128 * 1024, 256 * 1024, 512 * 1024]);
        let mut asked = Vec::new();
        let inflated = decompress_within(body, ContentEncoding::Gzip, 10 << 20, &mut |n| {
            asked.push(n);
            true
        })
        .unwrap();
        assert_eq!(inflated, data);
        assert_eq!(asked.last(), Some(&(2048 * 1024)), "{asked:?}");
    }

    #[test]
    fn header_values_match_exactly() {
        assert_eq!(
            ContentEncoding::from_header(None),
            Ok(ContentEncoding::Identity)
        );
        assert_eq!(
            ContentEncoding::from_header(Some(b"")),
            Ok(ContentEncoding::Identity)
        );
        assert_eq!(
            ContentEncoding::from_header(Some(b"UTF-8")),
            Ok(ContentEncoding::Identity)
        );
        assert_eq!(
            ContentEncoding::from_header(Some(b"gzip")),
            Ok(ContentEncoding::Gzip)
        );
        assert_eq!(
            ContentEncoding::from_header(Some(b"zstd")),
            Ok(ContentEncoding::Zstd)
        );
        assert_eq!(
            ContentEncoding::from_header(Some(b"GZIP")),
            Err(UnsupportedEncoding)
        );
        assert_eq!(
            ContentEncoding::from_header(Some(b"gzip, br")),
            Err(UnsupportedEncoding)
        );
        assert_eq!(
            ContentEncoding::from_header(Some(b"x-gzip")),
            Err(UnsupportedEncoding)
        );
    }

    #[test]
    fn every_encoding_round_trips() {
        let data = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n".repeat(10);
        let gz = gzip(&data);
        assert_eq!(
            decompress(gz.into(), ContentEncoding::Gzip, 1 << 20).unwrap(),
            data
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&data).unwrap();
        let z = z.finish().unwrap();
        assert_eq!(
            decompress(z.into(), ContentEncoding::Deflate, 1 << 20).unwrap(),
            data
        );
        let mut br = Vec::new();
        brotli::BrotliCompress(&mut &data[..], &mut br, &Default::default()).unwrap();
        assert_eq!(
            decompress(br.into(), ContentEncoding::Brotli, 1 << 20).unwrap(),
            data
        );
        let zs = zstd::encode_all(&data[..], 3).unwrap();
        assert_eq!(
            decompress(zs.into(), ContentEncoding::Zstd, 1 << 20).unwrap(),
            data
        );
    }

    #[test]
    fn bomb_is_cut_off_at_the_cap() {
        let bomb = gzip(&vec![b'a'; 50 << 20]);
        assert!(bomb.len() < 200_000);
        assert_eq!(
            decompress(bomb.into(), ContentEncoding::Gzip, 1 << 20),
            Err(DecompressError::TooLarge { limit: 1 << 20 })
        );
        let exact = gzip(&[b'a'; 100]);
        assert_eq!(
            decompress(exact.into(), ContentEncoding::Gzip, 100)
                .unwrap()
                .len(),
            100
        );
    }

    #[test]
    fn corrupt_data_is_reported_without_bytes() {
        let err = decompress(Bytes::from_static(b"not gzip"), ContentEncoding::Gzip, 100);
        assert_eq!(err, Err(DecompressError::Corrupt { encoding: "gzip" }));
        assert_eq!(
            decompress(Bytes::from_static(b"12345"), ContentEncoding::Identity, 4),
            Err(DecompressError::TooLarge { limit: 4 })
        );
    }
}
