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
//!   otherwise `unknown`.
//! * Every request is recorded (and counted) before any rule applies, so
//!   injected failures and retries are counted too.
//!
//! Rules are checked in this order: [`Proxy::fail_next`] / [`Proxy::sts_error`]
//! budgets, [`Proxy::deny_action`], [`Proxy::deny_secret`]; [`Proxy::delay`]
//! applies first to any request of its action.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::{Value, json};

const DENY_PRINCIPAL: &str = "arn:aws:sts::123456789012:assumed-role/x";
/// Idle keep-alive connections are closed after this long.
const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_HEAD_LINES: usize = 200;

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

// ---------------------------------------------------------------------------
// HTTP messages

struct Request {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

struct Response {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    mangle: Option<Mangle>,
}

/// How [`Proxy::mangle_next`] breaks a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mangle {
    /// Close the connection without answering.
    Reset,
    /// Send half the body, then close; the Content-Length promised all of it.
    Truncate,
    /// Answer 200 with a body that is not JSON.
    Garbage,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .any(|(_, v)| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

impl Request {
    fn keep_alive(&self) -> bool {
        if self.version.eq_ignore_ascii_case("HTTP/1.0") {
            has_token(&self.headers, "connection", "keep-alive")
        } else {
            !has_token(&self.headers, "connection", "close")
        }
    }
}

impl Response {
    fn new(
        status: u16,
        content_type: &str,
        body: Vec<u8>,
        extra: Vec<(String, String)>,
        request_id: String,
    ) -> Self {
        let mut headers = vec![
            ("Content-Type".to_string(), content_type.to_string()),
            ("x-amzn-RequestId".to_string(), request_id),
        ];
        headers.extend(extra);
        Response {
            status,
            reason: reason_phrase(status).to_string(),
            headers,
            body,
            mangle: None,
        }
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn read_line(r: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r.take(64 * 1024).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

fn read_headers(r: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    for _ in 0..MAX_HEAD_LINES {
        let line = read_line(r)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "eof in headers"))?;
        if line.is_empty() {
            return Ok(headers);
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "too many header lines",
    ))
}

fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "eof in chunk size"))?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad chunk size {size_text:?}"),
            )
        })?;
        if size == 0 {
            // Trailers, up to the empty line.
            read_headers(r)?;
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        read_line(r)?; // CRLF after the chunk
    }
}

fn read_body(
    r: &mut impl BufRead,
    headers: &[(String, String)],
    to_eof: bool,
) -> io::Result<Vec<u8>> {
    if has_token(headers, "transfer-encoding", "chunked") {
        return read_chunked(r);
    }
    if let Some(len) = header(headers, "content-length") {
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?;
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)?;
        return Ok(body);
    }
    let mut body = Vec::new();
    if to_eof {
        r.read_to_end(&mut body)?;
    }
    Ok(body)
}

/// Ok(None) on a clean EOF between requests.
fn read_request(r: &mut impl BufRead, w: &mut impl Write) -> io::Result<Option<Request>> {
    let line = loop {
        match read_line(r)? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue, // stray CRLF between requests
            Some(l) => break l,
        }
    };
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad request line {line:?}"),
        ));
    };
    let headers = read_headers(r)?;
    if has_token(&headers, "expect", "100-continue") {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        w.flush()?;
    }
    let body = read_body(r, &headers, false)?;
    Ok(Some(Request {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers,
        body,
    }))
}

