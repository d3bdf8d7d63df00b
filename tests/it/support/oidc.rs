//! A stand-in for GitHub Actions' OIDC token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`), speaking
//! its wire protocol on 127.0.0.1: `GET <url>&audience=<aud>` with `Authorization: bearer
//! <ACTIONS_ID_TOKEN_REQUEST_TOKEN>`, answered with `{"value": "<JWT>"}` (401 for a wrong bearer).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread;

use base64::Engine as _;

/// One request as the endpoint saw it.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub path_and_query: String,
    pub audience: Option<String>,
    pub bearer_ok: bool,
}

pub struct GithubTokenEndpoint {
    addr: SocketAddr,
    pub request_token: String,
    pub jwt: String,
    seen: Arc<Mutex<Vec<TokenRequest>>>,
}

impl GithubTokenEndpoint {
    /// Starts the endpoint. `request_token` is the bearer it accepts; the JWT it hands out is a
    /// well-formed (unsigned) JWT whose claims look like GitHub's, unique per endpoint.
    pub fn start(request_token: &str) -> GithubTokenEndpoint {
        GithubTokenEndpoint::start_with_sub(
            request_token,
            "repo:acme/payments:environment:production",
        )
    }

    /// Like [`GithubTokenEndpoint::start`], for a job whose token has subject `sub` (GitHub's
    /// default: `repo:OWNER/REPO:environment:NAME`, or `repo:OWNER/REPO:ref:refs/heads/BRANCH`
    /// for a job without an environment).
    pub fn start_with_sub(request_token: &str, sub: &str) -> GithubTokenEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token endpoint");
        let addr = listener.local_addr().unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = serde_json::json!({
            "iss": "https://token.actions.githubusercontent.com",
            "sub": sub,
            "aud": "sts.amazonaws.com",
            "jti": super::random_hex(16),
        });
        let jwt = format!(
            "{}.{}.{}",
            b64.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
            b64.encode(claims.to_string()),
            b64.encode(super::random_hex(32))
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (seen2, expected, value) = (seen.clone(), request_token.to_string(), jwt.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut auth = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("authorization")
                    {
                        auth = Some(v.trim().to_string());
                    }
                }
                let audience = target.split_once('?').and_then(|(_, q)| {
                    q.split('&')
                        .find_map(|kv| kv.strip_prefix("audience=").map(str::to_string))
                });
                let bearer_ok = auth.as_deref().is_some_and(|a| {
                    a.len() > 7 && a[..7].eq_ignore_ascii_case("bearer ") && a[7..] == expected
                });
                seen2.lock().unwrap().push(TokenRequest {
                    path_and_query: target,
                    audience,
                    bearer_ok,
                });
                let (status, body) = if bearer_ok {
                    (
                        "200 OK",
                        serde_json::json!({ "count": 1, "value": value }).to_string(),
                    )
                } else {
                    (
                        "401 Unauthorized",
                        r#"{"message":"Bad credentials"}"#.to_string(),
                    )
                };
                let mut out = stream;
                let _ = write!(
                    out,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        GithubTokenEndpoint {
            addr,
            request_token: request_token.to_string(),
            jwt,
            seen,
        }
    }

    /// The value for ACTIONS_ID_TOKEN_REQUEST_URL (with a query string, as GitHub's has).
    pub fn url(&self) -> String {
        format!(
            "http://{}/_apis/distributedtask/token?api-version=2.0",
            self.addr
        )
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

/// A GitLab `id_tokens` JWT (unsigned) with the claims GitLab puts in one for a branch pipeline
/// of `project` on `host`, requested with `aud`.
pub fn gitlab_jwt(host: &str, project: &str, branch: &str, aud: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = serde_json::json!({
        "iss": format!("https://{host}"),
        "sub": format!("project_path:{project}:ref_type:branch:ref:{branch}"),
        "aud": aud,
        "project_path": project,
        "ref": branch,
        "ref_type": "branch",
        "jti": super::random_hex(16),
    });
    format!(
        "{}.{}.{}",
        b64.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64.encode(claims.to_string()),
        b64.encode(super::random_hex(32))
    )
}

/// The claims of a JWT (its middle part), unverified.
pub fn jwt_claims(jwt: &str) -> serde_json::Value {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&b64.decode(payload).expect("base64url")).expect("JSON claims")
}
