//! Private PostgreSQL servers for the store's tests: each in its own temp dir, on its own
//! free port on 127.0.0.1, with its unix socket in that dir, trust auth for the user
//! `fnhost`. Nothing outside the temp dir is touched, and nothing is left running: the
//! server is a child of a small shell that stops it (and removes the dir) when the test
//! process closes its stdin, on [`Drop`] or when the test process ends however it ends.
//!
//! The binaries are found in `FNHOST_PG_BIN` (scripts/postgres.sh exports it and installs
//! PostgreSQL when missing), else in the newest `/usr/lib/postgresql/*/bin`, else on `PATH`.
//! As root, the server runs as the `postgres` user: PostgreSQL refuses to run as root. Every
//! wait is bounded.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The user every test server trusts.
pub const USER: &str = "fnhost";

/// How long a server may take to start or stop.
const STARTUP: Duration = Duration::from_secs(60);
const SHUTDOWN: Duration = Duration::from_secs(20);

/// A running (or stopped, between [`PgServer::stop`] and [`PgServer::start_again`]) server.
pub struct PgServer {
    bin: PathBuf,
    /// Holds `data/` and the unix socket; removed with the server.
    dir: PathBuf,
    pub port: u16,
    /// The shell that runs the server; `None` while stopped.
    child: Mutex<Option<Child>>,
    databases: AtomicU32,
}

/// Where initdb, postgres, pg_isready and createdb are.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FNHOST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().unwrap_or_default()
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// `program` from the bin dir, run as a user PostgreSQL accepts.
fn as_owner(bin: &Path, program: &str) -> Command {
    let path = bin.join(program);
    if running_as_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            "--",
        ])
        .arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

fn run(mut command: Command, what: &str) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run it ({e}); run scripts/postgres.sh"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PgServer {
    /// A new server in a new temp dir, started and ready.
    pub fn start() -> PgServer {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("fnhost-pg-")
            .tempdir()
            .expect("temp dir")
            .keep();
        if running_as_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres").arg(&dir);
                    c
                },
                "chown the server's dir",
            );
        }
        let mut initdb = as_owner(&bin, "initdb");
        initdb.arg("-D").arg(dir.join("data")).args([
            "-U",
            USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        run(initdb, "initdb");
        let server = PgServer {
            bin,
            dir,
            port: free_port(),
            child: Mutex::new(None),
            databases: AtomicU32::new(0),
        };
        server.start_again();
        server
    }

    /// One server for the whole test binary, started on first use.
    pub fn shared() -> &'static PgServer {
        static SHARED: OnceLock<PgServer> = OnceLock::new();
        SHARED.get_or_init(PgServer::start)
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database; returns its name.
    pub fn create_database(&self) -> String {
        let name = format!("db{}", self.databases.fetch_add(1, Ordering::Relaxed));
        let mut c = Command::new(self.bin.join("createdb"));
        c.env("PGCONNECT_TIMEOUT", "10");
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            USER,
            &name,
        ]);
        run(c, "createdb");
        name
    }

    /// Starts the server (again, after [`PgServer::stop`]) on the same port and data, and
    /// waits until it accepts connections.
    pub fn start_again(&self) {
        let mut child = self.child.lock().unwrap();
        assert!(child.is_none(), "the server is running");
        let data = self.dir.join("data");
        // The server runs in the background of this shell, which waits for its stdin to close:
        // a line `keep` (from `stop`) keeps the data, end of input (drop, or the test process
        // ending) removes it.
        let script = r#"
            "$0" -D "$1" -p "$2" -k "$3" -c listen_addresses=127.0.0.1 -c max_connections=300 \
                -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                -c shared_buffers=32MB >"$3/log" 2>&1 &
            pid=$!
            read -r line
            kill -INT "$pid" 2>/dev/null
            wait "$pid"
            [ "$line" = keep ] || rm -rf "$3"
        "#;
        let mut shell = if running_as_root() {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--clear-groups",
                "--",
                "sh",
            ]);
            c
        } else {
            Command::new("sh")
        };
        let spawned = shell
            .arg("-c")
            .arg(script)
            .arg(self.bin.join("postgres"))
            .arg(&data)
            .arg(self.port.to_string())
            .arg(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the postgres shell");
        *child = Some(spawned);
        drop(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + STARTUP;
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
                .args(["-t", "1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            let exited = self
                .child
                .lock()
                .unwrap()
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            assert!(
                !exited && Instant::now() < deadline,
                "postgres did not start; its log:\n{}",
                std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown: connections are closed), keeping its data.
    pub fn stop(&self) {
        self.shut(true);
    }

    fn shut(&self, keep: bool) {
        let Some(mut child) = self.child.lock().unwrap().take() else {
            return;
        };
        // Closing the shell's stdin stops the server; a line `keep` first keeps its data.
        if let Some(mut stdin) = child.stdin.take().filter(|_| keep) {
            let _ = stdin.write_all(b"keep\n");
        }
        let deadline = Instant::now() + SHUTDOWN;
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                // The postmaster's pid is the first line of its pid file.
                if let Ok(pid) = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
                    && let Some(pid) = pid.lines().next()
                {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.shut(false);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
