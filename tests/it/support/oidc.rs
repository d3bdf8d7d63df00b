//! A stand-in for GitHub Actions' OIDC token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`), speaking
//! its wire protocol on 127.0.0.1: `GET <url>&audience=<aud>` with `Authorization: bearer
//! <ACTIONS_ID_TOKEN_REQUEST_TOKEN>`, answered with `{"value": "<JWT>"}` (401 for a wrong bearer).
//!
//! By default the JWTs are well-formed but unsigned (moto does not verify them). A relying party
//! that does verify (OpenBao's jwt auth) gets RS256 tokens signed with [`TestKey`], a per-process
//! RSA key whose public half it is configured with (`jwt_validation_pubkeys`).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

/// One request as the endpoint saw it.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub path_and_query: String,
    pub audience: Option<String>,
    pub bearer_ok: bool,
}

/// The RSA key the stand-ins sign with (one per test process, generated on first use).
pub struct TestKey {
    pair: aws_lc_rs::rsa::KeyPair,
    /// The public key, PEM (`-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo).
    pub public_pem: String,
}

impl TestKey {
    pub fn get() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(|| {
            use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
            use aws_lc_rs::signature::KeyPair as _;
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .expect("generate an RSA key");
            let der: PublicKeyX509Der = pair.public_key().as_der().expect("public key DER");
            let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
            let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
            for line in b64.as_bytes().chunks(64) {
                pem.push_str(std::str::from_utf8(line).unwrap());
                pem.push('\n');
            }
            pem.push_str("-----END PUBLIC KEY-----\n");
            TestKey {
                pair,
                public_pem: pem,
            }
        })
    }

    /// An RS256 JWT of `claims`, with `iat`, `nbf` and `exp` (5 minutes) set to now.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut claims = claims.clone();
        claims["iat"] = now.into();
        claims["nbf"] = (now - 5).into();
        claims["exp"] = (now + 300).into();
        claims["jti"] = super::random_hex(16).into();
        let input = format!(
            "{}.{}",
            b64.encode(br#"{"alg":"RS256","typ":"JWT","kid":"credfile-test"}"#),
            b64.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .expect("RS256 sign");
        format!("{input}.{}", b64.encode(sig))
    }
}

/// The claims GitHub puts in a job's ID token for `repository` (and the job's `environment`).
pub fn github_claims(repository: &str, environment: Option<&str>) -> serde_json::Value {
    let sub = match environment {
        Some(e) => format!("repo:{repository}:environment:{e}"),
        None => format!("repo:{repository}:ref:refs/heads/main"),
    };
    let mut claims = serde_json::json!({
        "iss": "https://token.actions.githubusercontent.com",
        "sub": sub,
        "repository": repository,
        "repository_owner": repository.split('/').next().unwrap_or_default(),
        "ref": "refs/heads/main",
        "ref_type": "branch",
        "run_id": "4242",
    });
    if let Some(e) = environment {
        claims["environment"] = e.into();
    }
    claims
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
        GithubTokenEndpoint::serve(request_token, sub, None)
    }

    /// An endpoint handing out RS256 JWTs signed with [`TestKey`]: `claims` (see
    /// [`github_claims`]) with `aud` set to the audience each request asks for, as GitHub
    /// does. Every token handed out is registered as a canary.
    pub fn start_signed(request_token: &str, claims: serde_json::Value) -> GithubTokenEndpoint {
        let sub = claims["sub"].as_str().unwrap_or_default().to_string();
        GithubTokenEndpoint::serve(request_token, &sub, Some(claims))
    }

    fn serve(
        request_token: &str,
        sub: &str,
        signed: Option<serde_json::Value>,
    ) -> GithubTokenEndpoint {
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
                    path_and_query: target.clone(),
                    audience,
                    bearer_ok,
                });
                let (status, body) = if bearer_ok {
                    let value = match &signed {
                        Some(claims) => {
                            let mut claims = claims.clone();
                            claims["aud"] = audience_of(&target).into();
                            let jwt = TestKey::get().sign(&claims);
                            super::Canaries::global().add(&jwt);
                            jwt
                        }
                        None => value.clone(),
                    };
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

/// The `audience` query parameter of a token request, percent-decoded (GitHub's default when
/// none is asked for is the repository owner's URL; the stand-in's is `sts.amazonaws.com`).
fn audience_of(target: &str) -> String {
    let raw = target
        .split_once('?')
        .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("audience=")))
        .unwrap_or("sts.amazonaws.com");
    let bytes = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Like [`gitlab_jwt`], signed RS256 with [`TestKey`] (with `iat`/`exp`), and with
/// `ref_protected` as GitLab sets it; registered as a canary.
pub fn gitlab_jwt_signed(
    host: &str,
    project: &str,
    branch: &str,
    aud: &str,
    protected: bool,
) -> String {
    let mut claims = jwt_claims(&gitlab_jwt(host, project, branch, aud));
    claims["ref_protected"] = if protected { "true" } else { "false" }.into();
    let jwt = TestKey::get().sign(&claims);
    super::Canaries::global().add(&jwt);
    jwt
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
