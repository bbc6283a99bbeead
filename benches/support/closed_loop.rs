//! Step 5 of the serve bench: slash-command acks in a closed loop, where each client
//! sends its next request as soon as the last one was answered. One client on one
//! keep-alive connection gives the latency of an ack with nothing queued ahead of
//! it; sixteen at once give the throughput jitbot answers at when pushed.
//!
//! Two commands: `/jit request`, which writes a Pending request to Redis before it
//! answers (its event, in the same write, is the approval card's outbox entry), and
//! `/jit help`, which touches no state, so the difference is what the store write
//! costs. The counts are bounded so that the step can then wait for those cards, and
//! the SIGTERM that follows finds no backlog.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::fakes::ALICE;
use crate::{Bench, Percentiles, post_signed, request_id};

/// How big the step is.
pub struct Plan {
    /// Requests on one connection, one after another, per command.
    pub sequential: usize,
    /// Clients at once for the throughput figure.
    pub clients: usize,
    /// Requests the clients send between them: `/jit request`, `/jit help`.
    pub requests: usize,
    pub helps: usize,
}

/// One command's figures at one concurrency.
pub struct Run {
    pub command: &'static str,
    pub clients: usize,
    pub sent: usize,
    pub errors: usize,
    pub latency: Percentiles,
    /// Answers per second, first send to last answer.
    pub per_sec: f64,
}

pub struct Report {
    pub runs: Vec<Run>,
    /// How long the approval cards of the requests took to drain after the last run.
    pub cards_drained: Option<Duration>,
}

const REQUEST: &str = "request payments-db 30m INC-4411 replica lag";
const HELP: &str = "help";

pub async fn run(plan: &Plan, bench: &Bench, patience: Duration) -> Report {
    let mut runs = Vec::new();
    let mut ids = Vec::new();
    // `/jit help` first: the cards `/jit request` queues are posted while the runs
    // after it go on, and would share the machine with them.
    for (command, text, total) in [
        ("/jit help", HELP, plan.helps),
        ("/jit request", REQUEST, plan.requests),
    ] {
        for clients in [1, plan.clients] {
            let count = if clients == 1 { plan.sequential } else { total };
            let (run, mut made) = closed_loop(bench, command, text, clients, count).await;
            ids.append(&mut made);
            runs.push(run);
        }
    }
    let cards_drained = bench.wait_for_cards(&ids, patience).await;
    Report {
        runs,
        cards_drained,
    }
}

/// `clients` tasks share `count` requests, each sending the next when answered.
async fn closed_loop(
    bench: &Bench,
    command: &'static str,
    text: &str,
    clients: usize,
    count: usize,
) -> (Run, Vec<String>) {
    let url: Arc<str> = format!("{}/slack/commands", bench.jitbot.base).into();
    let per_client = count.div_ceil(clients);
    // Each command a body of its own (its own trigger_id), as Slack sends them, made
    // before the clock starts.
    let bodies: Vec<Vec<String>> = (0..clients)
        .map(|_| {
            (0..per_client)
                .map(|_| bench.inbound.command_body(ALICE, text))
                .collect()
        })
        .collect();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for client in bodies {
        let (http, url) = (bench.http.clone(), url.clone());
        tasks.spawn(async move {
            let mut answers = Vec::with_capacity(per_client);
            for body in client {
                let sent = Instant::now();
                let answer = post_signed(&http, &url, body).await;
                answers.push((sent.elapsed(), answer));
            }
            answers
        });
    }
    let (mut latencies, mut errors, mut ids) = (Vec::new(), 0, Vec::new());
    while let Some(done) = tasks.join_next().await {
        for (took, answer) in done.expect("a client task") {
            latencies.push(took);
            match (command, answer) {
                ("/jit request", answer) => match request_id(answer) {
                    Ok(id) => ids.push(id),
                    Err(_) => errors += 1,
                },
                (_, Ok((200, _))) => {}
                (_, _) => errors += 1,
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent = latencies.len();
    let run = Run {
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
    };
    (run, ids)
}

pub fn print(report: &Report) {
    println!(
        "\n5. Slash-command acks in a closed loop (each client sends when answered; one keep-alive \
         connection per client); ms"
    );
    println!(
        "{:<14} {:>8} {:>8} {:>7} {:>10} {:>8} {:>8} {:>8} {:>9}",
        "", "clients", "sent", "errors", "answered", "p50", "p90", "p99", "max"
    );
    for r in &report.runs {
        println!(
            "{:<14} {:>8} {:>8} {:>7} {:>8.0}/s {}",
            r.command,
            r.clients,
            r.sent,
            r.errors,
            r.per_sec,
            r.latency.ms()
        );
    }
    println!(
        "approval cards of these requests: {}",
        match report.cards_drained {
            Some(d) => format!("all posted {:.1} s after the last run", d.as_secs_f64()),
            None => "not all posted in time".to_owned(),
        }
    );
}
