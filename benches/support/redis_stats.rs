//! What Redis itself reports, read over a separate admin connection: commands run
//! (`INFO commandstats`, reset between steps) and memory.

use std::collections::BTreeMap;

/// Commands the store sends itself. Everything else counted in `commandstats` ran
/// inside its Lua scripts (which use none of these), so these are the round trips.
const SENT_BY_THE_STORE: [&str; 8] = [
    "evalsha",
    "eval",
    "script|load",
    "hget",
    "zrange",
    "lrange",
    "xrevrange",
    "ping",
];

/// Calls and microseconds per command during one step.
pub struct Calls(BTreeMap<String, (u64, u64)>);

impl Calls {
    fn sent(&self) -> impl Iterator<Item = &(u64, u64)> {
        self.0
            .iter()
            .filter(|(name, _)| SENT_BY_THE_STORE.contains(&name.as_str()))
            .map(|(_, stats)| stats)
    }

    /// Commands the store sent: its round trips, as the steps measured here send no
    /// pipelines.
    pub fn round_trips(&self) -> u64 {
        self.sent().map(|(calls, _)| calls).sum()
    }

    /// Every command Redis ran, including those inside scripts.
    pub fn in_redis(&self) -> u64 {
        self.0.values().map(|(calls, _)| calls).sum()
    }

    /// Time Redis spent executing the store's commands (a script's time includes the
    /// commands inside it), in milliseconds: the server's share of the wall time.
    pub fn busy_ms(&self) -> f64 {
        self.sent().map(|(_, usec)| *usec as f64).sum::<f64>() / 1e3
    }
}

pub struct RedisStats(pub redis::Connection);

impl RedisStats {
    fn info(&mut self, section: &str) -> String {
        redis::cmd("INFO")
            .arg(section)
            .query(&mut self.0)
            .expect("INFO")
    }

    fn field(&mut self, section: &str, name: &str) -> String {
        let prefix = format!("{name}:");
        self.info(section)
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_owned()))
            .unwrap_or_default()
    }

    pub fn version(&mut self) -> String {
        self.field("server", "redis_version")
    }

    pub fn reset(&mut self) {
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut self.0)
            .expect("CONFIG RESETSTAT");
    }

    /// Commands run since `reset`, without this connection's own.
    pub fn calls(&mut self) -> Calls {
        let calls = self
            .info("commandstats")
            .lines()
            .filter_map(|line| {
                let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let field = |key: &str| -> Option<u64> {
                    stats
                        .split(',')
                        .find_map(|kv| kv.strip_prefix(key))?
                        .parse()
                        .ok()
                };
                Some((name.to_owned(), (field("calls=")?, field("usec=")?)))
            })
            .filter(|(name, _)| name != "info" && !name.starts_with("config"))
            .collect();
        Calls(calls)
    }

    pub fn used_memory(&mut self) -> i64 {
        self.field("memory", "used_memory")
            .parse()
            .expect("used_memory in INFO memory")
    }

    /// Bytes a key takes, counting every element (`SAMPLES 0`).
    pub fn memory_usage(&mut self, key: &str) -> i64 {
        redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query(&mut self.0)
            .unwrap_or(0)
    }
}
