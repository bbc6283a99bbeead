//! The `jitbot` command line. Each subcommand loads the settings the same way
//! (`--config FILE` or `JITBOT_CONFIG`, then `JITBOT__…` variables) and exits 0 on
//! success, 2 on a problem the user can fix (with every problem listed), 1 otherwise.

mod grants;
mod rbac;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use clap::{Args, Parser, Subcommand};

use crate::core::catalog::Catalog;
use crate::core::command::Reason;
use crate::core::ids::{RequestId, SlackUserId, TargetName};
use crate::core::netpol;
use crate::core::request::AccessRequest;
use crate::core::submission::{self, Refusal, Submission};
use crate::core::ttl::Ttl;
use crate::playground::{self, Playground};
use crate::settings::{LogFormat, Secrets, Settings, SettingsError};
use crate::startup::{self, Application, Overrides};

#[derive(Debug, Parser)]
#[command(
    name = "jitbot",
    version,
    about = "Just-in-time, time-boxed network access inside Kubernetes, approved in Slack"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Configuration file (TOML); see config/default.toml for every key.
    #[arg(long, short = 'c', env = "JITBOT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a configuration and its catalog; list every problem.
    CheckConfig(ConfigArg),
    /// Print the NetworkPolicies a grant would apply, as YAML.
    Render(RenderArgs),
    /// Run the bot: Slack endpoints, expiry and reconcile workers.
    Serve(ConfigArg),
    /// Inspect or revoke grants from the command line.
    #[command(subcommand)]
    Grants(GrantsCommand),
    /// Run the whole flow in a browser, with no Slack workspace and no cluster.
    Playground(PlaygroundArgs),
    /// Print the namespaced Roles and RoleBindings the catalog needs, as YAML.
    Rbac(rbac::RbacArgs),
}

