//! Typed configuration, layered as: built-in defaults < config file (`--config FILE` or
//! `JITBOT_CONFIG`) < environment variables `JITBOT__SECTION__KEY`. Secrets come only
//! from the environment and never print.
//!
//! Loading reports every unknown key (a typo must not pass silently) and then every
//! catalog problem, all at once.

use std::collections::HashMap;
use std::path::Path;

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Serialize};

use crate::adapters::slack::endpoint::api_url_problem;
use crate::core::catalog::{AccessConfig, Catalog, Problem, RequesterConfig, TargetConfig};
use crate::core::netpol::ListScope;
use crate::core::ports::DEFAULT_RETENTION;
pub use crate::core::secret::Secret;
use crate::core::ttl::Ttl;

/// The whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    pub server: ServerSettings,
    pub access: AccessConfig,
    pub slack: SlackSettings,
    pub store: StoreSettings,
    pub kubernetes: KubernetesSettings,
    pub worker: WorkerSettings,
    pub log: LogSettings,
    pub targets: Vec<TargetConfig>,
    pub requesters: Vec<RequesterConfig>,
}

/// `[server]`: the HTTP listeners.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ServerSettings {
    /// Slack's endpoints and the probes.
    pub listen: String,
    /// `/metrics` (and the probes again), apart from the port Slack reaches.
    pub metrics_listen: String,
    /// How long a replica told to stop keeps answering while unready, so load
    /// balancers take it out before it stops accepting.
    pub drain_delay: Ttl,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: "0.0.0.0:8080".to_owned(),
            metrics_listen: "0.0.0.0:9090".to_owned(),
            drain_delay: Ttl::from_secs(5),
        }
    }
}

/// `[slack]`: the Slack Web API side.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct SlackSettings {
    /// Base URL of Slack's Web API (GovSlack, or a loopback fake in tests).
    pub api_url: String,
    /// Channel id (`C…`) that gets one thread per request; empty for none.
    pub audit_channel: String,
    /// How long user-group members are cached.
    pub usergroup_cache_ttl: Ttl,
    /// How often a rate-limited (429) call is retried after its Retry-After.
    pub max_retries: usize,
    /// How long an event claimed from the Slack outbox stays with one replica without
    /// progress before another takes it over.
    pub delivery_lease: Ttl,
    /// How often the outbox is looked at for events other replicas wrote (this
    /// replica's own are delivered at once).
    pub delivery_poll: Ttl,
    /// How Slack reaches jitbot: `auto` (Socket Mode when `SLACK_APP_TOKEN` is set,
    /// HTTP otherwise), `http` or `socket`.
    pub mode: SlackMode,
}

/// `slack.mode`: how Slack's commands, clicks and events reach jitbot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlackMode {
    /// Socket Mode when `SLACK_APP_TOKEN` is set, HTTP otherwise.
    #[default]
    Auto,
    /// Slack posts to `/slack/commands`, `/slack/interactions` and `/slack/events`
    /// (needs a public HTTPS ingress and `SLACK_SIGNING_SECRET`).
    Http,
    /// jitbot opens WebSockets to Slack (needs `SLACK_APP_TOKEN`; no ingress).
    Socket,
}

/// The transport `slack.mode` chooses once the secrets are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlackTransport {
    Http,
    Socket,
}

impl SlackMode {
    /// `auto` resolved: Socket Mode exactly when `SLACK_APP_TOKEN` is set.
    pub fn transport(self, secrets: &Secrets) -> SlackTransport {
        match self {
            SlackMode::Http => SlackTransport::Http,
            SlackMode::Socket => SlackTransport::Socket,
            SlackMode::Auto if secrets.slack_app_token.is_some() => SlackTransport::Socket,
            SlackMode::Auto => SlackTransport::Http,
        }
    }
}

impl Default for SlackSettings {
    fn default() -> Self {
        SlackSettings {
            api_url: "https://slack.com/api/".to_owned(),
            audit_channel: String::new(),
            usergroup_cache_ttl: Ttl::from_mins(5),
            max_retries: 5,
            delivery_lease: Ttl::from_mins(2),
            delivery_poll: Ttl::from_secs(1),
            mode: SlackMode::Auto,
        }
    }
}

