//! A request-counting, fault-injecting HTTP/1.1 proxy in front of moto, in
//! plain std. Point the SDK (AWS_ENDPOINT_URL) at [`Proxy::endpoint`].
//!
//! * Client side: keep-alive (many requests per connection), Content-Length or
//!   chunked request bodies, `Expect: 100-continue`.
//! * Upstream: one fresh connection per request (`Connection: close`); the
//!   response is read whole (Content-Length, chunked, or to EOF) and relayed
//!   with a Content-Length, so bodies can be rewritten.
//! * Action of a request: `X-Amz-Target: secretsmanager.GetSecretValue` ->
//!   `GetSecretValue` (JSON protocol); form body `Action=AssumeRole&...` ->
//!   `AssumeRole` (STS query protocol); `/moto-api/...` -> `moto-api`;
//!   `/v1/...` -> `Vault` (an OpenBao upstream; logged as `METHOD PATH`, errors as
//!   Vault's `{"errors": [...]}`); otherwise `unknown`.
//! * Every request is recorded (and counted) before any rule applies, so
//!   injected failures and retries are counted too.
//!
//! Rules are checked in this order: [`Proxy::fail_next`] / [`Proxy::sts_error`]
//! budgets, [`Proxy::deny_action`], [`Proxy::deny_secret`]; [`Proxy::delay`]
//! applies first to any request of its action.

mod aws;
pub(crate) mod http;
mod quota;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufReader;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::Value;

use aws::{
    DENY_PRINCIPAL, error_response, form_value, rewrite_batch_response, same_secret, secret_id_list,
};
pub use http::Mangle;
use http::{Request, Response, forward, header, read_request, write_response};
use quota::{Bucket, Traffic};

/// Idle keep-alive connections are closed after this long.
const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The proxy. Stops accepting when dropped; open client connections end when
/// their peers hang up (or after the idle timeout).
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    upstream: String,
    stop: AtomicBool,
    request_ids: AtomicU64,
    state: Mutex<State>,
    slots: Slots,
}

/// At most `max` requests in flight to the upstream (0: no bound). moto answers one request per
/// thread: a fleet of clients is served faster through a few connections than through hundreds.
#[derive(Default)]
struct Slots {
    max: AtomicUsize,
    busy: Mutex<usize>,
    freed: Condvar,
}

struct Slot<'a>(&'a Slots);

