//! A stand-in for Vault's `aws` auth method (IAM sign-in), which OpenBao does not ship: it sits
//! in front of a real OpenBao, verifies `POST /v1/auth/aws/login` the way Vault does, mints a
//! token in bao through the root token, and passes every other request to bao unchanged
//! (docs/src/vault.md, "aws").
//!
//! What it checks, in Vault's order: the request is a POST of `Action=GetCallerIdentity` to the
//! configured STS endpoint; with a server id configured, `X-Vault-AWS-IAM-Server-ID` is present,
//! equal to it and among the Authorization header's `SignedHeaders`. Then it forwards the signed
//! request as it is to STS (moto) and matches the ARN STS answers against the role's bound
//! principal. moto checks no signature, so the stand-in also verifies the SigV4 signature
//! itself against the test secret key: a tampered body or header is refused, as AWS would.

use std::collections::HashMap;
use std::io::BufReader;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::proxy::http::{Request, Response, forward, header, read_request, write_response};

/// A role of the stand-in's `aws` auth method.
#[derive(Clone)]
pub struct AwsRole {
    /// `bound_iam_principal_arn`: an IAM user or role ARN; a trailing `*` matches a prefix.
    pub bound_arn: String,
    pub policies: Vec<String>,
    pub ttl: String,
    /// Whether the minted token may be renewed (`renew-self`).
    pub renewable: bool,
}

struct Config {
    bao: String,
    root_token: String,
    sts: String,
    server_id: Option<String>,
    /// Secret keys by access key id (the stand-in plays AWS's signature check).
    keys: HashMap<String, String>,
    roles: Mutex<HashMap<String, AwsRole>>,
    /// (role, outcome) per login, in order: `ok`, or the error answered.
    logins: Mutex<Vec<(String, String)>>,
    /// Alter the signed body of each login before checking it (a request changed in transit).
    tamper: std::sync::atomic::AtomicBool,
}

pub struct AwsAuth {
    addr: SocketAddr,
    config: Arc<Config>,
}

