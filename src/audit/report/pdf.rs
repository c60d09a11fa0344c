//! `--format pdf`: the HTML report printed by headless Chromium, so the PDF is the same page
//! a reviewer sees in a browser. Chromium is not a dependency: when it is missing the error
//! says how to get it, and `--format html` still works.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Names tried on `PATH`, after the `SCRUBGATE_CHROMIUM` variable.
const CANDIDATES: [&str; 4] = ["chromium", "chromium-browser", "google-chrome", "chrome"];
const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error(
        "--format pdf needs Chromium (Debian: apt-get install chromium; or set SCRUBGATE_CHROMIUM to its path); --format html writes the same report"
    )]
    NoChromium,
    #[error("Chromium failed: {0}")]
    Failed(String),
    #[error("cannot write a temporary file for Chromium: {0}")]
    Io(#[from] std::io::Error),
}

fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SCRUBGATE_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| CANDIDATES.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A private directory for Chromium's input, output and profile, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("scrubgate-report-{}-{nanos}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Prints `html` to PDF with headless Chromium.
///
/// # Errors
/// No Chromium, or it failed or took longer than two minutes.
pub fn html_to_pdf(html: &str) -> Result<Vec<u8>, PdfError> {
    let chromium = find_chromium().ok_or(PdfError::NoChromium)?;
    let dir = TempDir::new()?;
    let page = dir.0.join("report.html");
    let pdf = dir.0.join("report.pdf");
    std::fs::write(&page, html)?;
    let mut command = Command::new(&chromium);
    command
        .args([
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--no-pdf-header-footer",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.0.join("profile").display()
        ))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // Chromium's sandbox refuses to run as root (containers, CI).
    if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        command.arg("--no-sandbox");
    }
    let mut child = command
        .spawn()
        .map_err(|e| PdfError::Failed(format!("{}: {e}", chromium.display())))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(PdfError::Failed("no PDF after two minutes".into()));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    match std::fs::read(&pdf) {
        Ok(bytes) if status.success() && bytes.starts_with(b"%PDF") => Ok(bytes),
        _ => Err(PdfError::Failed(format!(
            "{status}: {}",
            stderr.lines().last().unwrap_or("no PDF written")
        ))),
    }
}
