//! A throwaway PostgreSQL cluster for tests: `initdb` in a temp dir, run as an unprivileged
//! user (`postgres` when the tests run as root, since the server refuses to run as root),
//! listening on 127.0.0.1 with a free port and on a unix socket inside the temp dir. Stopped
//! (immediately) when dropped.
//!
//! Needs Debian's `postgresql` package (or `SCRUBGATE_TEST_PG_BIN` naming a directory with
//! `initdb` and `pg_ctl`). When PostgreSQL is missing, [`PgCluster::start`] returns `None`
//! after printing why, unless `SCRUBGATE_TEST_REQUIRE_PG=1` (set by scripts/test and CI),
//! where it panics: a required database that is missing is a failure, never a skip.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Who runs the server's commands (`None`: us).
    run_as: Option<String>,
    pub port: u16,
    ssl: bool,
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
    }
}

/// Where `initdb` and `pg_ctl` are: `SCRUBGATE_TEST_PG_BIN`, the newest
/// `/usr/lib/postgresql/*/bin`, or `PATH`.
fn find_bin() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("SCRUBGATE_TEST_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
}

fn required() -> bool {
    std::env::var("SCRUBGATE_TEST_REQUIRE_PG").is_ok_and(|v| v == "1")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn check(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl PgCluster {
    /// A running cluster with trust authentication on 127.0.0.1, or `None` (after printing
    /// why) when PostgreSQL is not installed and not required.
    pub fn start(test: &str) -> Option<Self> {
        Self::start_with(test, None)
    }

    /// Like [`PgCluster::start`], with TLS from this certificate chain and key (PEM).
    pub fn start_tls(test: &str, cert_pem: &str, key_pem: &str) -> Option<Self> {
        Self::start_with(test, Some((cert_pem, key_pem)))
    }

    fn start_with(test: &str, tls: Option<(&str, &str)>) -> Option<Self> {
        let Some(bin) = find_bin() else {
            assert!(
                !required(),
                "SCRUBGATE_TEST_REQUIRE_PG=1 but no PostgreSQL server found (apt-get install postgresql)"
            );
            eprintln!(
                "SKIPPED {test}: no PostgreSQL server installed (apt-get install postgresql)"
            );
            return None;
        };
        let as_root = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let run_as = as_root.then(|| "postgres".to_owned());
        let dir = tempfile::Builder::new()
            .prefix("scrubgate-pg-")
            .tempdir()
            .expect("tempdir");
        if let Some(user) = &run_as {
            let status = Command::new("chown")
                .args(["-R", user])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown {user} {}", dir.path().display());
        }
        let mut cluster = Self {
            dir,
            bin,
            run_as,
            port: 0,
            ssl: false,
        };
        let data = cluster.data_dir();
        let output = cluster
            .command("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("initdb runs");
        check(&output, "initdb");
        if let Some((cert, key)) = tls {
            use std::os::unix::fs::PermissionsExt;
            for (name, pem) in [("server.crt", cert), ("server.key", key)] {
                let path = data.join(name);
                std::fs::write(&path, pem).expect("write TLS file");
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .expect("chmod");
                if let Some(user) = &cluster.run_as {
                    let status = Command::new("chown").arg(user).arg(&path).status();
                    assert!(
                        status.is_ok_and(|s| s.success()),
                        "chown {}",
                        path.display()
                    );
                }
            }
            cluster.ssl = true;
        }
        for _ in 0..5 {
            cluster.port = free_port();
            if cluster.start_server().is_ok() {
                return Some(cluster);
            }
        }
        panic!("PostgreSQL did not start: {}", cluster.server_log());
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            None => Command::new(program),
        };
        command.env_remove("PGDATA").current_dir(self.dir.path());
        command
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let mut command = self.command("pg_ctl");
        command.arg("-D").arg(self.data_dir()).args(args);
        command.output().expect("pg_ctl runs")
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn start_server(&self) -> Result<(), String> {
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=50",
            self.port,
            self.dir.path().display()
        );
        if self.ssl {
            options.push_str(" -c ssl=on");
        }
        let log = self.dir.path().join("server.log");
        let output = self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "30",
            "-l",
            log.to_str().expect("utf-8 temp path"),
            "-o",
            &options,
        ]);
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// Stops the server (fast shutdown: open connections are cut), as in an outage.
    pub fn stop(&self) {
        check(&self.pg_ctl(&["stop", "-m", "fast", "-w"]), "pg_ctl stop");
    }

    /// Starts it again on the same port.
    pub fn restart(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.start_server() {
                Ok(()) => return,
                Err(error) if Instant::now() > deadline => {
                    panic!("PostgreSQL did not restart: {error}\n{}", self.server_log())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// A connection URL for `user` to `database` over TCP.
    pub fn url(&self, user: &str, database: &str) -> String {
        format!(
            "postgres://{user}@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// The superuser's URL to the default database.
    pub fn admin_url(&self) -> String {
        self.url("postgres", "postgres")
    }

    /// A connected superuser client (its connection task runs on the current runtime).
    pub async fn admin(&self) -> tokio_postgres::Client {
        self.connect(&self.admin_url()).await
    }

    pub async fn connect(&self, url: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// Creates a login role that is a member of `group` and returns its URL.
    pub async fn login_role(&self, name: &str, group: &str) -> String {
        self.admin()
            .await
            .batch_execute(&format!("CREATE ROLE {name} LOGIN IN ROLE {group}"))
            .await
            .expect("create login role");
        self.url(name, "postgres")
    }
}
