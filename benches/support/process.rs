//! The `jitbot serve` binary as a child process, and what Linux says about processes:
//! resident memory (`/proc/<pid>/status`) and CPU time (`/proc/<pid>/stat`).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A running `jitbot serve`, its log (JSON lines) in a file. Killed when dropped, and
/// killed by the kernel should the bench itself die.
pub struct Jitbot {
    child: Option<Child>,
    pub pid: u32,
    /// `http://127.0.0.1:<port>`, from its "jitbot is listening" log line.
    pub base: String,
    /// Where `/metrics` answers (`server.metrics_listen`), from the same line.
    pub metrics_base: String,
    pub log: PathBuf,
}

impl Jitbot {
    /// Starts `bin serve --config config` with `env` (and nothing inherited that would
    /// change its configuration), and waits until it says where it listens.
    pub fn start(bin: &Path, config: &Path, env: &[(&str, String)], log: PathBuf) -> Jitbot {
        let file = fs::File::create(&log).expect("the jitbot log file");
        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg("--config").arg(config);
        for (key, _) in std::env::vars() {
            if key.starts_with("JITBOT") || key == "RUST_LOG" || key == "REDIS_URL" {
                cmd.env_remove(key);
            }
        }
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(file);
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
        let mut child = cmd.spawn().expect("start jitbot serve");
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(30);
        let (base, metrics_base) = loop {
            let text = fs::read_to_string(&log).unwrap_or_default();
            let addrs = text.lines().find_map(|line| {
                let json: serde_json::Value = serde_json::from_str(line).ok()?;
                let at = |field: &str| json[field].as_str().map(|a| format!("http://{a}"));
                (json["message"] == "jitbot is listening")
                    .then(|| Some((at("addr")?, at("metrics_addr")?)))?
            });
            if let Some(addrs) = addrs {
                break addrs;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("jitbot serve exited ({status}) before listening:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "jitbot serve did not listen within 30 s:\n{text}"
            );
            sleep(Duration::from_millis(20));
        };
        Jitbot {
            child: Some(child),
            pid,
            base,
            metrics_base,
            log,
        }
    }

    /// Memory as the kernel sees it now.
    pub fn memory(&self) -> Memory {
        Memory::of(self.pid)
    }

    /// SIGTERM, then waits for the graceful stop (SIGKILL after `grace`).
    pub fn stop(mut self, grace: Duration) -> (Option<ExitStatus>, Duration) {
        let started = Instant::now();
        let Some(mut child) = self.child.take() else {
            return (None, Duration::ZERO);
        };
        // SAFETY: kill(2) only sends a signal to our own child process.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        while started.elapsed() < grace {
            if let Ok(Some(status)) = child.try_wait() {
                return (Some(status), started.elapsed());
            }
            sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        (None, started.elapsed())
    }

    /// Lines of its log at `level` (WARN, ERROR), counted by message.
    pub fn log_lines(&self, level: &str) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for line in fs::read_to_string(&self.log).unwrap_or_default().lines() {
            let Ok(json) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if json["level"] == level {
                let message = json["message"].as_str().unwrap_or("?").to_owned();
                *out.entry(message).or_default() += 1;
            }
        }
        out
    }

    /// Log lines (any level) whose message is `message`.
    pub fn count_log(&self, message: &str) -> usize {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(message))
            .count()
    }
}

impl Drop for Jitbot {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Resident memory of a process, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Resident now (`VmRSS`).
    pub rss_kib: u64,
    /// The most it was ever resident (`VmHWM`).
    pub hwm_kib: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Memory {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Memory {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        }
    }
}

/// The highest resident memory of a process, sampled every `every` on the tokio
/// runtime.
pub struct RssSampler {
    peak: Arc<Mutex<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pid: u32, every: Duration) -> RssSampler {
        let peak = Arc::new(Mutex::new(0));
        let shared = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                let rss = Memory::of(pid).rss_kib;
                {
                    let mut p = shared.lock().unwrap();
                    *p = (*p).max(rss);
                }
                tokio::time::sleep(every).await;
            }
        });
        RssSampler { peak, task }
    }

    /// Stops sampling; the peak in KiB.
    pub fn stop(self) -> u64 {
        self.task.abort();
        *self.peak.lock().unwrap()
    }
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which may itself hold spaces: state is the
    // first, utime the 12th and stime the 13th.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / clock_ticks()
}

/// CPU seconds the whole machine has spent busy (not idle nor waiting on I/O).
pub fn machine_busy_secs() -> f64 {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: u64 = values
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    busy as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// CPU used by a set of named processes (and the machine) between two points.
pub struct CpuWindow {
    started: Instant,
    at_start: Vec<(String, u32, f64)>,
    machine: f64,
}

impl CpuWindow {
    pub fn start(procs: &[(String, u32)]) -> CpuWindow {
        CpuWindow {
            started: Instant::now(),
            at_start: procs
                .iter()
                .map(|(name, pid)| (name.clone(), *pid, cpu_secs(*pid)))
                .collect(),
            machine: machine_busy_secs(),
        }
    }

    /// Cores each process used on average since `start`, then the whole machine's.
    pub fn cores(&self) -> (Vec<(String, f64)>, f64) {
        let wall = self.started.elapsed().as_secs_f64();
        let each = self
            .at_start
            .iter()
            .map(|(name, pid, before)| (name.clone(), (cpu_secs(*pid) - before) / wall))
            .collect();
        (each, (machine_busy_secs() - self.machine) / wall)
    }
}