impl Slots {
    fn take(&self) -> Option<Slot<'_>> {
        let max = self.max.load(Ordering::SeqCst);
        if max == 0 {
            return None;
        }
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        while *busy >= max {
            busy = self.freed.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy += 1;
        Some(Slot(self))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.busy.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

#[derive(Default)]
struct State {
    log: Vec<(String, String)>,
    /// The User-Agent of each request in `log`, same order.
    user_agents: Vec<String>,
    deny_actions: HashSet<String>,
    /// (secret id, error code): denied or undecryptable secrets.
    deny_secrets: Vec<(String, String)>,
    /// (action, remaining, how): responses to cut off or garble.
    mangles: Vec<(String, usize, Mangle)>,
    failures: Vec<Failure>,
    delays: HashMap<String, Duration>,
    /// Token buckets by API ("GetSecretValue", ...; "STS" for every STS action).
    buckets: BTreeMap<String, Bucket>,
    traffic: Traffic,
}

struct Failure {
    action: String,
    remaining: usize,
    status: u16,
    code: String,
    message: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Protocol {
    /// awsJson1.1 (Secrets Manager): JSON error body + X-Amzn-ErrorType.
    Json,
    /// awsQuery (STS): XML ErrorResponse.
    Query,
    /// Vault's HTTP API (`/v1/...`): `{"errors": [...]}`.
    Vault,
    Other,
}

impl Proxy {
    /// Start a proxy on 127.0.0.1:<free port> forwarding to `upstream_endpoint`
    /// (`http://127.0.0.1:PORT`, e.g. [`super::moto_endpoint`]).
    pub fn start(upstream_endpoint: &str) -> Proxy {
        let upstream = upstream_endpoint
            .trim_end_matches('/')
            .strip_prefix("http://")
            .unwrap_or_else(|| {
                panic!("proxy upstream must be http://HOST:PORT, got {upstream_endpoint:?}")
            })
            .to_string();
        assert!(
            upstream.starts_with("127.0.0.1:") || upstream.starts_with("localhost:"),
            "proxy upstream must be on loopback, got {upstream:?}"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy listener");
        let addr = listener.local_addr().expect("proxy local addr");
        let shared = Arc::new(Shared {
            upstream,
            stop: AtomicBool::new(false),
            request_ids: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            slots: Slots::default(),
        });
        let acceptor_shared = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name(format!("proxy-accept-{}", addr.port()))
            .spawn(move || {
                for conn in listener.incoming() {
                    if acceptor_shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = conn else { continue };
                    let conn_shared = Arc::clone(&acceptor_shared);
                    let _ = thread::Builder::new()
                        .name("proxy-conn".into())
                        .spawn(move || handle_client(stream, &conn_shared));
                }
            })
            .expect("spawn proxy acceptor");
        Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT` of the proxy, for AWS_ENDPOINT_URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state()
    }

    /// Requests seen for `action` (e.g. "GetSecretValue", "AssumeRole").
    pub fn count(&self, action: &str) -> usize {
        self.state().log.iter().filter(|(a, _)| a == action).count()
    }

    /// Requests seen, any action.
    pub fn total(&self) -> usize {
        self.state().log.len()
    }

    /// Every request in arrival order: `(action, body)`; the body is the JSON
    /// text (Secrets Manager) or the form string (STS).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.state().log.clone()
    }

    /// The User-Agent header of every request, in arrival order.
    pub fn user_agents(&self) -> Vec<String> {
        self.state().user_agents.clone()
    }

    /// JSON bodies of the requests for `action` (unparseable bodies -> Null).
    pub fn json_bodies(&self, action: &str) -> Vec<Value> {
        self.state()
            .log
            .iter()
            .filter(|(a, _)| a == action)
            .map(|(_, b)| serde_json::from_str(b).unwrap_or(Value::Null))
            .collect()
    }

    /// Secret ids asked for, in order: `SecretId` of GetSecretValue (and any
    /// other action with a SecretId) plus each `SecretIdList` entry.
    pub fn requested_secret_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for (_, body) in self.state().log.iter() {
            let Ok(v) = serde_json::from_str::<Value>(body) else {
                continue;
            };
            if let Some(id) = v.get("SecretId").and_then(Value::as_str) {
                ids.push(id.to_string());
            }
            if let Some(list) = v.get("SecretIdList").and_then(Value::as_array) {
                ids.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
            }
        }
        ids
    }

    /// Forget the recorded requests (rules stay).
    pub fn reset_counts(&self) {
        let mut s = self.state();
        s.log.clear();
        s.user_agents.clear();
    }

    /// Remove every rule (recorded requests stay).
    pub fn clear_rules(&self) {
        let mut s = self.state();
        s.deny_actions.clear();
        s.deny_secrets.clear();
        s.failures.clear();
        s.delays.clear();
        s.mangles.clear();
    }

    /// Every request for `action` is answered with AccessDenied (HTTP 400,
    /// `X-Amzn-ErrorType: AccessDeniedException` for Secrets Manager; HTTP 403
    /// XML `AccessDenied` for STS actions). Nothing is forwarded.
    pub fn deny_action(&self, action: &str) {
        self.state().deny_actions.insert(action.to_string());
    }

    /// GetSecretValue for `secret_id` (name or ARN; a name also matches its
    /// ARN) gets AccessDenied; BatchGetSecretValue is forwarded and the entry is
    /// moved from `SecretValues` to `Errors` as AccessDeniedException.
    pub fn deny_secret(&self, secret_id: &str) {
        self.fail_secret(secret_id, "AccessDeniedException");
    }

    /// Like [`Proxy::deny_secret`] with another per-secret error code, e.g.
    /// `DecryptionFailure` (the secret's KMS key refuses to decrypt).
    pub fn fail_secret(&self, secret_id: &str, code: &str) {
        self.state()
            .deny_secrets
            .push((secret_id.to_string(), code.to_string()));
    }

    /// The next `n` requests for `action` are forwarded, and the answer is
    /// mangled: the connection reset with no response, the body cut off in
    /// the middle (the Content-Length promises more), or replaced by bytes that
    /// are not JSON (HTTP 200). `usize::MAX` = always.
    pub fn mangle_next(&self, action: &str, n: usize, how: Mangle) {
        self.state().mangles.push((action.to_string(), n, how));
    }

    /// The next `n` requests for `action` get `http_status` with error code
    /// `aws_error_code` (JSON for Secrets Manager, XML for STS), e.g.
    /// `fail_next("GetSecretValue", 2, 400, "ThrottlingException")` or
    /// `fail_next("GetSecretValue", 1, 503, "ServiceUnavailable")`.
    /// `usize::MAX` = always.
    pub fn fail_next(&self, action: &str, n: usize, http_status: u16, aws_error_code: &str) {
        self.push_failure(action, n, http_status, aws_error_code, None);
    }

    /// Like [`Proxy::fail_next`] with a chosen error message.
    pub fn fail_next_with_message(
        &self,
        action: &str,
        n: usize,
        http_status: u16,
        aws_error_code: &str,
        message: &str,
    ) {
        self.push_failure(
            action,
            n,
            http_status,
            aws_error_code,
            Some(message.to_string()),
        );
    }

    /// STS failure: the next `times` requests for `action` ("AssumeRole",
    /// "AssumeRoleWithWebIdentity", "GetCallerIdentity") get an XML
    /// `<ErrorResponse>` with `code` (e.g. "AccessDenied", "ExpiredTokenException",
    /// "InvalidIdentityToken", "Throttling") and `http_status`.
    pub fn sts_error(&self, action: &str, code: &str, http_status: u16, times: usize) {
        self.push_failure(action, times, http_status, code, None);
    }

    fn push_failure(
        &self,
        action: &str,
        n: usize,
        status: u16,
        code: &str,
        message: Option<String>,
    ) {
        self.state().failures.push(Failure {
            action: action.to_string(),
            remaining: n,
            status,
            code: code.to_string(),
            message,
        });
    }

    /// Enforce a quota: requests of `bucket` (an action such as "GetSecretValue", or "STS" for
    /// every STS action) beyond `per_second`, with one second of burst, get AWS's throttling
    /// answer (ThrottlingException, or STS's Throttling) and are not forwarded.
    pub fn quota(&self, bucket: &str, per_second: f64) {
        self.state()
            .buckets
            .insert(bucket.to_string(), Bucket::new(per_second));
    }

    /// At most `n` requests in flight to the upstream at once (0: no bound).
    pub fn limit_upstream(&self, n: usize) {
        self.shared.slots.max.store(n, Ordering::SeqCst);
    }

    /// Forwarded and throttled requests per action, the quotas, and the forwarded requests per
    /// second (also served at `GET /credfile-proxy/stats`).
    pub fn stats(&self) -> Value {
        let s = self.state();
        s.traffic.stats(&s.buckets)
    }

    /// Hold every request for `action` for `delay` before answering it
    /// (for timeout tests). `Duration::ZERO` removes the delay.
    pub fn delay(&self, action: &str, delay: Duration) {
        let mut s = self.state();
        if delay.is_zero() {
            s.delays.remove(action);
        } else {
            s.delays.insert(action.to_string(), delay);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn request_id(&self) -> String {
        let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
        format!("00000000-0000-4000-8000-{n:012x}")
    }
}

fn handle_client(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(CLIENT_IDLE_TIMEOUT));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let req = match read_request(&mut reader, &mut writer) {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => break,
        };
        let keep_alive = req.keep_alive();
        let resp = process(shared, &req);
        if write_response(&mut writer, &resp, keep_alive).is_err() || !keep_alive {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

enum Decision {
    Fail {
        status: u16,
        code: String,
        message: Option<String>,
    },
    Deny,
    Throttle,
    Mangle(Mangle),
    Forward {
        rewrite_batch: Vec<(String, String)>,
    },
}

fn process(shared: &Shared, req: &Request) -> Response {
    if let Some(control) = control(shared, req) {
        return control;
    }
    let (action, protocol) = classify(req);
    // A Vault request is logged by its method and path (its body may hold a credential).
    let body_text = if protocol == Protocol::Vault {
        format!("{} {}", req.method, req.target)
    } else {
        String::from_utf8_lossy(&req.body).into_owned()
    };
    let body_json: Option<Value> = if protocol == Protocol::Json {
        serde_json::from_slice(&req.body).ok()
    } else {
        None
    };

    let (decision, delay) = {
        let mut s = shared.state();
        s.log.push((action.clone(), body_text.clone()));
        s.user_agents.push(
            header(&req.headers, "user-agent")
                .unwrap_or_default()
                .to_string(),
        );
        let delay = s.delays.get(&action).copied();
        let failure = s
            .failures
            .iter_mut()
            .find(|f| f.action == action && f.remaining > 0)
            .map(|f| {
                f.remaining = f.remaining.saturating_sub(1);
                Decision::Fail {
                    status: f.status,
                    code: f.code.clone(),
                    message: f.message.clone(),
                }
            });
        s.failures.retain(|f| f.remaining > 0);
        let secret_failure = if action == "GetSecretValue" {
            body_json
                .as_ref()
                .and_then(|b| b.get("SecretId"))
                .and_then(Value::as_str)
                .and_then(|id| s.deny_secrets.iter().find(|(d, _)| same_secret(d, id)))
                .map(|(_, code)| code.clone())
        } else {
            None
        };
        let mangle = s
            .mangles
            .iter_mut()
            .find(|(a, n, _)| *a == action && *n > 0)
            .map(|(_, n, how)| {
                *n = n.saturating_sub(1);
                *how
            });
        s.mangles.retain(|(_, n, _)| *n > 0);
        let bucket = if protocol == Protocol::Query {
            "STS"
        } else {
            action.as_str()
        };
        let throttled = s.buckets.get_mut(bucket).is_some_and(|b| !b.take());
        s.traffic.record(&action, throttled);
        let decision = if throttled {
            Decision::Throttle
        } else if let Some(f) = failure {
            f
        } else if let Some(how) = mangle {
            Decision::Mangle(how)
        } else if let Some(code) = secret_failure
            .clone()
            .filter(|c| c != "AccessDeniedException")
        {
            Decision::Fail {
                status: 400,
                code: code.clone(),
                message: Some(format!(
                    "{code} injected by the credfile test proxy for this secret"
                )),
            }
        } else if s.deny_actions.contains(&action) || secret_failure.is_some() {
            Decision::Deny
        } else if action == "BatchGetSecretValue" {
            Decision::Forward {
                rewrite_batch: s.deny_secrets.clone(),
            }
        } else {
            Decision::Forward {
                rewrite_batch: Vec::new(),
            }
        };
        (decision, delay)
    };
    if let Some(d) = delay {
        thread::sleep(d);
    }

    let request_id = shared.request_id();
    match decision {
        Decision::Fail {
            status,
            code,
            message,
        } => {
            let message =
                message.unwrap_or_else(|| format!("{code} injected by the credfile test proxy"));
            error_response(protocol, status, &code, &message, request_id)
        }
        Decision::Deny => {
            let resource = match protocol {
                Protocol::Json => body_json
                    .as_ref()
                    .and_then(|b| b.get("SecretId"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                _ => form_value(&body_text, "RoleArn"),
            };
            let service = if protocol == Protocol::Query {
                "sts"
            } else {
                "secretsmanager"
            };
            let mut message =
                format!("User: {DENY_PRINCIPAL} is not authorized to perform: {service}:{action}");
            if let Some(r) = resource {
                message.push_str(&format!(" on resource: {r}"));
            }
            match protocol {
                Protocol::Query => {
                    error_response(protocol, 403, "AccessDenied", &message, request_id)
                }
                _ => error_response(
                    Protocol::Json,
                    400,
                    "AccessDeniedException",
                    &message,
                    request_id,
                ),
            }
        }
        Decision::Throttle if protocol == Protocol::Vault => {
            error_response(protocol, 429, "", "rate limit quota exceeded", request_id)
        }
        Decision::Throttle => {
            let code = if protocol == Protocol::Query {
                "Throttling"
            } else {
                "ThrottlingException"
            };
            error_response(protocol, 400, code, "Rate exceeded", request_id)
        }
        Decision::Mangle(how) => match forward_in_slot(shared, req) {
            Ok(mut resp) => {
                if how == Mangle::Garbage {
                    resp.status = 200;
                    resp.reason = "OK".into();
                    resp.body = b"<html>not the JSON you are looking for".to_vec();
                }
                resp.mangle = Some(how);
                resp
            }
            Err(_) => Response {
                mangle: Some(Mangle::Reset),
                ..Response::new(502, "text/plain", Vec::new(), Vec::new(), request_id)
            },
        },
        Decision::Forward { rewrite_batch } => match forward_in_slot(shared, req) {
            Ok(mut resp) => {
                if !rewrite_batch.is_empty() && resp.status == 200 {
                    let requested = body_json.as_ref().map(secret_id_list).unwrap_or_default();
                    if let Some(body) =
                        rewrite_batch_response(&resp.body, &requested, &rewrite_batch)
                    {
                        resp.body = body;
                    }
                }
                resp
            }
            Err(e) => Response::new(
                502,
                "text/plain",
                format!(
                    "credfile test proxy: upstream {} failed: {e}",
                    shared.upstream
                )
                .into_bytes(),
                Vec::new(),
                request_id,
            ),
        },
    }
}

fn forward_in_slot(shared: &Shared, req: &Request) -> std::io::Result<Response> {
    let _slot = shared.slots.take();
    forward(&shared.upstream, req)
}

/// `GET /credfile-proxy/stats` ([`Proxy::stats`]) and `POST /credfile-proxy/reset` (refill every
/// bucket, forget every request): how a benchmark script reads and resets a proxy it started.
fn control(shared: &Shared, req: &Request) -> Option<Response> {
    let what = req.target.strip_prefix("/credfile-proxy/")?;
    let mut s = shared.state();
    let body = match what {
        "stats" => s.traffic.stats(&s.buckets),
        "reset" => {
            for b in s.buckets.values_mut() {
                *b = Bucket::new(b.rate());
            }
            s.traffic = Traffic::default();
            s.log.clear();
            s.user_agents.clear();
            serde_json::json!({})
        }
        _ => return None,
    };
    Some(Response::new(
        200,
        "application/json",
        body.to_string().into_bytes(),
        Vec::new(),
        shared.request_id(),
    ))
}

fn classify(req: &Request) -> (String, Protocol) {
    // Vault (OpenBao) behind the proxy: every API request is action `Vault`.
    if req.target.starts_with("/v1/") {
        return ("Vault".to_string(), Protocol::Vault);
    }
    if let Some(target) = header(&req.headers, "x-amz-target") {
        let action = target.rsplit('.').next().unwrap_or(target);
        return (action.to_string(), Protocol::Json);
    }
    let body = String::from_utf8_lossy(&req.body);
    if let Some(action) = form_value(&body, "Action") {
        return (action, Protocol::Query);
    }
    if let Some((_, query)) = req.target.split_once('?')
        && let Some(action) = form_value(query, "Action")
    {
        return (action, Protocol::Query);
    }
    if req.target.starts_with("/moto-api") {
        return ("moto-api".to_string(), Protocol::Other);
    }
    ("unknown".to_string(), Protocol::Other)
}