/// `[store]`: Redis, when `REDIS_URL` is set (otherwise state lives in memory).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct StoreSettings {
    /// Prefix of every key, with a hash tag so each script touches one cluster slot.
    pub key_prefix: String,
    /// Approximate length the audit stream is trimmed to.
    pub audit_maxlen: usize,
    pub connect_timeout: Ttl,
    pub response_timeout: Ttl,
    /// With `redis+sentinel://`: also authenticate to the sentinels with REDIS_URL's
    /// user and password (for sentinels that require one).
    pub sentinel_auth: bool,
    /// How long a finished request (denied, lapsed, cancelled, failed, expired,
    /// revoked), its history and notes are kept after it ended; `0s`: for ever.
    /// Pending, approved and active requests are always kept.
    pub retention: Ttl,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            key_prefix: "{jitbot}".to_owned(),
            audit_maxlen: 100_000,
            connect_timeout: Ttl::from_secs(5),
            response_timeout: Ttl::from_secs(2),
            sentinel_auth: false,
            retention: DEFAULT_RETENTION,
        }
    }
}

/// `[kubernetes]`: the cluster side.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct KubernetesSettings {
    /// `catalog`: list jitbot's policies in the catalog's namespaces only;
    /// `cluster`: everywhere (needs cluster-wide list rights).
    pub scope: ListScope,
    /// Timeout of one API call.
    pub request_timeout: Ttl,
    /// Attempts the Kubernetes adapter makes at each call that is not a delete: each
    /// policy's apply, each page of a list. A 429's `Retry-After` (capped) or a doubling
    /// backoff comes between them. When an apply's attempts are spent, the grant ends
    /// Failed; nothing above the adapter retries.
    pub apply_attempts: u32,
    /// How long one revoke keeps retrying before it gives up until the next pass.
    pub revoke_deadline: Ttl,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        KubernetesSettings {
            scope: ListScope::Catalog,
            request_timeout: Ttl::from_secs(10),
            apply_attempts: 3,
            revoke_deadline: Ttl::from_secs(60),
        }
    }
}

/// `[worker]`: the background loops.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct WorkerSettings {
    /// Longest the sweep sleeps. It wakes at the store's next timer (lapse, expiry
    /// warning, expiry) and when this replica arms an earlier one; this bounds the
    /// wait for a timer another replica armed.
    pub sweep_interval: Ttl,
    /// How often the cluster is reconciled against the store.
    pub reconcile_interval: Ttl,
    /// How long a claimed timer stays with one replica before another may take it.
    pub claim_lease: Ttl,
    /// Most timers one sweep claims.
    pub sweep_batch: usize,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            sweep_interval: Ttl::from_secs(5),
            reconcile_interval: Ttl::from_secs(30),
            claim_lease: Ttl::from_secs(60),
            sweep_batch: 1000,
        }
    }
}

/// `[log]`: how jitbot writes its log.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct LogSettings {
    /// `auto` (JSON lines when stderr is not a terminal), `json` or `text`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `jitbot=debug,info`. `RUST_LOG` wins if set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Auto,
            level: "info".to_owned(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Auto,
    Json,
    Text,
}

/// Secrets, read from the environment only.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    pub slack_bot_token: Option<Secret>,
    pub slack_signing_secret: Option<Secret>,
    /// `SLACK_APP_TOKEN` (xapp-…, with `connections:write`): opens Socket Mode
    /// connections (see `slack.mode`).
    pub slack_app_token: Option<Secret>,
    pub redis_url: Option<Secret>,
    /// `JITBOT_STATE_KEY`: seals every request stored in Redis (required with
    /// `REDIS_URL`); `JITBOT_STATE_KEY_PREVIOUS` still opens records while it is
    /// rotated out.
    pub state_key: Option<Secret>,
    pub state_key_previous: Option<Secret>,
}

impl Secrets {
    /// Reads the secrets from a set of environment variables; empty values count as unset.
    pub fn from_vars(vars: &HashMap<String, String>) -> Self {
        let get = |k: &str| {
            vars.get(k)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(Secret::new)
        };
        Secrets {
            slack_bot_token: get("SLACK_BOT_TOKEN"),
            slack_signing_secret: get("SLACK_SIGNING_SECRET"),
            slack_app_token: get("SLACK_APP_TOKEN"),
            redis_url: get("REDIS_URL"),
            state_key: get("JITBOT_STATE_KEY"),
            state_key_previous: get("JITBOT_STATE_KEY_PREVIOUS"),
        }
    }
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the configuration: {0}")]
    Read(String),
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    let mut out = format!("the configuration has {} problem(s):", problems.len());
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    out
}

