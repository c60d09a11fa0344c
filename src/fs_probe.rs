//! Proof that a file system takes bytes now, for readiness checks. Opening a file, or
//! creating an empty one, still succeeds on a full disk; only a write (and its sync) shows
//! that blocks can be allocated.

use std::io::Write as _;
use std::path::Path;

/// The smallest probe: one page, so a file system with no free block fails it.
pub const MIN_BYTES: u64 = 4096;

/// Writes `bytes` zero bytes (at least [`MIN_BYTES`]) to `probe`, syncs, and removes it.
///
/// # Errors
/// The file system refused the create, write or sync.
pub fn write_probe(probe: &Path, bytes: u64) -> std::io::Result<()> {
    let result = (|| {
        let mut file = std::fs::File::create(probe)?;
        let page = [0u8; MIN_BYTES as usize];
        let mut left = bytes.max(MIN_BYTES);
        while left > 0 {
            let n = usize::try_from(left.min(MIN_BYTES)).unwrap_or(page.len());
            file.write_all(&page[..n])?;
            left -= n as u64;
        }
        file.sync_data()
    })();
    let _ = std::fs::remove_file(probe);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_at_least_a_page_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join(".probe.tmp");
        write_probe(&probe, 1).unwrap();
        assert!(!probe.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let missing = dir.path().join("no-such-dir").join(".probe.tmp");
        assert!(write_probe(&missing, 1).is_err());
    }
}