impl AwsAuth {
    /// In front of the bao at `bao_addr` (`http://127.0.0.1:PORT`, minting with `root_token`),
    /// trusting the STS at `sts` (moto) and the SigV4 key pair `(access_key, secret_key)`.
    pub fn start(
        bao_addr: &str,
        root_token: &str,
        sts: &str,
        server_id: Option<&str>,
        key: (&str, &str),
    ) -> AwsAuth {
        let host = |u: &str| {
            u.trim_end_matches('/')
                .trim_start_matches("http://")
                .to_string()
        };
        let config = Arc::new(Config {
            bao: host(bao_addr),
            root_token: root_token.to_string(),
            sts: host(sts),
            server_id: server_id.map(str::to_string),
            keys: HashMap::from([(key.0.to_string(), key.1.to_string())]),
            roles: Mutex::new(HashMap::new()),
            logins: Mutex::new(Vec::new()),
            tamper: std::sync::atomic::AtomicBool::new(false),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind aws auth stand-in");
        let addr = listener.local_addr().unwrap();
        let shared = config.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let config = shared.clone();
                thread::spawn(move || serve(stream, &config));
            }
        });
        AwsAuth { addr, config }
    }

    /// `http://127.0.0.1:PORT`: the Vault address credfile is given.
    pub fn addr(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn role(&self, name: &str, role: AwsRole) {
        self.config
            .roles
            .lock()
            .unwrap()
            .insert(name.to_string(), role);
    }

    /// From now on, each login's signed request is altered (a parameter appended to its body)
    /// before the checks, as a man in the middle would.
    pub fn tamper(&self) {
        self.config
            .tamper
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// (role, `ok` or the refusal) per login attempt, in order.
    pub fn logins(&self) -> Vec<(String, String)> {
        self.config.logins.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, config: &Config) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Ok(Some(req)) = read_request(&mut reader, &mut writer) {
        let keep_alive = req.keep_alive();
        let resp = if req.method == "POST"
            && req.target.split('?').next() == Some("/v1/auth/aws/login")
        {
            login(config, &req)
        } else {
            forward(&config.bao, &req).unwrap_or_else(|e| json(502, &errors(&format!("bao: {e}"))))
        };
        if write_response(&mut writer, &resp, keep_alive).is_err() || !keep_alive {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

fn json(status: u16, body: &serde_json::Value) -> Response {
    Response::new(
        status,
        "application/json",
        body.to_string().into_bytes(),
        Vec::new(),
        String::new(),
    )
}

fn errors(message: &str) -> serde_json::Value {
    serde_json::json!({ "errors": [message] })
}

fn login(config: &Config, req: &Request) -> Response {
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
    let role = body["role"].as_str().unwrap_or("").to_string();
    let outcome = verify(config, &role, &body);
    let (resp, note) = match outcome {
        Ok(resp) => (resp, "ok".to_string()),
        Err((status, message)) => (json(status, &errors(&message)), message),
    };
    config.logins.lock().unwrap().push((role, note));
    resp
}

type Refusal = (u16, String);

fn verify(config: &Config, role_name: &str, body: &serde_json::Value) -> Result<Response, Refusal> {
    let bad = |m: &str| (400u16, m.to_string());
    let role = config
        .roles
        .lock()
        .unwrap()
        .get(role_name)
        .cloned()
        .ok_or_else(|| bad(&format!("entry for role {role_name} not found")))?;
    let b64 = |k: &str| -> Result<Vec<u8>, Refusal> {
        let v = body[k]
            .as_str()
            .ok_or_else(|| bad(&format!("missing {k}")))?;
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .map_err(|_| bad(&format!("failed to base64 decode {k}")))
    };
    let method = body["iam_http_request_method"].as_str().unwrap_or("");
    if method != "POST" {
        return Err(bad("iam_http_request_method must be POST"));
    }
    let url = String::from_utf8(b64("iam_request_url")?).map_err(|_| bad("bad iam_request_url"))?;
    let mut request_body = b64("iam_request_body")?;
    if config.tamper.load(std::sync::atomic::Ordering::SeqCst) {
        request_body.extend_from_slice(b"&DurationSeconds=43200");
    }
    let headers: serde_json::Value = serde_json::from_slice(&b64("iam_request_headers")?)
        .map_err(|_| bad("iam_request_headers is not JSON"))?;
    // Header name -> values (Vault takes a map of string or list of strings).
    let mut hs: Vec<(String, String)> = Vec::new();
    for (k, v) in headers
        .as_object()
        .ok_or_else(|| bad("iam_request_headers is not a map"))?
    {
        match v {
            serde_json::Value::String(s) => hs.push((k.clone(), s.clone())),
            serde_json::Value::Array(a) => {
                let joined: Vec<&str> = a.iter().filter_map(|x| x.as_str()).collect();
                hs.push((k.clone(), joined.join(",")));
            }
            _ => return Err(bad("iam_request_headers holds a non-string value")),
        }
    }
    // The request must go to our STS, and be GetCallerIdentity (Vault parses the body).
    let (authority, path) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .and_then(|r| {
            r.split_once('/')
                .map(|(a, p)| (a.to_string(), format!("/{p}")))
        })
        .ok_or_else(|| bad("invalid iam_request_url"))?;
    if authority != config.sts || path != "/" {
        return Err(bad(&format!(
            "iam_request_url {url} is not the configured STS endpoint"
        )));
    }
    let form = String::from_utf8_lossy(&request_body).into_owned();
    let mut action = None;
    for kv in form.split('&') {
        if let Some(a) = kv.strip_prefix("Action=") {
            action = Some(a.to_string());
        }
    }
    if action.as_deref() != Some("GetCallerIdentity") {
        return Err(bad("iam_request_body must be a GetCallerIdentity request"));
    }
    // The server id header (Vault's iam_server_id_header_value check).
    if let Some(want) = &config.server_id {
        let got = header(&hs, "x-vault-aws-iam-server-id")
            .ok_or_else(|| bad("missing header \"X-Vault-AWS-IAM-Server-ID\""))?;
        if got != want {
            return Err(bad(&format!(
                "expected \"{want}\" but got \"{got}\" in header X-Vault-AWS-IAM-Server-ID"
            )));
        }
        let auth = header(&hs, "authorization").unwrap_or("");
        let signed = signed_headers(auth);
        if !signed.iter().any(|h| h == "x-vault-aws-iam-server-id") {
            return Err(bad("vault header wasn't signed"));
        }
    }
    // AWS's own check (moto skips it): the SigV4 signature over what was sent.
    check_signature(config, &hs, &request_body).map_err(|m| (403u16, m))?;
    // Vault sends the request to STS as signed, and learns the caller.
    let forwarded = Request {
        method: "POST".into(),
        target: "/".into(),
        version: "HTTP/1.1".into(),
        headers: hs.clone(),
        body: request_body.clone(),
    };
    let sts = forward(&config.sts, &forwarded)
        .map_err(|e| (500u16, format!("error making upstream request: {e}")))?;
    let xml = String::from_utf8_lossy(&sts.body).into_owned();
    if sts.status != 200 {
        return Err((
            400,
            format!(
                "error making upstream request: received error code {} from STS: {xml}",
                sts.status
            ),
        ));
    }
    let arn = between(&xml, "<Arn>", "</Arn>").ok_or_else(|| bad("no Arn in STS's answer"))?;
    let principal = canonical_arn(&arn);
    let matches = match role.bound_arn.strip_suffix('*') {
        Some(prefix) => principal.starts_with(prefix),
        None => principal == role.bound_arn,
    };
    if !matches {
        return Err((
            403,
            format!("IAM Principal \"{arn}\" does not belong to the role \"{role_name}\""),
        ));
    }
    // Mint the token Vault would, through the root token.
    let create = serde_json::json!({
        "policies": role.policies,
        "ttl": role.ttl,
        "renewable": role.renewable,
        "display_name": format!("aws-{}", principal.rsplit('/').next().unwrap_or("")),
        "meta": { "canonical_arn": principal, "role": role_name },
    });
    let mint = Request {
        method: "POST".into(),
        target: "/v1/auth/token/create".into(),
        version: "HTTP/1.1".into(),
        headers: vec![
            ("Host".into(), config.bao.clone()),
            ("X-Vault-Token".into(), config.root_token.clone()),
            ("Content-Type".into(), "application/json".into()),
        ],
        body: create.to_string().into_bytes(),
    };
    let minted = forward(&config.bao, &mint).map_err(|e| (500u16, format!("bao: {e}")))?;
    if minted.status != 200 {
        return Err((500, format!("bao token/create: HTTP {}", minted.status)));
    }
    // token/create answers in the login response's shape (`auth.client_token`, ...).
    Ok(json(
        200,
        &serde_json::from_slice(&minted.body).unwrap_or_default(),
    ))
}

fn between(text: &str, open: &str, close: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(text[start..end].trim().to_string())
}

/// `arn:aws:sts::ACCT:assumed-role/NAME/SESSION` -> `arn:aws:iam::ACCT:role/NAME`, as Vault
/// resolves a session to its role; other ARNs as they are.
fn canonical_arn(arn: &str) -> String {
    if let Some(rest) = arn.strip_prefix("arn:aws:sts::")
        && let Some((account, res)) = rest.split_once(':')
        && let Some(role) = res.strip_prefix("assumed-role/")
    {
        let name = role.split('/').next().unwrap_or("");
        return format!("arn:aws:iam::{account}:role/{name}");
    }
    arn.to_string()
}

fn signed_headers(authorization: &str) -> Vec<String> {
    authorization
        .split([',', ' '])
        .find_map(|p| p.trim().strip_prefix("SignedHeaders="))
        .map(|s| s.split(';').map(str::to_string).collect())
        .unwrap_or_default()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SigV4 (AWS4-HMAC-SHA256) over the request as sent: path `/`, no query, the signed headers,
/// the body's SHA-256; the key from the access key id in the credential scope.
fn check_signature(config: &Config, hs: &[(String, String)], body: &[u8]) -> Result<(), String> {
    let auth = header(hs, "authorization").ok_or("missing Authorization header")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("the Authorization header is not AWS4-HMAC-SHA256")?;
    let field = |name: &str| {
        rest.split(',')
            .find_map(|p| p.trim().strip_prefix(name).map(str::to_string))
    };
    let credential = field("Credential=").ok_or("no Credential in Authorization")?;
    let signature = field("Signature=").ok_or("no Signature in Authorization")?;
    let signed = signed_headers(auth);
    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, "aws4_request"] = scope[..] else {
        return Err("malformed credential scope".into());
    };
    let secret = config
        .keys
        .get(akid)
        .ok_or("The security token included in the request is invalid.")?;
    let amz_date = header(hs, "x-amz-date").ok_or("missing X-Amz-Date")?;
    let mut canonical = String::from("POST\n/\n\n");
    for name in &signed {
        let value = header(hs, name).ok_or_else(|| format!("signed header {name} is missing"))?;
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        canonical.push_str(&format!("{name}:{value}\n"));
    }
    canonical.push('\n');
    canonical.push_str(&signed.join(";"));
    canonical.push('\n');
    canonical.push_str(&hex(&Sha256::digest(body)));
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    if hex(&hmac(&key, to_sign.as_bytes())) != signature {
        return Err("error making upstream request: received error code 403 from STS: SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided".into());
    }
    Ok(())
}