impl SettingsError {
    pub fn problems(&self) -> &[Problem] {
        match self {
            SettingsError::Invalid(p) => p,
            SettingsError::Read(_) => &[],
        }
    }
}

impl Settings {
    /// Loads defaults, then the file (if any), then `JITBOT__…` variables from `env`.
    /// Unknown keys are an error.
    pub fn load(
        file: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<Settings, SettingsError> {
        let (settings, unknown) = Settings::load_lenient(file.map(Layer::File), env)?;
        if unknown.is_empty() {
            Ok(settings)
        } else {
            Err(SettingsError::Invalid(unknown))
        }
    }

    /// Loads the settings and checks the catalog, reporting unknown keys and catalog
    /// problems together.
    pub fn load_checked(
        file: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<(Settings, Catalog), SettingsError> {
        Settings::check(Settings::load_lenient(file.map(Layer::File), env)?)
    }

    /// Like [`Settings::load_checked`], with the file's TOML given as text (the
    /// example catalog built into the binary, for the playground).
    pub fn load_checked_toml(
        toml: &str,
        env: &HashMap<String, String>,
    ) -> Result<(Settings, Catalog), SettingsError> {
        Settings::check(Settings::load_lenient(Some(Layer::Toml(toml)), env)?)
    }

    fn check(
        (settings, mut problems): (Settings, Vec<Problem>),
    ) -> Result<(Settings, Catalog), SettingsError> {
        problems.extend(settings.problems());
        match settings.catalog() {
            Ok(catalog) if problems.is_empty() => Ok((settings, catalog)),
            Ok(_) => Err(SettingsError::Invalid(problems)),
            Err(err) => {
                problems.extend_from_slice(err.problems());
                Err(SettingsError::Invalid(problems))
            }
        }
    }

    /// Loads the layers and returns the settings with one problem per unknown key.
    fn load_lenient(
        file: Option<Layer<'_>>,
        env: &HashMap<String, String>,
    ) -> Result<(Settings, Vec<Problem>), SettingsError> {
        let mut builder = Config::builder();
        match file {
            Some(Layer::File(path)) => {
                if !path.is_file() {
                    return Err(SettingsError::Read(format!(
                        "{} does not exist or is not a file; pass --config with the path of a TOML file",
                        path.display()
                    )));
                }
                builder =
                    builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
            }
            Some(Layer::Toml(text)) => {
                builder = builder.add_source(File::from_str(text, FileFormat::Toml));
            }
            None => {}
        }
        let vars: config::Map<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("JITBOT__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix("JITBOT")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(vars)),
        );
        let config = builder
            .build()
            .map_err(|e| SettingsError::Read(e.to_string()))?;
        let mut unknown = Vec::new();
        let settings: Settings =
            serde_ignored::deserialize(config, |path| unknown.push(key_path(&path.to_string())))
                .map_err(|e| SettingsError::Read(e.to_string()))?;
        let problems = unknown
            .into_iter()
            .map(|path| Problem {
                message: "is not a known setting; check its spelling against config/default.toml"
                    .to_owned(),
                path,
            })
            .collect();
        Ok((settings, problems))
    }

    /// Problems with settings outside the catalog.
    fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Some(message) = api_url_problem(&self.slack.api_url) {
            problems.push(Problem {
                path: "slack.api_url".to_owned(),
                message,
            });
        }
        problems
    }

    pub fn catalog(&self) -> Result<Catalog, SettingsError> {
        Catalog::build(&self.access, &self.targets, &self.requesters)
            .map_err(SettingsError::Invalid)
    }
}

/// The layer between the built-in defaults and the environment.
enum Layer<'a> {
    File(&'a Path),
    Toml(&'a str),
}

/// Writes serde_ignored's `targets.0.key` as `targets[0].key`, like catalog problems.
fn key_path(dotted: &str) -> String {
    let mut out = String::new();
    for part in dotted.split('.') {
        if part.bytes().all(|b| b.is_ascii_digit()) && !part.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
