//! A stand-in for the one Kubernetes API call Vault's kubernetes auth makes: the TokenReview
//! (`POST /apis/authentication.k8s.io/v1/tokenreviews`, docs/src/vault.md "kubernetes"), on
//! 127.0.0.1. It knows one service-account token and answers `authenticated: true` with that
//! account's user for it, `authenticated: false` for any other, as the API server does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread;

use super::oidc::TestKey;

pub struct TokenReviewer {
    addr: SocketAddr,
    /// The service-account token it knows (an RS256 JWT with the claims a projected token has).
    pub token: String,
    /// (token reviewed, answered authenticated) per review, in order.
    reviews: Arc<Mutex<Vec<(String, bool)>>>,
}

impl TokenReviewer {
    /// A reviewer for service account `name` in `namespace`; the token is a canary.
    pub fn start(namespace: &str, name: &str) -> TokenReviewer {
        let uid = format!(
            "{}-{}-4{}-8{}-{}",
            super::random_hex(4),
            super::random_hex(2),
            &super::random_hex(2)[1..],
            &super::random_hex(2)[1..],
            super::random_hex(6)
        );
        let token = service_account_token(namespace, name, &uid);
        super::Canaries::global().add(&token);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token reviewer");
        let addr = listener.local_addr().unwrap();
        let reviews = Arc::new(Mutex::new(Vec::new()));
        let (known, seen) = (token.clone(), reviews.clone());
        let user = serde_json::json!({
            "username": format!("system:serviceaccount:{namespace}:{name}"),
            "uid": uid,
            "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{namespace}"), "system:authenticated"],
        });
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (known, seen, user) = (known.clone(), seen.clone(), user.clone());
                thread::spawn(move || serve(stream, &known, &seen, &user));
            }
        });
        TokenReviewer {
            addr,
            token,
            reviews,
        }
    }

    /// `http://127.0.0.1:PORT`, for the auth method's `kubernetes_host`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Whether each review so far found the token authentic, in order.
    pub fn verdicts(&self) -> Vec<bool> {
        self.reviews.lock().unwrap().iter().map(|r| r.1).collect()
    }
}

/// A projected service-account token's shape: RS256, `kubernetes.io` claims, signed with the
/// test key (the reviewer, not the signature, is what Vault trusts here).
pub fn service_account_token(namespace: &str, name: &str, uid: &str) -> String {
    TestKey::get().sign(&serde_json::json!({
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "aud": ["https://kubernetes.default.svc.cluster.local"],
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": { "name": name, "uid": uid },
        },
    }))
}

fn serve(
    stream: std::net::TcpStream,
    known: &str,
    seen: &Mutex<Vec<(String, bool)>>,
    user: &serde_json::Value,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut length = 0usize;
        let mut bearer = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("authorization") {
                    bearer = v.trim().len() > 7 && v.trim()[..7].eq_ignore_ascii_case("bearer ");
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (status, answer) = if method != "POST"
            || target.split('?').next() != Some("/apis/authentication.k8s.io/v1/tokenreviews")
        {
            (
                "404 Not Found",
                serde_json::json!({"kind": "Status", "status": "Failure", "code": 404}),
            )
        } else if !bearer {
            (
                "401 Unauthorized",
                serde_json::json!({"kind": "Status", "status": "Failure", "code": 401}),
            )
        } else {
            let review: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let token = review["spec"]["token"].as_str().unwrap_or("").to_string();
            let ok = token == known;
            seen.lock().unwrap().push((token, ok));
            let status = if ok {
                serde_json::json!({ "authenticated": true, "user": user, "audiences": review["spec"]["audiences"] })
            } else {
                serde_json::json!({ "authenticated": false, "error": "invalid bearer token, Token has been invalidated" })
            };
            (
                "201 Created",
                serde_json::json!({
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenReview",
                    "metadata": { "creationTimestamp": null },
                    "spec": review["spec"],
                    "status": status,
                }),
            )
        };
        let text = answer.to_string();
        if write!(
            out,
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        )
        .is_err()
        {
            return;
        }
    }
}

/// A self-signed certificate (PEM) from the openssl CLI, for the auth method's
/// `kubernetes_ca_cert` (required; unused over the stand-in's plain http).
pub fn ca_cert_pem() -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=credfile-test-kubernetes"])
        .arg("-keyout")
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(dir.path().join("cert.pem"))
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dir.path().join("cert.pem")).unwrap()
}
