//! Highly available Redis for tests, from real `redis-server` processes on loopback:
//! a three-master Redis Cluster, and a master with one replica watched by one
//! sentinel. Every process is a [`RedisServer`], so each dies with the test as a
//! single server does. Start them from the test's own thread.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::support::redis::{Mode, RedisServer, SENTINEL_MASTER};

/// How long a cluster may take to agree, or a failover to finish.
const SETTLED_WITHIN: Duration = Duration::from_secs(30);

/// Three masters that own all 16384 slots between them, no replicas.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes, gives each a third of the slots (`CLUSTER ADDSLOTSRANGE`),
    /// introduces them (`CLUSTER MEET`) and waits until every node reports the whole
    /// cluster as `ok`.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_with(Mode::Cluster))
            .collect();
        let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
        for (node, (first, last)) in nodes.iter().zip(ranges) {
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query(&mut node.admin())
                .expect("CLUSTER ADDSLOTSRANGE");
        }
        let mut first = nodes[0].admin();
        for other in &nodes[1..] {
            let _: () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(other.port())
                .arg(other.bus_port())
                .query(&mut first)
                .expect("CLUSTER MEET");
        }
        for node in &nodes {
            node.wait_for("the three-node cluster to be ok", |con| {
                let info: String = redis::cmd("CLUSTER").arg("INFO").query(con).ok()?;
                let ok = info.contains("cluster_state:ok")
                    && info.contains("cluster_known_nodes:3")
                    && info.contains("cluster_slots_ok:16384");
                ok.then_some(())
            });
        }
        RedisCluster { nodes }
    }

    /// `redis+cluster://` naming every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The node that serves `key`'s slot.
    pub fn owner_of(&self, key: &str) -> &RedisServer {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.nodes[0].admin())
            .expect("CLUSTER KEYSLOT");
        let third = [5460, 10922, 16383]
            .iter()
            .position(|last| slot <= *last)
            .expect("a slot below 16384");
        &self.nodes[third]
    }
}

/// A master, its replica and one sentinel that fails over between them.
pub struct SentinelGroup {
    servers: [RedisServer; 2],
    sentinel: RedisServer,
}

impl SentinelGroup {
    /// Starts the master and the replica, waits until the replica is in sync, then
    /// starts the sentinel and waits until it knows both.
    pub fn start() -> Self {
        let master = RedisServer::start_persistent();
        let replica = RedisServer::start_with(Mode::ReplicaOf(master.port()));
        replica.wait_for("the replica to sync", |con| {
            let info: String = redis::cmd("INFO").arg("replication").query(con).ok()?;
            info.contains("master_link_status:up").then_some(())
        });
        let sentinel = RedisServer::start_with(Mode::Sentinel(master.port()));
        let group = SentinelGroup {
            servers: [master, replica],
            sentinel,
        };
        group
            .sentinel
            .wait_for("the sentinel to see the replica", |con| {
                let replicas: Vec<Vec<String>> = redis::cmd("SENTINEL")
                    .arg("REPLICAS")
                    .arg(SENTINEL_MASTER)
                    .query(con)
                    .ok()?;
                (replicas.len() == 1).then_some(())
            });
        group
    }

    /// `redis+sentinel://` to the one sentinel.
    pub fn url(&self) -> String {
        format!(
            "redis+sentinel://127.0.0.1:{}/{SENTINEL_MASTER}",
            self.sentinel.port()
        )
    }

    /// The port of the master the sentinel names now.
    pub fn master_port(&self) -> u16 {
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(SENTINEL_MASTER)
            .query(&mut self.sentinel.admin())
            .expect("SENTINEL GET-MASTER-ADDR-BY-NAME");
        port
    }

    /// The server the sentinel names master now.
    pub fn master(&self) -> &RedisServer {
        self.server_on(self.master_port())
    }

