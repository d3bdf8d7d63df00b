//! The secrets engines the dynamic-credential tests need, set up on a running OpenBao server
//! through its HTTP API with the root token (docs/src/vault-dynamic.md):
//!
//! * [`Database`]: the database engine's built-in `postgresql-database-plugin` against a
//!   throwaway [`Postgres`], one role whose leases are short enough to renew and run out within
//!   a test;
//! * [`Pki`]: a pki mount with an internal root CA and one role.
//!
//! Every mount gets a unique path, so tests can share one server. [`api`] is the small HTTP/1.1
//! client the set-up uses (and tests use to look leases up): plain loopback HTTP, one request
//! per connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use super::postgres::Postgres;

/// One request to the server at `addr` (`http://127.0.0.1:PORT`): the status and the JSON body
/// (`Value::Null` when empty).
pub fn api(
    addr: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let hostport = addr
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{addr} is not http://HOST:PORT"));
    let mut s = TcpStream::connect(hostport).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let path = path.trim_start_matches('/');
    let req = format!(
        "{method} /v1/{path} HTTP/1.1\r\nHost: {hostport}\r\nX-Vault-Token: {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no HTTP header end"));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut rest = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: bad status line: {head}"));
    if head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    }) {
        rest = dechunk(&rest);
    }
    let value = if rest.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&rest).unwrap_or_else(|e| panic!("{method} {path}: not JSON: {e}"))
    };
    (status, value)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

/// `POST MOUNT/roles/ROLE` with `body`, which must succeed.
fn write_role(addr: &str, token: &str, mount: &str, role: &str, body: &Value) {
    ok(
        addr,
        token,
        "POST",
        &format!("{mount}/roles/{role}"),
        Some(body),
    );
}

/// [`api`] that must succeed (2xx); the body.
pub fn ok(addr: &str, token: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    let (status, v) = api(addr, token, method, path, body);
    assert!(
        (200..300).contains(&status),
        "{method} {path}: HTTP {status}: {v}"
    );
    v
}

/// A database secrets engine mount with one PostgreSQL connection and one role.
pub struct Database {
    /// The mount, e.g. `db-3fa2c1d0`.
    pub mount: String,
    /// The role; leases are read from `<mount>/creds/<role>`.
    pub role: String,
}

impl Database {
    /// Mounts the engine at a fresh path, connects it to `pg` as its superuser, and creates a
    /// role whose leases last `default_ttl` seconds and at most `max_ttl` seconds. The revocation
    /// statement drops the role, so a revoked lease is a role gone from PostgreSQL.
    pub fn enable(
        addr: &str,
        token: &str,
        pg: &Postgres,
        default_ttl: u64,
        max_ttl: u64,
    ) -> Database {
        let mount = format!("db-{}", super::random_hex(4));
        ok(
            addr,
            token,
            "POST",
            &format!("sys/mounts/{mount}"),
            Some(&json!({"type": "database"})),
        );
        ok(
            addr,
            token,
            "POST",
            &format!("{mount}/config/pg"),
            Some(&json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": pg.connection_url(),
                "username": pg.admin_user(),
                "password": pg.admin_password(),
                "allowed_roles": "*",
                "verify_connection": true,
            })),
        );
        let role = "orders-app".to_string();
        write_role(
            addr,
            token,
            &mount,
            &role,
            &json!({
                "db_name": "pg",
                "creation_statements": [
                    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
                ],
                "revocation_statements": [
                    "DROP ROLE IF EXISTS \"{{name}}\";"
                ],
                "default_ttl": default_ttl,
                "max_ttl": max_ttl,
            }),
        );
        Database { mount, role }
    }

    /// The path a manifest's `vault_lease:` names.
    pub fn creds_path(&self) -> String {
        format!("{}/creds/{}", self.mount, self.role)
    }
}

/// `sys/leases/lookup` of `lease_id`: `Some((ttl seconds, expire_time))` while it lives, `None`
/// once it is gone (revoked or expired).
pub fn lease_lookup(addr: &str, token: &str, lease_id: &str) -> Option<(u64, String)> {
    let (status, v) = api(
        addr,
        token,
        "PUT",
        "sys/leases/lookup",
        Some(&json!({ "lease_id": lease_id })),
    );
    if status == 400 || status == 404 {
        return None;
    }
    assert_eq!(status, 200, "sys/leases/lookup: {v}");
    let d = &v["data"];
    Some((
        d["ttl"].as_u64().unwrap_or(0),
        d["expire_time"].as_str().unwrap_or_default().to_string(),
    ))
}

/// A pki mount with an internal root CA and one role for `*.example.test` and IP SANs.
pub struct Pki {
    pub mount: String,
    pub role: String,
    /// The root CA certificate (PEM), to verify what credfile writes against.
    pub ca_pem: String,
}

impl Pki {
    /// `max_ttl`: the role's longest certificate, in seconds.
    pub fn enable(addr: &str, token: &str, max_ttl: u64) -> Pki {
        let mount = format!("pki-{}", super::random_hex(4));
        ok(
            addr,
            token,
            "POST",
            &format!("sys/mounts/{mount}"),
            Some(&json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}})),
        );
        let root = ok(
            addr,
            token,
            "POST",
            &format!("{mount}/root/generate/internal"),
            Some(&json!({
                "common_name": "credfile test root CA",
                "ttl": "8760h",
                "key_type": "ec",
                "key_bits": 256,
            })),
        );
        let ca_pem = root["data"]["certificate"]
            .as_str()
            .expect("root certificate")
            .to_string();
        let role = "web".to_string();
        write_role(
            addr,
            token,
            &mount,
            &role,
            &json!({
                "allowed_domains": ["example.test"],
                "allow_subdomains": true,
                "allow_ip_sans": true,
                "max_ttl": max_ttl,
                "key_type": "ec",
                "key_bits": 256,
                // No back-dating: a certificate's lifetime is exactly the ttl asked for.
                "not_before_duration": "1s",
            }),
        );
        Pki {
            mount,
            role,
            ca_pem,
        }
    }
}