#[derive(Debug, Args)]
pub struct PlaygroundArgs {
    /// Where to serve the page.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDRESS:PORT")]
    pub listen: String,
    /// Apply policies to the cluster from the kubeconfig instead of a dry run.
    #[arg(long)]
    pub kube: bool,
    /// Also answer to this name (repeatable), besides loopback and the listening
    /// address: e.g. the machine's name with `--listen 0.0.0.0:8080`.
    #[arg(long = "allow-host", value_name = "HOST[:PORT]", value_parser = playground::allowed_host)]
    pub allow_hosts: Vec<String>,
    /// Without it, the example catalog built into jitbot is used.
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, Subcommand)]
pub enum GrantsCommand {
    /// List active grants (and, with --all, requests still waiting or being applied),
    /// from the Redis store at REDIS_URL.
    List {
        /// Also show pending and approved requests.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Revoke a grant now: the store first, then the cluster; Slack is told when
    /// SLACK_BOT_TOKEN is set.
    Revoke {
        /// The request id.
        id: String,
        /// Your Slack user id: an admin, one of the target's approvers, or the requester.
        #[arg(long, value_name = "SLACK_USER_ID")]
        by: String,
        /// Why, for the audit log and the requester.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Catalog target to render.
    #[arg(long)]
    pub target: String,
    /// Slack user id of the requester (their source comes from the catalog).
    #[arg(long, value_name = "SLACK_USER_ID")]
    pub requester: String,
    /// How long the grant lasts; defaults to the target's default_duration.
    #[arg(long)]
    pub duration: Option<String>,
    /// The address picked from a range source.
    #[arg(long, value_name = "ADDRESS")]
    pub from: Option<String>,
    /// The reason recorded in the policy's annotation.
    #[arg(long, default_value = "preview rendered by jitbot render")]
    pub reason: String,
    /// Also ask the cluster whether the grant would change anything (a default-deny
    /// policy selects the pods) and how many pods it touches.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// Runs one command and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let env: HashMap<String, String> = std::env::vars().collect();
    match cli.command {
        Command::CheckConfig(args) => check_config(&args, &env),
        Command::Render(args) => render(&args, &env),
        Command::Serve(args) => serve(&args, &env),
        Command::Grants(GrantsCommand::List { all, config }) => grants::list(&config, all, &env),
        Command::Grants(GrantsCommand::Revoke {
            id,
            by,
            reason,
            config,
        }) => grants::revoke(&config, &id, &by, reason.as_deref(), &env),
        Command::Playground(args) => playground(&args, &env),
        Command::Rbac(args) => rbac::rbac(&args, &env),
    }
}

/// Runs async work on a fresh runtime.
pub(crate) fn block_on<F: std::future::Future>(work: F) -> Result<F::Output, ExitCode> {
    match tokio::runtime::Runtime::new() {
        Ok(rt) => Ok(rt.block_on(work)),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn serve(args: &ConfigArg, env: &HashMap<String, String>) -> ExitCode {
    let (settings, catalog) = match Settings::load_checked(args.config.as_deref(), env) {
        Ok(loaded) => loaded,
        Err(err) => return fail_settings(&err),
    };
    let secrets = Secrets::from_vars(env);
    let missing = startup::missing_settings(&settings, &secrets);
    if !missing.is_empty() {
        eprintln!("jitbot cannot start:");
        for m in missing {
            eprintln!("  {m}");
        }
        return ExitCode::from(2);
    }
    startup::init_logging(&settings.log);
    let run = async {
        let app = Application::build(&settings, catalog, &secrets, Overrides::default()).await?;
        app.run_until_signal().await
    };
    match block_on(run) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            tracing::error!(error = format!("{e:#}"), "jitbot stopped");
            eprintln!("jitbot stopped: {e:#}");
            ExitCode::FAILURE
        }
        Err(code) => code,
    }
}

fn playground(args: &PlaygroundArgs, env: &HashMap<String, String>) -> ExitCode {
    let loaded = match &args.config.config {
        Some(path) => Settings::load_checked(Some(path), env),
        None => Settings::load_checked_toml(playground::EXAMPLE_CONFIG, env),
    };
    let (mut settings, catalog) = match loaded {
        Ok(loaded) => loaded,
        Err(err) => return fail_settings(&err),
    };
    // The page is the playground's output; the log says only what goes wrong
    // (RUST_LOG still wins).
    settings.log.level = "warn".to_owned();
    settings.log.format = LogFormat::Text;
    startup::init_logging(&settings.log);
    let options = playground::Options {
        listen: args.listen.clone(),
        kube: args.kube,
        allow_hosts: args.allow_hosts.clone(),
        running_clock: true,
        start: Utc::now(),
        redis_url: Secrets::from_vars(env).redis_url,
        state_key: Secrets::from_vars(env).state_key,
    };
    let catalog_source = args
        .config
        .config
        .as_ref()
        .map_or("the example catalog built into jitbot".to_owned(), |p| {
            p.display().to_string()
        });
    let run = async {
        let playground = Playground::start(settings, catalog, options).await?;
        let facts = &playground.engine.facts();
        println!("jitbot playground: open {}", playground.url());
        println!("  catalog: {catalog_source}");
        println!("  Slack:   {}", facts.slack);
        println!("  cluster: {}", facts.cluster);
        println!("  store:   {}", facts.store);
        println!(
            "  jitbot's own endpoints: http://{}/ (Ctrl-C stops everything)",
            playground.jitbot_addr()
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        playground.run_until_signal().await;
        anyhow::Ok(())
    };
    match block_on(run) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("jitbot playground stopped: {e:#}");
            ExitCode::FAILURE
        }
        Err(code) => code,
    }
}

/// With `REDIS_URL`, whether `JITBOT_STATE_KEY` is usable (at least 32 characters).
fn check_store_secrets(secrets: &Secrets) -> ExitCode {
    if secrets.redis_url.is_none() {
        return ExitCode::SUCCESS;
    }
    match startup::state_key(secrets) {
        Ok(_) => {
            println!("store: requests sealed with JITBOT_STATE_KEY");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// Prints a settings error and picks its exit code.
pub(crate) fn fail_settings(err: &SettingsError) -> ExitCode {
    eprintln!("{err}");
    ExitCode::from(2)
}

fn check_config(args: &ConfigArg, env: &HashMap<String, String>) -> ExitCode {
    match Settings::load_checked(args.config.as_deref(), env) {
        Ok((_, catalog)) => {
            let source = args
                .config
                .as_ref()
                .map_or("built-in defaults".to_owned(), |p| p.display().to_string());
            println!(
                "{source}: ok — {} target(s), {} requester(s), {} namespace(s)",
                catalog.targets().len(),
                catalog.requesters().count(),
                catalog.namespaces().len()
            );
            match startup::describe_store(&Secrets::from_vars(env)) {
                Ok(store) => println!("{store}"),
                Err(why) => {
                    eprintln!("{why}");
                    return ExitCode::from(2);
                }
            }
            check_store_secrets(&Secrets::from_vars(env))
        }
        Err(err) => fail_settings(&err),
    }
}

fn render(args: &RenderArgs, env: &HashMap<String, String>) -> ExitCode {
    let (settings, catalog) = match Settings::load_checked(args.config.config.as_deref(), env) {
        Ok(loaded) => loaded,
        Err(err) => return fail_settings(&err),
    };
    match preview_request(&catalog, args) {
        Ok(req) => {
            let expires_at = req.created_at + req.duration.as_delta();
            match netpol::to_yaml(&netpol::render(&req, expires_at)) {
                Ok(yaml) => {
                    if args.check {
                        let check = async {
                            match startup::preview_app(&settings, catalog.clone()).await {
                                Ok(app) => app.preview(&req).await.unwrap_or_default(),
                                Err(e) => format!("cluster unreachable: unknown ({e:#})"),
                            }
                        };
                        match block_on(check) {
                            Ok(line) => println!("# does it matter? {line}"),
                            Err(code) => return code,
                        }
                    }
                    print!("{yaml}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("could not write the policy as YAML: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

/// Builds the request `render` shows. The checks against the catalog are the ones a
/// `/jit request` gets ([`Submission::admit`]); only the wording of a missing target
/// or requester is for an operator, who can fix the catalog.
fn preview_request(catalog: &Catalog, args: &RenderArgs) -> Result<AccessRequest, String> {
    // A name that cannot be a target's is not one.
    let target: TargetName = args
        .target
        .parse()
        .map_err(|_| not_a_target(catalog, &args.target))?;
    let requester: SlackUserId = args.requester.parse()?;
    let duration = match &args.duration {
        Some(d) => d.parse::<Ttl>()?,
        None => {
            submission::target(catalog, &target)
                .map_err(|refusal| for_operator(catalog, refusal))?
                .default_duration
        }
    };
    let from = match &args.from {
        Some(a) => Some(
            a.parse::<IpAddr>()
                .map_err(|_| format!("`{a}` is not an IP address"))?,
        ),
        None => None,
    };
    let asked = Submission {
        requester,
        target,
        duration,
        from,
        reason: Reason::new(&args.reason, 0)?,
    };
    asked
        .admit(catalog, RequestId::from_random(rand::random()), Utc::now())
        .map_err(|refusal| for_operator(catalog, refusal))
}

/// A refusal in an operator's words: which catalog entry is missing.
fn for_operator(catalog: &Catalog, refusal: Refusal) -> String {
    match refusal {
        Refusal::UnknownTarget(name) => not_a_target(catalog, name.as_str()),
        Refusal::NotARequester(user) => format!(
            "{user} is not a requester in the catalog; add a [[requesters]] entry with slack_user = \"{user}\""
        ),
        other => other.to_string(),
    }
}

fn not_a_target(catalog: &Catalog, name: &str) -> String {
    let names: Vec<String> = catalog
        .targets()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    format!(
        "`{name}` is not a target in the catalog; targets: {}",
        names.join(", ")
    )
}