fn write_response(w: &mut impl Write, resp: &Response, keep_alive: bool) -> io::Result<()> {
    match resp.mangle {
        Some(Mangle::Reset) => {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "reset on purpose",
            ));
        }
        Some(Mangle::Truncate) => {
            let head = format!(
                "HTTP/1.1 {} {}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                resp.status,
                resp.reason,
                resp.body.len()
            );
            w.write_all(head.as_bytes())?;
            w.write_all(&resp.body[..resp.body.len() / 2])?;
            w.flush()?;
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "cut off on purpose",
            ));
        }
        Some(Mangle::Garbage) | None => {}
    }
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, resp.reason).into_bytes();
    for (k, v) in &resp.headers {
        if [
            "content-length",
            "transfer-encoding",
            "connection",
            "keep-alive",
        ]
        .iter()
        .any(|h| k.eq_ignore_ascii_case(h))
        {
            continue;
        }
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n", resp.body.len()).as_bytes());
    out.extend_from_slice(if keep_alive {
        b"Connection: keep-alive\r\n\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
    out.extend_from_slice(&resp.body);
    w.write_all(&out)?;
    w.flush()
}

// ---------------------------------------------------------------------------
// Connection handling

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
    Mangle(Mangle),
    Forward {
        rewrite_batch: Vec<(String, String)>,
    },
}

fn process(shared: &Shared, req: &Request) -> Response {
    let (action, protocol) = classify(req);
    let body_text = String::from_utf8_lossy(&req.body).into_owned();
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
        let decision = if let Some(f) = failure {
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
        Decision::Mangle(how) => match forward(&shared.upstream, req) {
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
        Decision::Forward { rewrite_batch } => match forward(&shared.upstream, req) {
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

fn classify(req: &Request) -> (String, Protocol) {
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

fn error_response(
    protocol: Protocol,
    status: u16,
    code: &str,
    message: &str,
    request_id: String,
) -> Response {
    match protocol {
        Protocol::Query => {
            let kind = if status >= 500 { "Receiver" } else { "Sender" };
            let body = format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
                xml_escape(code),
                xml_escape(message),
                xml_escape(&request_id)
            );
            Response::new(
                status,
                "text/xml",
                body.into_bytes(),
                Vec::new(),
                request_id,
            )
        }
        _ => {
            let body = json!({ "__type": code, "Message": message }).to_string();
            Response::new(
                status,
                "application/x-amz-json-1.1",
                body.into_bytes(),
                vec![("X-Amzn-ErrorType".to_string(), code.to_string())],
                request_id,
            )
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn forward(upstream: &str, req: &Request) -> io::Result<Response> {
    let stream = TcpStream::connect(upstream)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    stream.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
    let mut out = format!("{} {} HTTP/1.1\r\n", req.method, req.target).into_bytes();
    for (k, v) in &req.headers {
        if [
            "connection",
            "keep-alive",
            "proxy-connection",
            "expect",
            "transfer-encoding",
            "content-length",
        ]
        .iter()
        .any(|h| k.eq_ignore_ascii_case(h))
        {
            continue;
        }
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if !req.body.is_empty() || !["GET", "HEAD"].contains(&req.method.as_str()) {
        out.extend_from_slice(format!("Content-Length: {}\r\n", req.body.len()).as_bytes());
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&req.body);
    let mut writer = stream.try_clone()?;
    writer.write_all(&out)?;
    writer.flush()?;

    let mut reader = BufReader::new(stream);
    loop {
        let line = read_line(&mut reader)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "upstream closed"))?;
        let mut parts = line.splitn(3, ' ');
        let _version = parts.next();
        let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {line:?}"),
            )
        })?;
        let reason = parts.next().unwrap_or("").to_string();
        let headers = read_headers(&mut reader)?;
        if (100..200).contains(&status) {
            continue; // interim response
        }
        let body = if req.method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 {
            Vec::new()
        } else {
            read_body(&mut reader, &headers, true)?
        };
        return Ok(Response {
            status,
            reason,
            headers,
            body,
            mangle: None,
        });
    }
}

// ---------------------------------------------------------------------------
// Secret ids, forms, batch rewriting

/// Secret name from a name or an ARN (`arn:...:secret:NAME-AbCdEf` -> `NAME`).
fn secret_name(id: &str) -> &str {
    if id.starts_with("arn:")
        && let Some((_, rest)) = id.split_once(":secret:")
    {
        if let Some((name, suffix)) = rest.rsplit_once('-')
            && suffix.len() == 6
            && suffix.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return name;
        }
        return rest;
    }
    id
}

fn same_secret(a: &str, b: &str) -> bool {
    a == b || secret_name(a) == secret_name(b)
}

fn secret_id_list(body: &Value) -> Vec<String> {
    body.get("SecretIdList")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Move denied entries from SecretValues to Errors. None if the body is not
/// the expected JSON object or nothing matched.
fn rewrite_batch_response(
    body: &[u8],
    requested: &[String],
    denied: &[(String, String)],
) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object_mut()?;
    let values = obj.get_mut("SecretValues")?.as_array_mut()?;
    let mut new_errors = Vec::new();
    values.retain(|entry| {
        let name = entry.get("Name").and_then(Value::as_str).unwrap_or("");
        let arn = entry.get("ARN").and_then(Value::as_str).unwrap_or("");
        let hit = |id: &str| same_secret(id, name) || (!arn.is_empty() && same_secret(id, arn));
        let Some((deny, code)) = denied.iter().find(|(d, _)| hit(d)) else {
            return true;
        };
        let as_requested = requested.iter().find(|r| hit(r)).unwrap_or(deny).clone();
        let message = if code == "AccessDeniedException" {
            format!(
                "User: {DENY_PRINCIPAL} is not authorized to perform: secretsmanager:GetSecretValue on resource: {as_requested}"
            )
        } else {
            format!("{code} injected by the credfile test proxy for this secret")
        };
        new_errors.push(json!({
            "SecretId": as_requested,
            "ErrorCode": code,
            "Message": message,
        }));
        false
    });
    if new_errors.is_empty() {
        return None;
    }
    let errors = obj
        .entry("Errors")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !errors.is_array() {
        *errors = Value::Array(Vec::new());
    }
    errors.as_array_mut()?.extend(new_errors);
    serde_json::to_vec(&v).ok()
}

/// Value of `key` in an application/x-www-form-urlencoded string.
fn form_value(form: &str, key: &str) -> Option<String> {
    form.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (url_decode(k) == key).then(|| url_decode(v))
    })
}

fn url_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
