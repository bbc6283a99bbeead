//! The `/jit` slash command. Every answer is ephemeral (only the person who typed
//! sees it). Reading the command needs nothing but the catalog and is answered at
//! once; what needs the store runs under the ack budget; a revoke, which talks to the
//! cluster, and the request form, which is a Web API call, run after the ack.

use std::fmt::Write;
use std::sync::Arc;

use serde_json::json;
use slack_morphism::prelude::SlackCommandEvent;
use tracing::{info, warn};

use super::{Inbound, Reply, sentence, views};
use crate::adapters::slack::blocks::Message;
use crate::app::Submission;
use crate::core::actions::CANCEL;
use crate::core::command::{self, Command, USAGE};
use crate::core::ids::{RequestId, SlackUserId};
use crate::core::request::{AccessRequest, State as RequestState};
use crate::core::ttl::Ttl;

/// The ack while an answer that needs the store is late.
pub(super) const STILL_WORKING: &str = "jitbot is still working on this (its state store is slow to answer); the answer will appear here as soon as it has one";

pub(super) async fn answer(
    inbound: &Arc<Inbound>,
    event: SlackCommandEvent,
    proof: String,
) -> Reply {
    let user: SlackUserId = match event.user_id.to_string().parse() {
        Ok(u) => u,
        Err(e) => return Reply::text(format!("jitbot cannot read your Slack id: {e}")),
    };
    let text = event.text.as_deref().unwrap_or("");
    let cmd = match command::parse(text, inbound.app.catalog()) {
        Ok(c) => c,
        Err(e) => return Reply::text(e.to_string()),
    };
    let response_url = event.response_url.0.to_string();
    match cmd {
        Command::Help => Reply::text(help()),
        Command::Form => {
            let trigger = event.trigger_id.to_string();
            let worker = inbound.clone();
            inbound.later(async move {
                views::open_request_form(&worker, &trigger, &user, Some(&response_url)).await;
            });
            Reply::Nothing
        }
        Command::Revoke { id, reason } => {
            // The cluster may be slow to answer: the whole revoke, its replay check
            // included, runs after the ack and reports through the response_url.
            let shown = id.clone();
            let worker = inbound.clone();
            inbound.later(async move {
                let text = match worker.first_sight(&proof).await {
                    Err(refusal) => refusal,
                    Ok(()) => match worker.app.revoke(&id, &user, reason).await {
                        Ok(revocation) => revocation.sentence(),
                        Err(e) => sentence(&e),
                    },
                };
                worker
                    .respond(Some(&response_url), &plain(text), false)
                    .await;
            });
            Reply::text(format!("Revoking `{shown}`…"))
        }
        Command::BreakGlass {
            target,
            duration,
            from,
            reason,
        } => {
            // Applying talks to the cluster: it runs after the ack, like a revoke.
            let shown = target.clone();
            let submission = Submission {
                requester: user,
                target,
                duration,
                from,
                reason,
            };
            let worker = inbound.clone();
            inbound.later(async move {
                let text = match worker.first_sight(&proof).await {
                    Err(refusal) => refusal,
                    Ok(()) => match worker.app.break_glass(submission).await {
                        Ok(req) => broken_glass(&req),
                        Err(e) => sentence(&e),
                    },
                };
                worker
                    .respond(Some(&response_url), &plain(text), false)
                    .await;
            });
            Reply::text(format!("Breaking the glass on `{shown}`…"))
        }
        slow => {
            let worker = inbound.clone();
            let url = response_url.clone();
            inbound
                .guarded(
                    async move { stored(&worker, slow, user, proof).await },
                    Reply::text(STILL_WORKING),
                    {
                        let inbound = inbound.clone();
                        move |reply: Reply| async move {
                            if let Reply::Ephemeral(message) = reply {
                                inbound.respond(Some(&url), &message, false).await;
                            }
                        }
                    },
                )
                .await
        }
    }
}

