//! Step 6 of the serve bench: the same slash commands as step 5 (`/jit help`, `/jit
//! request`), acked over Socket Mode, beside step 5's HTTP figures. A second `jitbot
//! serve` (same config, store and cluster: another replica) runs with `slack.mode =
//! "socket"` and the stand-in's app token; the bench delivers `slash_commands`
//! envelopes through the stand-in's WebSocket and times each from send to its ack.
//! One client sends one after another (latency); several at once give the
//! throughput, which jitbot's two connections, each answering its envelopes in turn,
//! bound.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use jitbot::adapters::http::slack_request::SlashCommand;

use crate::closed_loop::{self, Run};
use crate::fake_slack::FakeSlack;
use crate::fakes::ALICE;
use crate::process::Jitbot;
use crate::{Percentiles, request_id};

/// How big the step is.
pub struct Plan {
    /// Envelopes one after another, per command.
    pub sequential: usize,
    /// Envelopes in flight at once for the throughput figure.
    pub clients: usize,
    /// Envelopes those clients send between them: `/jit request`, `/jit help`.
    pub requests: usize,
    pub helps: usize,
}

pub struct Report {
    pub runs: Vec<Run>,
    /// Socket Mode connections jitbot held when the step began.
    pub connections: usize,
    /// From the process's start to its first connection.
    pub connected_in: Duration,
}

const REQUEST: &str = "request payments-db 30m INC-4411 replica lag";
const HELP: &str = "help";

/// Runs the step against the Socket Mode replica `start` launches, and stops it.
pub async fn run(plan: &Plan, slack: &FakeSlack, start: impl FnOnce() -> Jitbot) -> Report {
    let started = Instant::now();
    let jitbot = start();
    slack.wait_until(|s| s.connections() >= 1).await;
    let connected_in = started.elapsed();
    let mut runs = Vec::new();
    for (command, text, total) in [
        ("/jit help", HELP, plan.helps),
        ("/jit request", REQUEST, plan.requests),
    ] {
        for clients in [1, plan.clients] {
            let count = if clients == 1 { plan.sequential } else { total };
            runs.push(closed_loop(slack, command, text, clients, count).await);
        }
    }
    let connections = slack.connections();
    let _ = jitbot.stop(Duration::from_secs(40));
    Report {
        runs,
        connections,
        connected_in,
    }
}

/// A `/jit <text>` envelope's payload with a `trigger_id` of its own.
fn payload(slack: &FakeSlack, text: &str, n: usize) -> serde_json::Value {
    SlashCommand {
        token: "legacy",
        team_id: "T1DC2JH3J",
        team_domain: "example",
        channel_id: "C01GENERAL",
        channel_name: "general",
        user_id: ALICE,
        user_name: "alice",
        command: "/jit",
        text,
        response_url: &slack.response_url("socket-bench"),
        trigger_id: &format!("777000111222.47445629121.{n:032x}"),
    }
    .payload()
}

async fn closed_loop(
    slack: &FakeSlack,
    command: &'static str,
    text: &str,
    clients: usize,
    count: usize,
) -> Run {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let per_client = count.div_ceil(clients);
    let envelopes: Vec<Vec<serde_json::Value>> = (0..clients)
        .map(|_| {
            (0..per_client)
                .map(|_| {
                    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    payload(slack, text, n)
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for client in envelopes {
        let slack = slack.clone();
        tasks.spawn(async move {
            let mut answers = Vec::with_capacity(per_client);
            for envelope in client {
                let sent = Instant::now();
                let acked = slack.send_command(envelope).await;
                answers.push((sent.elapsed(), acked));
            }
            answers
        });
    }
    let (mut latencies, mut errors) = (Vec::new(), 0);
    while let Some(done) = tasks.join_next().await {
        for (took, acked) in done.expect("a client task") {
            latencies.push(took);
            let text = acked
                .ok()
                .flatten()
                .and_then(|p| p["text"].as_str().map(str::to_owned));
            let ok = match (command, text) {
                ("/jit request", Some(text)) => request_id(Ok((200, text))).is_ok(),
                (_, Some(_)) => true,
                (_, None) => false,
            };
            errors += usize::from(!ok);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent = latencies.len();
    Run {
        command,
        clients,
        sent,
        errors,
        latency: Percentiles::of_durations(latencies),
        per_sec: if elapsed > 0.0 {
            sent as f64 / elapsed
        } else {
            0.0
        },
    }
}

pub fn print(report: &Report, http: &closed_loop::Report) {
    println!(
        "\n6. Slash-command acks over Socket Mode beside HTTP (step 5), send → ack; a second \
         replica holding {} connection(s), connected {:.1} s after its start; ms",
        report.connections,
        report.connected_in.as_secs_f64()
    );
    println!(
        "{:<14} {:<7} {:>8} {:>8} {:>7} {:>10} {:>8} {:>8} {:>8} {:>9}",
        "", "via", "clients", "sent", "errors", "answered", "p50", "p90", "p99", "max"
    );
    for r in &report.runs {
        let beside = http
            .runs
            .iter()
            .filter(|h| h.command == r.command && (h.clients == 1) == (r.clients == 1));
        for (via, run) in std::iter::once(("socket", r)).chain(beside.map(|h| ("http", h))) {
            println!(
                "{:<14} {:<7} {:>8} {:>8} {:>7} {:>8.0}/s {}",
                run.command,
                via,
                run.clients,
                run.sent,
                run.errors,
                run.per_sec,
                run.latency.ms()
            );
        }
    }
}
