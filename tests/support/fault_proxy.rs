//! A fault-injecting proxy between the adapter and the real API server.
//!
//! It listens on plain HTTP on loopback (so it can answer with any status code, which a
//! TCP-level proxy in front of TLS could not) and forwards everything else to the real
//! server over HTTPS, with the caller's own `Authorization` header: a client through
//! the proxy is exactly as privileged as its token. Faults are queued and served in
//! order, one per request; latency applies to every request.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use kube::{Client, Config};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::kube::{ApiServer, client};

/// What the proxy does to one request instead of forwarding it.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Answer this status with a Kubernetes `Status` body.
    Status(u16),
    /// Answer 429 with `Retry-After` (header and `details.retryAfterSeconds`, as the
    /// API server's own throttling errors carry it).
    Throttle { retry_after_secs: u32 },
    /// Close the connection without any response.
    Drop,
}

#[derive(Default)]
struct Faults {
    queue: Mutex<VecDeque<Fault>>,
    latency: Mutex<Duration>,
    seen: AtomicUsize,
}

/// The proxy, alive until dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    faults: Arc<Faults>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `server` on a free loopback port.
    pub async fn start(server: &ApiServer) -> FaultProxy {
        // Upstream: the server's address and CA, but no credentials of its own (the
        // caller's header passes through) and no retries (each request is forwarded
        // exactly once, so the counts below are the caller's).
        let mut config = server.admin_config().await;
        config.auth_info = kube::config::AuthInfo::default();
        let upstream = client(config);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|err| panic!("the fault proxy cannot listen: {err}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|err| panic!("the fault proxy has no address: {err}"));
        let faults = Arc::new(Faults::default());
        let state = Arc::clone(&faults);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (state, upstream) = (Arc::clone(&state), upstream.clone());
                tokio::spawn(async move {
                    let service =
                        service_fn(move |req| handle(req, Arc::clone(&state), upstream.clone()));
                    // An error here is a dropped connection, which is the point.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy {
            addr,
            faults,
            accept,
        }
    }

    /// A client that reaches the server through this proxy, with `token`, and without
    /// kube-rs's own retries.
    pub fn client(&self, token: &str) -> Client {
        let url = format!("http://{}", self.addr);
        let mut config = Config::new(url.parse().unwrap_or_else(|e| panic!("{url}: {e}")));
        config.auth_info.token = Some(token.to_owned().into());
        config.default_retry = false;
        client(config)
    }

    /// Answers the next `n` requests with `status` (500, 503, …).
    pub fn fail_next(&self, n: usize, status: u16) {
        self.push(n, Fault::Status(status));
    }

    /// Answers the next `n` requests with 429 and `Retry-After: retry_after_secs`.
    pub fn throttle_next(&self, n: usize, retry_after_secs: u32) {
        self.push(n, Fault::Throttle { retry_after_secs });
    }

    /// Closes the connection of the next `n` requests without answering.
    pub fn drop_next(&self, n: usize) {
        self.push(n, Fault::Drop);
    }

    /// Holds every request this long before handling it.
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.faults.latency) = latency;
    }

    /// Requests seen so far, faulted or forwarded.
    pub fn requests(&self) -> usize {
        self.faults.seen.load(Ordering::SeqCst)
    }

    fn push(&self, n: usize, fault: Fault) {
        lock(&self.faults.queue).extend(std::iter::repeat_n(fault, n));
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A test that panicked while holding the lock has failed already; carry on.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Returned to hyper to make it close the connection without a response.
#[derive(Debug)]
struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for Dropped {}

type Answer = Result<Response<Full<Bytes>>, Dropped>;

async fn handle(req: Request<Incoming>, faults: Arc<Faults>, upstream: Client) -> Answer {
    faults.seen.fetch_add(1, Ordering::SeqCst);
    let latency = *lock(&faults.latency);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let fault = lock(&faults.queue).pop_front();
    match fault {
        Some(Fault::Drop) => Err(Dropped),
        Some(Fault::Status(code)) => Ok(status(code, None)),
        Some(Fault::Throttle { retry_after_secs }) => Ok(status(429, Some(retry_after_secs))),
        None => Ok(forward(req, &upstream).await),
    }
}

/// Hop-by-hop headers, and `host`, which names the proxy, not the server.
fn passes(name: &header::HeaderName) -> bool {
    ![
        header::HOST,
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
        header::TE,
        header::UPGRADE,
    ]
    .contains(name)
}

async fn forward(req: Request<Incoming>, upstream: &Client) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(err) => return text(StatusCode::BAD_REQUEST, format!("unreadable body: {err}")),
    };
    let mut outbound = Request::new(kube::client::Body::from(body));
    *outbound.method_mut() = parts.method;
    *outbound.uri_mut() = parts.uri;
    for (name, value) in parts.headers.iter().filter(|(n, _)| passes(n)) {
        outbound.headers_mut().append(name, value.clone());
    }
    let answer = match upstream.send(outbound).await {
        Ok(answer) => answer,
        Err(err) => return text(StatusCode::BAD_GATEWAY, format!("upstream: {err}")),
    };
    let (parts, body) = answer.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(err) => return text(StatusCode::BAD_GATEWAY, format!("upstream body: {err}")),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = parts.status;
    for (name, value) in parts.headers.iter().filter(|(n, _)| passes(n)) {
        response.headers_mut().append(name, value.clone());
    }
    response
}

/// A Kubernetes `Status` answer, as the API server writes its errors.
fn status(code: u16, retry_after_secs: Option<u32>) -> Response<Full<Bytes>> {
    let reason = match code {
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    };
    let details = retry_after_secs
        .map(|s| format!(r#","details":{{"retryAfterSeconds":{s}}}"#))
        .unwrap_or_default();
    let body = format!(
        r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"injected by the fault proxy","reason":"{reason}","code":{code}{details}}}"#
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let json = HeaderValue::from_static("application/json");
    response.headers_mut().insert(header::CONTENT_TYPE, json);
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn text(code: StatusCode, message: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message)));
    *response.status_mut() = code;
    response
}
