//! A real `redis-server` (the Debian package) for tests and benchmarks: started on a
//! free loopback port in its own temporary directory, killed when dropped. It can be
//! crashed and started again on the same port with the same data (outage tests),
//! frozen so that it accepts connections but never answers (timeout tests), run as
//! a one-node Redis Cluster that owns every slot (cluster-slot tests), or take the
//! parts of a bigger setup (a cluster node, a replica, a sentinel) that
//! `redis_ha` puts together.
//!
//! Each test starts its own server, and [`unique_prefix`] gives every store its own
//! hash tag as well, so tests run in parallel without sharing anything.
//!
//! No orphans: `Drop` kills the server, and the server is asked to die with the
//! thread that started it should the test binary itself be killed. Start servers
//! from the test's own thread (a `#[tokio::test]` body is), not from a blocking pool
//! thread, which the runtime may end while the test still runs.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to answer after it was started.
const READY_WITHIN: Duration = Duration::from_secs(15);

/// What the server keeps and how it is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Nothing on disk: data lives until the server stops.
    Ephemeral,
    /// Append-only file, fsynced on every write, so a crash loses nothing.
    Persistent,
    /// A one-node cluster owning all 16384 slots: multi-key commands and scripts
    /// whose keys span slots fail with CROSSSLOT, and CLUSTER KEYSLOT answers.
    /// (`redis_ha` joins several such nodes into one cluster.)
    Cluster,
    /// A replica of the server on this loopback port.
    ReplicaOf(u16),
    /// A sentinel monitoring the master on this loopback port as
    /// [`SENTINEL_MASTER`], quick to call it down and fail over.
    Sentinel(u16),
}

/// The name the test sentinels monitor their master under.
pub const SENTINEL_MASTER: &str = "jitbot";

pub struct RedisServer {
    port: u16,
    /// The cluster bus port (a cluster node's peers talk to it there).
    bus_port: u16,
    mode: Mode,
    dir: TempDir,
    child: Mutex<Option<Child>>,
}