/// The commands whose answer needs the store.
async fn stored(inbound: &Inbound, cmd: Command, user: SlackUserId, proof: String) -> Reply {
    let app = &inbound.app;
    let changes = matches!(
        cmd,
        Command::Request { .. } | Command::Extend { .. } | Command::Cancel { .. }
    );
    // A command that changes something is acted on once, however often its delivery
    // is repeated; reading commands need no such check.
    if changes && let Err(refusal) = inbound.first_sight(&proof).await {
        return Reply::text(refusal);
    }
    match cmd {
        Command::List => Reply::text(list(inbound, &user).await),
        Command::Targets => Reply::text(targets(inbound, &user).await),
        Command::Request {
            target,
            duration,
            from,
            reason,
        } => {
            let submission = Submission {
                requester: user,
                target,
                duration,
                from,
                reason,
            };
            match app.submit(submission).await {
                Ok(req) => Reply::Ephemeral(acknowledgement(inbound, &req)),
                Err(e) => Reply::text(sentence(&e)),
            }
        }
        Command::Extend { id, duration } => match app.extend(&id, &user, duration).await {
            Ok(_) => Reply::text(extension_asked(&id, duration)),
            Err(e) => Reply::text(sentence(&e)),
        },
        Command::Cancel { id } => match app.cancel(&id, &user).await {
            Ok(_) => Reply::text(cancelled(&id.to_string())),
            Err(e) => Reply::text(sentence(&e)),
        },
        other => {
            warn!(command = %other, "a command that needs no store reached the store path");
            Reply::text(help())
        }
    }
}

/// What the requester sees once a request is filed: where it went, and a Cancel
/// button (which works until an approver decides); or, when a rule approved it at
/// once, that it is open.
pub(super) fn acknowledgement(inbound: &Inbound, req: &AccessRequest) -> Message {
    if req.state != RequestState::Pending {
        return plain(auto_approved(req));
    }
    let channel = inbound
        .app
        .catalog()
        .target(req.target.as_str())
        .map(|t| format!("<#{}>", t.approval_channel))
        .unwrap_or_default();
    let text = format!(
        "Request `{}` for *{}* ({}) sent to {channel} for approval.",
        req.id, req.target, req.duration
    );
    Message {
        blocks: json!([
            { "type": "section", "text": { "type": "mrkdwn", "text": text } },
            { "type": "actions", "block_id": format!("requested:{}", req.id), "elements": [{
                "type": "button",
                "action_id": CANCEL,
                "text": { "type": "plain_text", "text": "Cancel request" },
                "value": req.id.to_string(),
            }]},
        ]),
        text,
    }
}

/// What the requester sees when a rule approved their request at once.
fn auto_approved(req: &AccessRequest) -> String {
    let rule = req.approved_by_rule.as_deref().unwrap_or("?");
    match (req.state, req.expires_at) {
        (RequestState::Active, Some(until)) => format!(
            "Request `{}` for *{}* was approved by rule `{rule}`: your access is open until {}. The approvers can see it.",
            req.id,
            req.target,
            until.format("%H:%M UTC")
        ),
        (RequestState::Failed, _) => format!(
            "Request `{}` for *{}* was approved by rule `{rule}`, but applying it failed, so nothing was opened; the audit thread says why.",
            req.id, req.target
        ),
        _ => format!(
            "Request `{}` for *{}* was approved by rule `{rule}`; jitbot is applying it and will DM you when it is open.",
            req.id, req.target
        ),
    }
}

/// What someone who broke the glass sees.
fn broken_glass(req: &AccessRequest) -> String {
    match (req.state, req.expires_at) {
        (RequestState::Active, Some(until)) => format!(
            "🚨 Break-glass access to *{}* is open until {} (`{}`). Every approver has been told, and one must acknowledge it.",
            req.target,
            until.format("%H:%M UTC"),
            req.id
        ),
        (RequestState::Failed, _) => format!(
            "Break-glass on *{}* was recorded, but applying it failed, so nothing was opened (`{}`); the audit thread says why.",
            req.target, req.id
        ),
        _ => format!(
            "Break-glass on *{}* is recorded (`{}`); jitbot is applying it and will DM you when it is open.",
            req.target, req.id
        ),
    }
}

