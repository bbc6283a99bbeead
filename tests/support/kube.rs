//! A real kube-apiserver (v1.20.2) and etcd for the tests, started once per test binary
//! by the project's own `scripts/realk8s/start.sh` on free loopback ports in a temporary
//! directory (in memory where the machine allows: see [`state_dir`]), and stopped when
//! the test binary exits, however it exits.
//!
//! Each test gets its own namespace ([`cluster`]), so tests run in parallel against one
//! server without seeing each other's objects. Namespaces are not deleted: without a
//! controller-manager they would only hang in `Terminating`, and the whole server goes
//! away with the run.
//!
//! Clients made here have kube-rs's built-in retries off, so a test that counts
//! requests counts the adapter's own retries.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use jitbot::core::ids::Namespace;
use jitbot::core::netpol::NAMESPACE_NAME_LABEL;
use k8s_openapi::api::core::v1::{Namespace as KubeNamespace, Pod, PodSpec, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// The one API server of this test binary.
pub struct ApiServer {
    /// An admin (system:masters) kubeconfig, as `start.sh` wrote it.
    pub kubeconfig: PathBuf,
    /// The admin's bearer token (the one in the kubeconfig).
    pub admin_token: String,
    /// A token of `nobody`: authenticated, with no RBAC bindings at all.
    pub nobody_token: String,
    /// The write end of the watchdog's stdin ([`WATCHDOG`]). It is never closed by
    /// hand: when this process ends, for any reason, the kernel closes it and the
    /// watchdog stops the servers and removes their directory.
    _lifeline: Mutex<ChildStdin>,
}

static SERVER: OnceLock<Result<ApiServer, String>> = OnceLock::new();

/// The API server, started on first use. Panics, in every test that needs it, with
/// what to do when it cannot start.
pub fn server() -> &'static ApiServer {
    match SERVER.get_or_init(start) {
        Ok(server) => server,
        Err(why) => panic!("{why}"),
    }
}

/// A test's view of the cluster: an admin client and a namespace of its own.
pub struct Cluster {
    pub client: Client,
    pub namespace: Namespace,
}

/// Starts the server if needed and gives the calling test a fresh namespace.
pub async fn cluster() -> Cluster {
    let client = server().admin_client().await;
    let namespace = new_namespace(&client, "t").await;
    Cluster { client, namespace }
}

impl Cluster {
    /// One more fresh namespace (a pod source's, say).
    pub async fn another_namespace(&self, prefix: &str) -> Namespace {
        new_namespace(&self.client, prefix).await
    }

    /// Creates a pod with these labels. Nothing runs it (there are no nodes); it exists
    /// so label selectors have something to count.
    pub async fn create_pod(&self, namespace: &Namespace, name: &str, labels: &[(&str, &str)]) {
        // 1.20's ServiceAccount admission wants the namespace's `default` account, which
        // the controller-manager we do not run would create; and, unless the pod opts
        // out of a mounted token, a token Secret nobody creates either.
        let accounts: Api<ServiceAccount> =
            Api::namespaced(self.client.clone(), namespace.as_str());
        let default = ServiceAccount {
            metadata: meta("default", &[]),
            ..ServiceAccount::default()
        };
        match accounts.create(&PostParams::default(), &default).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(err) => panic!("cannot create the default service account: {err}"),
        }
        let pod = Pod {
            metadata: meta(name, labels),
            spec: Some(PodSpec {
                automount_service_account_token: Some(false),
                containers: vec![k8s_openapi::api::core::v1::Container {
                    name: "main".to_owned(),
                    image: Some("registry.invalid/none".to_owned()),
                    ..Default::default()
                }],
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace.as_str());
        if let Err(err) = pods.create(&PostParams::default(), &pod).await {
            panic!("cannot create pod {namespace}/{name}: {err}");
        }
    }
}

impl ApiServer {
    /// A client with the admin token.
    pub async fn admin_client(&self) -> Client {
        client(self.admin_config().await)
    }

    /// A client straight to the server, authenticated by `token`.
    pub async fn client_with_token(&self, token: &str) -> Client {
        let mut config = self.admin_config().await;
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.to_owned().into()),
            ..Default::default()
        };
        client(config)
    }

    /// The kubeconfig's settings (server, CA, admin token), without kube-rs's retries.
    pub async fn admin_config(&self) -> Config {
        let kubeconfig = match Kubeconfig::read_from(&self.kubeconfig) {
            Ok(k) => k,
            Err(err) => panic!("cannot read {}: {err}", self.kubeconfig.display()),
        };
        let mut config =
            match Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await {
                Ok(c) => c,
                Err(err) => panic!("cannot use {}: {err}", self.kubeconfig.display()),
            };
        config.default_retry = false;
        config
    }

    /// `kubectl` against this server as admin; panics with its output if it fails.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new(kubectl_path())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .unwrap_or_else(|err| panic!("cannot run kubectl: {err}"));
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

/// Builds a client, panicking with the reason if the configuration is unusable.
pub fn client(config: Config) -> Client {
    Client::try_from(config).unwrap_or_else(|err| panic!("cannot build a kube client: {err}"))
}

fn meta(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ObjectMeta {
        name: Some(name.to_owned()),
        labels: (!labels.is_empty()).then_some(labels),
        ..ObjectMeta::default()
    }
}