/// A key prefix with a hash tag no other store in this process uses: `{jt-<n>}`.
pub fn unique_prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    format!("{{jt-{}}}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl RedisServer {
    /// A server without persistence.
    pub fn start() -> Self {
        Self::start_with(Mode::Ephemeral)
    }

    /// A server whose data survives [`RedisServer::stop`] and [`RedisServer::restart`].
    pub fn start_persistent() -> Self {
        Self::start_with(Mode::Persistent)
    }

    /// A one-node Redis Cluster that serves every slot.
    pub fn start_cluster() -> Self {
        let server = Self::start_with(Mode::Cluster);
        let mut con = server.admin();
        let _: () = redis::cmd("CLUSTER")
            .arg("ADDSLOTSRANGE")
            .arg(0)
            .arg(16383)
            .query(&mut con)
            .expect("CLUSTER ADDSLOTSRANGE");
        server.wait_for("cluster_state:ok", |con| {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(con).ok()?;
            info.contains("cluster_state:ok").then_some(())
        });
        server
    }

    pub fn start_with(mode: Mode) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("jitbot-redis-")
            .tempdir()
            .expect("a temporary directory for redis-server");
        let mut server = RedisServer {
            port: 0,
            bus_port: 0,
            mode,
            dir,
            child: Mutex::new(None),
        };
        // The port is free when picked, but another process may take it before
        // redis-server binds it; then redis-server exits and another port is tried.
        for _ in 0..5 {
            server.port = free_port();
            server.bus_port = free_port();
            clear_state(&server.dir);
            *server.lock() = Some(server.spawn());
            if server.ready() {
                return server;
            }
            server.stop();
        }
        panic!("redis-server did not start: {}", server.log_tail());
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn bus_port(&self) -> u16 {
        self.bus_port
    }

    /// Waits (bounded) until `check` answers `Some` on an admin connection.
    pub fn wait_for<T>(
        &self,
        what: &str,
        check: impl Fn(&mut redis::Connection) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(found) = self.try_admin().ok().and_then(|mut con| check(&mut con)) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {}: {what} did not happen within {READY_WITHIN:?}: {}",
                self.port,
                self.log_tail()
            );
            sleep(Duration::from_millis(20));
        }
    }

    /// A plain blocking connection for checks and setup, with a read timeout.
    pub fn admin(&self) -> redis::Connection {
        self.try_admin()
            .expect("a connection to the test redis-server")
    }

    /// Crashes the server (SIGKILL) and waits until it is gone. A persistent server
    /// keeps every write it acknowledged.
    pub fn stop(&self) {
        if let Some(mut child) = self.lock().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the stopped server again on the same port with the same directory.
    pub fn restart(&self) {
        self.stop();
        *self.lock() = Some(self.spawn());
        assert!(
            self.ready(),
            "redis-server did not come back on port {}: {}",
            self.port,
            self.log_tail()
        );
    }

    /// Freezes the server (SIGSTOP): connections are accepted, nothing is answered.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let guard = self.lock();
        let child = guard.as_ref().expect("the redis-server is running");
        let pid = libc::pid_t::try_from(child.id()).expect("a pid");
        // SAFETY: kill(2) only sends a signal to our own child process.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}): {}",
            io::Error::last_os_error()
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn try_admin(&self) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(self.url())?;
        let con = client.get_connection_with_timeout(Duration::from_millis(500))?;
        con.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(con)
    }

    /// Waits until our server answers with its data loaded, or has exited. The
    /// answer must carry our child's pid: should another server hold the port, ours
    /// exits and the caller tries again, rather than a test using someone else's data.
    fn ready(&self) -> bool {
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            let pid = {
                let mut guard = self.lock();
                let Some(child) = guard.as_mut() else {
                    return false;
                };
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
                child.id()
            };
            if self.answering_pid() == Some(pid) {
                return true;
            }
            sleep(Duration::from_millis(10));
        }
        panic!(
            "redis-server on port {} did not answer within {READY_WITHIN:?}: {}",
            self.port,
            self.log_tail()
        );
    }

    /// The pid of the server answering on our port, once it has loaded its data.
    fn answering_pid(&self) -> Option<u32> {
        let mut con = self.try_admin().ok()?;
        let info: String = redis::cmd("INFO").query(&mut con).ok()?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        // A sentinel loads no data and has no `loading` field.
        if !matches!(self.mode, Mode::Sentinel(_)) && field("loading") != Some("0") {
            return None;
        }
        field("process_id")?.parse().ok()
    }

    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(log_path(&self.dir)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn log_path(dir: &TempDir) -> PathBuf {
    dir.path().join("redis.log")
}

/// Clears what a failed start left, so the next attempt starts clean.
fn clear_state(dir: &TempDir) {
    let _ = fs::remove_file(dir.path().join("nodes.conf"));
    let _ = fs::remove_dir_all(dir.path().join("appendonlydir"));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl RedisServer {
    fn spawn(&self) -> Child {
        let dir = &self.dir;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path(dir))
            .expect("the redis-server log file");
        let mut cmd = Command::new("redis-server");
        if let Mode::Sentinel(master) = self.mode {
            // A sentinel rewrites its config file, so each gets its own.
            let conf = dir.path().join("sentinel.conf");
            fs::write(&conf, sentinel_conf(master)).expect("the sentinel's config file");
            cmd.arg(conf).arg("--sentinel");
        }
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir.path())
            .args(["--daemonize", "no", "--logfile", ""]);
        if !matches!(self.mode, Mode::Sentinel(_)) {
            // A replica (or an old master after a failover) syncs at once.
            cmd.args(["--repl-diskless-sync-delay", "0"]);
        }
        match self.mode {
            Mode::Sentinel(_) => &mut cmd,
            Mode::Ephemeral => cmd.args(["--save", "", "--appendonly", "no"]),
            Mode::Persistent => cmd.args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ]),
            Mode::Cluster => cmd.args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",
                &self.bus_port.to_string(),
            ]),
            Mode::ReplicaOf(master) => cmd
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--replicaof",
                    "127.0.0.1",
                ])
                .arg(master.to_string()),
        };
        spawn(cmd, log)
    }
}

/// Quick to call the master down (1 s without an answer) and to retry a failover.
fn sentinel_conf(master: u16) -> String {
    format!(
        "sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master} 1\n\
         sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
         sentinel failover-timeout {SENTINEL_MASTER} 5000\n"
    )
}

fn spawn(mut cmd: Command, log: fs::File) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file handle"))
        .stderr(log);
    // SAFETY: the closure runs in the child between fork and exec and only calls
    // prctl(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
            "redis-server is not installed; the Redis tests need the real server: \
             apt-get install redis-server (scripts/test.sh installs it when run as root)"
        ),
        Err(e) => panic!("cannot start redis-server: {e}"),
    }
}

/// Moves every key TTL under `prefix` on `admin`'s server on by `by`, deleting the
/// keys whose TTL it reaches: what Redis's clock does when `by` passes, without
/// waiting for it.
pub fn let_ttls_pass(admin: &mut redis::Connection, prefix: &str, by: std::time::Duration) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(admin)
        .expect("KEYS");
    let by = i64::try_from(by.as_millis()).expect("a duration in ms");
    for key in keys {
        let left: i64 = redis::cmd("PTTL").arg(&key).query(admin).expect("PTTL");
        if left <= 0 {
            continue;
        }
        let _: i64 = if left <= by {
            redis::cmd("DEL").arg(&key).query(admin).expect("DEL")
        } else {
            redis::cmd("PEXPIRE")
                .arg(&key)
                .arg(left - by)
                .query(admin)
                .expect("PEXPIRE")
        };
    }
}