    /// The server that is not the master now.
    pub fn replica(&self) -> &RedisServer {
        let master = self.master_port();
        self.servers
            .iter()
            .find(|s| s.port() != master)
            .expect("two servers")
    }

    pub fn server_on(&self, port: u16) -> &RedisServer {
        self.servers
            .iter()
            .find(|s| s.port() == port)
            .expect("the sentinel names one of our servers")
    }

    /// Waits until the replica has every write the master took so far: a write of
    /// our own, then `WAIT 1` for it (replication keeps order, so it comes last).
    pub fn sync_replica(&self) {
        let mut con = self.master().admin();
        let _: () = redis::cmd("SET")
            .arg("replication-probe")
            .arg(1)
            .query(&mut con)
            .expect("a write on the master");
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(10_000)
            .query(&mut con)
            .expect("WAIT");
        assert_eq!(acked, 1, "the replica did not confirm the writes");
    }

    /// Forces a failover (`SENTINEL FAILOVER`) and waits until the replica is master,
    /// the sentinel names it, and the old master serves as its replica. Returns the
    /// new master's port.
    pub fn fail_over(&self) -> u16 {
        let (old, new) = (self.master_port(), self.replica().port());
        // The sentinel refuses (NOGOODSLAVE) until it has heard from the replica.
        let deadline = Instant::now() + SETTLED_WITHIN;
        loop {
            let answer: redis::RedisResult<()> = redis::cmd("SENTINEL")
                .arg("FAILOVER")
                .arg(SENTINEL_MASTER)
                .query(&mut self.sentinel.admin());
            match answer {
                Ok(()) => break,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "SENTINEL FAILOVER: {e}: {}",
                    self.sentinel.log_tail()
                ),
            }
            sleep(Duration::from_millis(100));
        }
        self.settle(old, new);
        new
    }

    /// Crashes the master and waits until the sentinel has promoted the replica.
    /// Returns the new master's port.
    pub fn kill_master(&self) -> u16 {
        let (old, new) = (self.master_port(), self.replica().port());
        self.server_on(old).stop();
        self.wait_named(new);
        self.wait_role(new, "role:master");
        new
    }

    /// Makes the replica a master and points the sentinel at it by hand, leaving the
    /// old master a master too (nobody demotes it): only asking the sentinel tells a
    /// client to move. Returns the new master's port.
    pub fn switch_by_hand(&self) -> u16 {
        let new = self.replica();
        let _: () = redis::cmd("REPLICAOF")
            .arg("NO")
            .arg("ONE")
            .query(&mut new.admin())
            .expect("REPLICAOF NO ONE");
        let mut sentinel = self.sentinel.admin();
        let _: () = redis::cmd("SENTINEL")
            .arg("REMOVE")
            .arg(SENTINEL_MASTER)
            .query(&mut sentinel)
            .expect("SENTINEL REMOVE");
        let _: () = redis::cmd("SENTINEL")
            .arg("MONITOR")
            .arg(SENTINEL_MASTER)
            .arg("127.0.0.1")
            .arg(new.port())
            .arg(1)
            .query(&mut sentinel)
            .expect("SENTINEL MONITOR");
        self.wait_named(new.port());
        new.port()
    }

    /// Waits until `new` is master and named so, and `old` replicates from it.
    fn settle(&self, old: u16, new: u16) {
        self.wait_named(new);
        self.wait_role(new, "role:master");
        self.wait_role(old, "master_link_status:up");
    }

    fn wait_named(&self, port: u16) {
        self.sentinel
            .wait_for("the sentinel to name the new master", |con| {
                let (_, now): (String, u16) = redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(SENTINEL_MASTER)
                    .query(con)
                    .ok()?;
                (now == port).then_some(())
            });
    }

    fn wait_role(&self, port: u16, line: &str) {
        self.server_on(port).wait_for(line, |con| {
            let info: String = redis::cmd("INFO").arg("replication").query(con).ok()?;
            info.contains(line).then_some(())
        });
    }
}
