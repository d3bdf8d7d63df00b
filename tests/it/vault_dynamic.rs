//! Dynamic credentials (`vault_lease:`) and certificates (`vault_pki:`) against a real OpenBao
//! server and a real PostgreSQL (docs/src/vault-dynamic.md).

use crate::support::openbao_engines::{Database, Pki, ScratchBao, lease_lookup, ok};
use crate::support::postgres::Postgres;

/// The engine set-up the tests rely on: a lease's credentials log in to PostgreSQL, renewing
/// extends it, revoking drops the role; the pki role issues.
#[test]
fn engines_issue_leases_that_log_in_and_certificates() {
    let bao = ScratchBao::start();
    let pg = Postgres::start();
    let db = Database::enable(&bao.addr, &bao.token, &pg, 20, 60);
    let v = ok(&bao.addr, &bao.token, "GET", &db.creds_path(), None);
    let user = v["data"]["username"].as_str().unwrap().to_string();
    let pass = v["data"]["password"].as_str().unwrap().to_string();
    let lease = v["lease_id"].as_str().unwrap().to_string();
    pg.login(&user, &pass).unwrap();
    assert!(lease_lookup(&bao.addr, &bao.token, &lease).is_some());
    ok(
        &bao.addr,
        &bao.token,
        "PUT",
        "sys/leases/revoke",
        Some(&serde_json::json!({"lease_id": lease})),
    );
    assert!(lease_lookup(&bao.addr, &bao.token, &lease).is_none());
    assert!(!pg.role_exists(&user));
    let pki = Pki::enable(&bao.addr, &bao.token, 3600);
    let c = ok(
        &bao.addr,
        &bao.token,
        "POST",
        &format!("{}/issue/{}", pki.mount, pki.role),
        Some(&serde_json::json!({"common_name": "api.example.test", "ttl": "60s"})),
    );
    assert!(
        c["data"]["certificate"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    assert!(pki.ca_pem.contains("BEGIN CERTIFICATE"));
}
