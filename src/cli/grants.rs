//! `jitbot grants list|revoke`: the operator's view of the shared state, for when
//! Slack is not at hand. Both read the Redis store at `REDIS_URL`; a jitbot on the
//! memory store keeps its state inside its own process, where no CLI can reach it.

use std::collections::HashMap;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::{ConfigArg, block_on, fail_settings};
use crate::core::command::Reason;
use crate::core::ids::{RequestId, SlackUserId};
use crate::core::request::{AccessRequest, State};
use crate::settings::{Secrets, Settings};
use crate::startup::{self, operator_app};

const NEEDS_REDIS: &str = "jitbot grants reads the shared state: set REDIS_URL to the Redis your jitbot uses (with the memory store, state lives inside the running jitbot and no CLI can reach it)";

fn load(
    config: &ConfigArg,
    env: &HashMap<String, String>,
) -> Result<(Settings, crate::core::catalog::Catalog, Secrets), ExitCode> {
    let (settings, catalog) =
        Settings::load_checked(config.config.as_deref(), env).map_err(|e| fail_settings(&e))?;
    let secrets = Secrets::from_vars(env);
    if secrets.redis_url.is_none() {
        eprintln!("{NEEDS_REDIS}");
        return Err(ExitCode::from(2));
    }
    Ok((settings, catalog, secrets))
}

fn row(r: &AccessRequest, now: DateTime<Utc>) -> String {
    let until = match (r.state, r.expires_at) {
        (State::Active, Some(at)) => {
            let left = (at - now).num_minutes().max(0);
            format!("{} (in {left}m)", at.format("%Y-%m-%d %H:%M UTC"))
        }
        (State::Pending, _) => format!("lapses {}", r.approval_deadline.format("%H:%M UTC")),
        _ => "-".to_owned(),
    };
    let approved: Vec<String> = r.approved_by().iter().map(|u| u.to_string()).collect();
    format!(
        "{:<16}  {:<9}  {:<20}  {:<11}  {:<28}  {:<30}  {}",
        r.id,
        r.state,
        r.target,
        r.requester,
        r.source.to_string(),
        until,
        if approved.is_empty() {
            "-".to_owned()
        } else {
            approved.join(",")
        }
    )
}

pub(super) fn list(config: &ConfigArg, all: bool, env: &HashMap<String, String>) -> ExitCode {
    let (settings, catalog, secrets) = match load(config, env) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let states: &[State] = if all {
        &[State::Pending, State::Approved, State::Active]
    } else {
        &[State::Active]
    };
    let work = async {
        let app = startup::store_app(&settings, catalog, &secrets).await?;
        let mut out = Vec::new();
        for s in states {
            out.extend(app.list_in(*s).await?);
        }
        anyhow::Ok(out)
    };
    match block_on(work) {
        Ok(Ok(requests)) => {
            let now = Utc::now();
            println!(
                "{:<16}  {:<9}  {:<20}  {:<11}  {:<28}  {:<30}  APPROVED BY",
                "ID", "STATE", "TARGET", "REQUESTER", "SOURCE", "UNTIL"
            );
            for r in &requests {
                println!("{}", row(r, now));
            }
            eprintln!("{} request(s)", requests.len());
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("cannot list grants: {e:#}");
            ExitCode::FAILURE
        }
        Err(code) => code,
    }
}

pub(super) fn revoke(
    config: &ConfigArg,
    id: &str,
    by: &str,
    reason: Option<&str>,
    env: &HashMap<String, String>,
) -> ExitCode {
    let (settings, catalog, secrets) = match load(config, env) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let parsed = (
        id.parse::<RequestId>(),
        by.parse::<SlackUserId>(),
        Reason::new(reason.unwrap_or("revoked with jitbot grants revoke"), 0),
    );
    let (id, by, reason) = match parsed {
        (Ok(i), Ok(b), Ok(r)) => (i, b, r),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let work = async {
        let (app, flush) = operator_app(&settings, catalog, &secrets).await?;
        let result = app.revoke(&id, &by, Some(reason)).await;
        flush.await;
        anyhow::Ok(result)
    };
    match block_on(work) {
        Ok(Ok(Ok(revocation))) => {
            let req = &revocation.transition.request;
            println!(
                "revoked {}: {} for {} has ended",
                req.id, req.target, req.requester
            );
            let Err(why) = &revocation.policy else {
                return ExitCode::SUCCESS;
            };
            eprintln!(
                "but its NetworkPolicy is still in the cluster: {why}. A serving jitbot's reconciler deletes it on its next pass (worker.reconcile_interval); to delete it now, run this command where jitbot's own credentials are (kubectl -n jitbot exec deploy/jitbot -- jitbot grants revoke …)"
            );
            ExitCode::FAILURE
        }
        Ok(Ok(Err(e))) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Ok(Err(e)) => {
            eprintln!("cannot revoke: {e:#}");
            ExitCode::FAILURE
        }
        Err(code) => code,
    }
}