/// A namespace with a unique name, labelled with its name as Kubernetes 1.21+ does
/// (1.20 does not), since pod-source grants select namespaces by that label.
async fn new_namespace(client: &Client, prefix: &str) -> Namespace {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}-{n}-{}", hex(&rand::random::<[u8; 3]>()));
    let namespaces: Api<KubeNamespace> = Api::all(client.clone());
    let object = KubeNamespace {
        metadata: meta(&name, &[(NAMESPACE_NAME_LABEL, name.as_str())]),
        ..KubeNamespace::default()
    };
    if let Err(err) = namespaces.create(&PostParams::default(), &object).await {
        panic!("cannot create namespace {name}: {err}");
    }
    name.parse()
        .unwrap_or_else(|err| panic!("{name} is not a namespace name: {err}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Where build.sh keeps the binaries: the same rule as the scripts.
fn realk8s_home() -> PathBuf {
    if let Some(home) = std::env::var_os("REALK8S_HOME") {
        return PathBuf::from(home);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("jitbot-realk8s")
}

/// `kubectl` from PATH, else the one `build.sh kube-apiserver kubectl` builds.
fn kubectl_path() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("kubectl"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.is_file());
    let built = realk8s_home().join("bin/kubectl");
    match on_path {
        Some(path) => path,
        None if built.is_file() => built,
        None => panic!("kubectl not found: run scripts/realk8s/build.sh kube-apiserver kubectl"),
    }
}

/// A free loopback port. Another process could take it before the server binds it;
/// start.sh would then fail loudly, which is rare enough to accept.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|err| format!("cannot find a free loopback port: {err}"))
}

/// Where the servers' state (etcd's data among it) lives: in memory (`/dev/shm`) where
/// the machine has it, else the temporary directory. etcd syncs its log to disk on
/// every write, and on a shared virtual disk one sync now and then takes 50-250 ms:
/// that is the disk's latency, not jitbot's, and it would make figures and the
/// tests' timings depend on the neighbours. A production etcd has a disk of its own.
pub fn state_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// The watchdog's script. It reads start.sh's PID, then waits for its stdin to close,
/// which happens when this process ends, however it ends. If start.sh is still running
/// then (the tests died during start-up), it lets it finish recording the servers' PIDs
/// (bounded, and not fooled by a zombie), then stops the servers by those PIDs and
/// removes the directory.
const WATCHDOG: &str = r#"
read -r starter
cat >/dev/null
for _ in $(seq 1 400); do
  [ -n "$starter" ] && [ -r "/proc/$starter/stat" ] || break
  [ "$(sed 's/^.*) //' "/proc/$starter/stat" | cut -d' ' -f1)" != Z ] || break
  sleep 0.2
done
"$0"
rm -rf "$1"
"#;

fn start() -> Result<ApiServer, String> {
    let apiserver = realk8s_home().join("bin/kube-apiserver");
    if !apiserver.is_file() {
        return Err(format!(
            "{} is missing: run scripts/realk8s/build.sh once (about 5 minutes; cached)",
            apiserver.display()
        ));
    }
    let base = tempfile::Builder::new()
        .prefix("jitbot-realk8s-")
        .tempdir_in(state_dir())
        .map_err(|err| format!("cannot make a temporary directory: {err}"))?
        .keep();
    let run = base.join("run");

    // The watchdog first, so that nothing start.sh starts can outlive us.
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg(repo("scripts/realk8s/stop.sh"))
        .arg(&base)
        .env("REALK8S_RUN", &run)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| format!("cannot start the watchdog: {err}"))?;
    let mut lifeline = watchdog.stdin.take().ok_or("the watchdog has no stdin")?;

    let nobody_token = hex(&rand::random::<[u8; 16]>());
    let extra_tokens = base.join("extra-tokens.csv");
    std::fs::write(&extra_tokens, format!("{nobody_token},nobody,nobody-uid\n"))
        .map_err(|err| format!("cannot write {}: {err}", extra_tokens.display()))?;

    let (etcd, peer, port) = (free_port()?, free_port()?, free_port()?);
    let starter = Command::new(repo("scripts/realk8s/start.sh"))
        .env("REALK8S_RUN", &run)
        .env("ETCD_PORT", etcd.to_string())
        .env("ETCD_PEER_PORT", peer.to_string())
        .env("APISERVER_PORT", port.to_string())
        .env("REALK8S_EXTRA_TOKENS", &extra_tokens)
        .env_remove("REALK8S_KEEP")
        .env_remove("WITH_KCM")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot run scripts/realk8s/start.sh: {err}"))?;
    writeln!(lifeline, "{}", starter.id())
        .map_err(|err| format!("cannot talk to the watchdog: {err}"))?;
    let out = starter
        .wait_with_output()
        .map_err(|err| format!("scripts/realk8s/start.sh: {err}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "scripts/realk8s/start.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let kubeconfig = stdout
        .lines()
        .last()
        .map(PathBuf::from)
        .ok_or("scripts/realk8s/start.sh printed no kubeconfig path")?;
    let admin_token = std::fs::read_to_string(run.join("token"))
        .map_err(|err| format!("cannot read the admin token start.sh wrote: {err}"))?;
    Ok(ApiServer {
        kubeconfig,
        admin_token: admin_token.trim().to_owned(),
        nobody_token,
        _lifeline: Mutex::new(lifeline),
    })
}