/// The sentence for an extension asked for (by `/jit extend` or the Extend form).
pub(super) fn extension_asked(id: &RequestId, duration: Ttl) -> String {
    format!("Asked for *{duration}* more on `{id}`; the approvers were asked again.")
}

/// The sentence for a withdrawn request.
pub(super) fn cancelled(id: &str) -> String {
    format!("Request `{id}` is cancelled; nothing was granted.")
}

/// A message of text alone.
pub(super) fn plain(text: String) -> Message {
    Message {
        blocks: json!([]),
        text,
    }
}

fn help() -> String {
    format!(
        "*jitbot* opens a network path for a limited time, once an approver agrees.\n\
         • `/jit` or `/jit request`: the request form\n\
         • `/jit request <target> <duration> [from <address>] <reason…>`: ask for access, e.g. `/jit request payments-db 30m INC-4411 replica lag`\n\
         • `/jit breakglass <target> <duration> <reason…>`: in an emergency, where a target offers it: access at once, without approval; every approver is told and one must acknowledge it\n\
         • `/jit list`: your requests and grants (the app's Home tab shows them too)\n\
         • `/jit cancel <id>`: withdraw a request nobody has decided yet\n\
         • `/jit revoke <id> [reason…]`: end a grant now\n\
         • `/jit extend <id> <duration>`: ask for more time (approved again)\n\
         • `/jit targets`: what you can ask for\n\
         Durations look like `15m`, `2h` or `1h30m`.\nUsage: `{USAGE}`"
    )
}

async fn targets(inbound: &Inbound, user: &SlackUserId) -> String {
    let catalog = inbound.app.catalog();
    if catalog.targets().is_empty() {
        return "There are no targets yet; ask your platform team to add some to jitbot's catalog."
            .to_owned();
    }
    if catalog.requester(user).is_none() {
        return format!(
            "You are not set up to request access yet: ask your platform team to add your Slack id {user} to jitbot's requesters."
        );
    }
    let mine = inbound.app.targets_for(user).await;
    if mine.is_empty() {
        return "No target lets you request it; ask your platform team which ones you should have."
            .to_owned();
    }
    let mut out = String::from("*Targets you may request*\n");
    for t in &mine {
        let ports: Vec<String> = t.ports.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(
            out,
            "• `{}`: {} ({} in {}; default {}, up to {}; {} approval(s) in <#{}>)",
            t.name,
            if t.description.is_empty() {
                "no description"
            } else {
                &t.description
            },
            ports.join(", "),
            t.namespace,
            t.default_duration,
            t.max_duration,
            t.approvals_required,
            t.approval_channel
        );
    }
    out
}

async fn list(inbound: &Inbound, user: &SlackUserId) -> String {
    let requests = match inbound.app.list_for(user).await {
        Ok(r) => r,
        Err(e) => return sentence(&e),
    };
    if requests.is_empty() {
        return "You have no requests yet. Try `/jit targets`.".to_owned();
    }
    let mut out = String::from("*Your requests* (newest first)\n");
    for r in requests.iter().take(15) {
        let when = match r.state {
            RequestState::Active => r
                .expires_at
                .map(|t| format!(" until {}", t.format("%H:%M UTC")))
                .unwrap_or_default(),
            RequestState::Pending => format!(
                " ({} of {} approvals)",
                r.approvals.len(),
                r.scope.approvals_required
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "• `{}` {} {}: *{}*{when}",
            r.id, r.target, r.duration, r.state
        );
    }
    info!(user = %user, count = requests.len(), "listed requests");
    out
}
