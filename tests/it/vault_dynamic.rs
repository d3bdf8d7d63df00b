//! Dynamic credentials (`vault_lease:`) and certificates (`vault_pki:`) against a real OpenBao
//! dev server and a real PostgreSQL (docs/src/vault-dynamic.md). Waits are on conditions Vault
//! reports (a lease's TTL, a certificate's expiry), never on elapsed time; what is asserted is
//! the order of events: files untouched, hooks run or not, roles present or gone.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::openbao_engines::{Database, Pki, lease_lookup, ok};
use crate::support::postgres::Postgres;
use crate::support::vault_case::{self, assert_has_all, lookup_run_token};
use crate::support::{Canaries, Case, OpenBao, Output, assert_no_leak, snapshot};

/// An AppRole `orders` whose tokens carry the policy `orders-dynamic` (see [`write_policy`]):
/// the manifest's sign-in, with the secret id in `ORDERS_SECRET_ID` (a canary). Returns (the
/// `vault:` lines, the secret id).
fn approle(bao: &OpenBao) -> (String, String) {
    approle_with(bao, &["token_ttl=10m", "token_max_ttl=1h"])
}

/// [`approle`] with the role's token settings `token` (`token_ttl=...` and the like).
fn approle_with(bao: &OpenBao, token: &[&str]) -> (String, String) {
    bao.ok(&["auth", "enable", "approle"]);
    let mut role = vec![
        "write",
        "auth/approle/role/orders",
        "token_policies=orders-dynamic",
    ];
    role.extend_from_slice(token);
    bao.ok(&role);
    let role_id = bao
        .ok(&["read", "-field=role_id", "auth/approle/role/orders/role-id"])
        .trim()
        .to_string();
    let secret_id = bao.approle_secret_id("orders");
    let lines = format!(
        "    vault:\n      address: {}\n      auth:\n        method: approle\n        role_id: {role_id}\n        secret_id_env: ORDERS_SECRET_ID\n",
        bao.addr
    );
    (lines, secret_id)
}

/// The policy `credfile policy --vault` prints for the case's manifest, written into OpenBao as
/// it is: the runs below succeed with exactly what it grants. Returns it.
fn write_policy(bao: &OpenBao, case: &Case) -> String {
    vault_case::write_policy(bao, case, "orders-dynamic")
}

fn apply(case: &Case, secret_id: &str) -> Output {
    case.credfile()
        .env("ORDERS_SECRET_ID", secret_id)
        .run(["apply", "--env", "test"])
}

/// Waits until `cond` holds (checked every 200 ms), at most `limit`.
fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn lines(path: &Path) -> usize {
    fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

fn state(case: &Case) -> serde_json::Value {
    serde_json::from_slice(&fs::read(case.root().join(".credfile-state.json")).unwrap()).unwrap()
}

/// Every output, the state file and the hook's environment and argv, against the canaries.
fn assert_clean(case: &Case, outs: &[&Output], hook_log: &Path) {
    let c = Canaries::global();
    for out in outs {
        assert_no_leak(&c, &out.stdout, "stdout");
        assert_no_leak(&c, &out.stderr, "stderr");
    }
    assert_no_leak(
        &c,
        fs::read(case.root().join(".credfile-state.json")).unwrap(),
        "the state file",
    );
    assert_no_leak(
        &c,
        fs::read(hook_log).unwrap_or_default(),
        "the hook's environment",
    );
}

#[test]
fn a_lease_logs_in_is_renewed_in_place_is_replaced_near_its_max_ttl_and_clean_revokes_it() {
    let bao = OpenBao::start();
    let pg = Postgres::start();
    // A lease lasts 12 s and at most 15 s: a renewal near the end is capped below a third.
    let db = Database::enable(&bao.addr, &bao.root_token, &pg, 12, 15);
    let creds = db.creds_path();
    let (vault, secret_id) = approle(&bao);
    let case = Case::new("vaultlease", "lease");
    let hook_log = case.path("hooks.log");
    case.manifest(
        &vault,
        &format!(
            "  - path: db\n    vault_lease: {creds}\n    on_change: [/bin/sh, -c, 'env >> {log}; echo \"$0 $*\" >> {log}; echo ran >> {log}.runs']\n",
            log = hook_log.display()
        ),
    );
    let runs = case.path("hooks.log.runs");
    let policy = write_policy(&bao, &case);
    for want in [
        format!("path \"{creds}\" {{\n  capabilities = [\"read\"]"),
        "path \"sys/leases/renew\" {\n  capabilities = [\"update\"]".to_string(),
    ] {
        assert!(policy.contains(&want), "{policy}");
    }

    let first = apply(&case, &secret_id);
    first.assert_code(0);
    let user = fs::read_to_string(case.root().join("db/username")).unwrap();
    let pass = fs::read_to_string(case.root().join("db/password")).unwrap();
    let token_file = case.root().join(".credfile-vault-token");
    let token = fs::read_to_string(&token_file).unwrap();
    for v in [&pass, &token] {
        Canaries::global().add(v.as_bytes());
    }
    assert_eq!(crate::support::mode_of(&token_file), 0o600);
    pg.login(&user, &pass)
        .expect("the written credentials log in");
    assert_eq!(lines(&runs), 1, "the first set ran its hook");
    let lease = state(&case)["vault"]["leases"][0]["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(lease.starts_with(&creds), "{lease}");
    // verify compares the live set without new credentials (no new role, no drift).
    let verified = case
        .credfile()
        .env("ORDERS_SECRET_ID", &secret_id)
        .run(["verify", "--env", "test"]);
    verified.assert_code(0);
    assert_eq!(
        state(&case)["vault"]["leases"][0]["lease_id"],
        lease.as_str()
    );

    // A second apply renews: same files (inode, mtime), no hook, a later expiry.
    // Late enough that the renewal reaches the maximum TTL: from then on the lease's TTL is
    // what is left of it, and a later renewal can grant no more.
    let (_, expire0) = lease_lookup(&bao.addr, &bao.root_token, &lease).unwrap();
    wait_until("the lease to age", Duration::from_secs(30), || {
        lease_lookup(&bao.addr, &bao.root_token, &lease).is_some_and(|(t, _)| t <= 8)
    });
    let before = snapshot(case.root().join("current"));
    let second = apply(&case, &secret_id);
    second.assert_code(0);
    assert_eq!(
        snapshot(case.root().join("current")),
        before,
        "renewal touched the set"
    );
    assert_eq!(lines(&runs), 1, "renewal ran a hook");
    let (_, expire1) = lease_lookup(&bao.addr, &bao.root_token, &lease).unwrap();
    assert!(expire1 > expire0, "not renewed: {expire0} -> {expire1}");
    assert_eq!(
        fs::read_to_string(&token_file).unwrap(),
        token,
        "the kept token changed"
    );

    // Near the maximum TTL a renewal is capped below a third: new credentials, the hook, and
    // the old role gone once the hook succeeded.
    wait_until(
        "the lease to near its max TTL",
        Duration::from_secs(30),
        || lease_lookup(&bao.addr, &bao.root_token, &lease).is_none_or(|(t, _)| t <= 3),
    );
    let third = apply(&case, &secret_id);
    third.assert_code(0);
    let user2 = fs::read_to_string(case.root().join("db/username")).unwrap();
    let pass2 = fs::read_to_string(case.root().join("db/password")).unwrap();
    Canaries::global().add(pass2.as_bytes());
    assert_ne!(user2, user, "{}", third.stderr);
    pg.login(&user2, &pass2)
        .expect("the new credentials log in");
    assert_eq!(lines(&runs), 2, "the new set ran its hook");
    assert!(
        !pg.role_exists(&user),
        "the old role is still in PostgreSQL"
    );
    assert!(lease_lookup(&bao.addr, &bao.root_token, &lease).is_none());
    assert!(
        state(&case)["vault"].get("retired").is_none(),
        "{}",
        state(&case)
    );

    assert_clean(&case, &[&first, &verified, &second, &third], &hook_log);

    // clean revokes: the role disappears, the token and the root go.
    let cleaned = case
        .credfile()
        .env("ORDERS_SECRET_ID", &secret_id)
        .run(["clean", "--env", "test"]);
    cleaned.assert_code(0);
    assert!(!pg.role_exists(&user2), "clean left the role");
    assert!(!token_file.exists());
    assert!(!case.root().exists(), "clean left the root");
    let (code, _, _) = bao.cli_as(token.trim(), &["token", "lookup"]);
    assert_ne!(code, 0, "the kept token still works after clean");
    assert_clean_outputs(&[&cleaned]);
}

fn assert_clean_outputs(outs: &[&Output]) {
    let c = Canaries::global();
    for out in outs {
        assert_no_leak(&c, &out.stdout, "stdout");
        assert_no_leak(&c, &out.stderr, "stderr");
    }
}

fn openssl(args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_certificate_matches_its_key_chains_to_the_ca_is_kept_and_renewed_once() {
    let bao = OpenBao::start();
    let pki = Pki::enable(&bao.addr, &bao.root_token, 3600);
    let (vault, secret_id) = approle(&bao);
    let case = Case::new("vaultpki", "pki");
    let hook_log = case.path("hooks.log");
    case.manifest(
        &vault,
        &format!(
            "  - path: tls\n    vault_pki:\n      mount: {}\n      role: {}\n      common_name: api.example.test\n      alt_names: [www.example.test]\n      ip_sans: [127.0.0.1]\n      ttl: 12s\n    on_change: [/bin/sh, -c, 'env >> {log}; echo ran >> {log}.runs']\n",
            pki.mount,
            pki.role,
            log = hook_log.display()
        ),
    );
    let runs = case.path("hooks.log.runs");
    let policy = write_policy(&bao, &case);
    let want = format!(
        "path \"{}/issue/{}\" {{\n  capabilities = [\"update\"]",
        pki.mount, pki.role
    );
    assert!(policy.contains(&want), "{policy}");
    let first = apply(&case, &secret_id);
    first.assert_code(0);
    let dir = case.root().join("tls");
    let key = fs::read_to_string(dir.join("key.pem")).unwrap();
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        Canaries::global().add(line.as_bytes());
    }
    assert_eq!(
        crate::support::mode_of(case.root().join("current/tls/key.pem")),
        0o400
    );
    // The certificate and the key match, and it chains to the CA.
    let cert = dir.join("cert.pem");
    let cert_pub = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-pubkey"]);
    let key_pub = openssl(&[
        "pkey",
        "-in",
        dir.join("key.pem").to_str().unwrap(),
        "-pubout",
    ]);
    assert_eq!(cert_pub, key_pub, "the certificate is not for this key");
    let ca = case.path("ca.pem");
    fs::write(&ca, &pki.ca_pem).unwrap();
    let verified = openssl(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        "-untrusted",
        dir.join("chain.pem").to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    assert!(verified.contains("OK"), "{verified}");
    let san = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    assert!(
        san.contains("www.example.test") && san.contains("127.0.0.1"),
        "{san}"
    );
    assert_eq!(lines(&runs), 1);

    // Unchanged: nothing touched, no hook.
    let before = snapshot(case.root().join("current"));
    let second = apply(&case, &secret_id);
    second.assert_code(0);
    assert_eq!(snapshot(case.root().join("current")), before);
    assert_eq!(lines(&runs), 1);

    // Once less than a third of its 12 s is left: issued once more, the hook runs once.
    let record = state(&case)["vault"]["certificates"][0].clone();
    let (serial, expires) = (
        record["serial"].as_str().unwrap().to_string(),
        record["expires_at"].as_u64().unwrap(),
    );
    wait_until(
        "a third of the lifetime left",
        Duration::from_secs(30),
        || {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            now + 4 >= expires
        },
    );
    let third = apply(&case, &secret_id);
    third.assert_code(0);
    assert_eq!(lines(&runs), 2, "the new certificate ran the hook");
    let renewed = state(&case)["vault"]["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(renewed, serial);
    let fourth = apply(&case, &secret_id);
    fourth.assert_code(0);
    assert_eq!(lines(&runs), 2, "renewed twice");
    assert_clean(&case, &[&first, &second, &third, &fourth], &hook_log);
}

/// The engine set-up the tests rely on: a lease's credentials log in to PostgreSQL, revoking
/// drops the role; the pki role issues.
#[test]
fn engines_issue_leases_that_log_in_and_certificates() {
    let bao = OpenBao::start();
    let pg = Postgres::start();
    let db = Database::enable(&bao.addr, &bao.root_token, &pg, 20, 60);
    let v = ok(&bao.addr, &bao.root_token, "GET", &db.creds_path(), None);
    let user = v["data"]["username"].as_str().unwrap().to_string();
    let pass = v["data"]["password"].as_str().unwrap().to_string();
    let lease = v["lease_id"].as_str().unwrap().to_string();
    pg.login(&user, &pass).unwrap();
    assert!(lease_lookup(&bao.addr, &bao.root_token, &lease).is_some());
    ok(
        &bao.addr,
        &bao.root_token,
        "PUT",
        "sys/leases/revoke",
        Some(&json!({ "lease_id": lease })),
    );
    assert!(lease_lookup(&bao.addr, &bao.root_token, &lease).is_none());
    assert!(!pg.role_exists(&user));
    let pki = Pki::enable(&bao.addr, &bao.root_token, 3600);
    let c = ok(
        &bao.addr,
        &bao.root_token,
        "POST",
        &format!("{}/issue/{}", pki.mount, pki.role),
        Some(&json!({"common_name": "api.example.test", "ttl": "60s"})),
    );
    assert!(
        c["data"]["certificate"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
}

/// `verify` looks the kept token up (docs/src/vault-dynamic.md): a token whose maximum TTL
/// (`explicit_max_ttl`) ends before a lease would is named with the lease, since Vault revokes
/// the lease with it; a token that is gone is said too (its leases went with it).
#[test]
fn verify_warns_when_the_kept_token_ends_before_its_leases() {
    let bao = OpenBao::start();
    let pg = Postgres::start();
    // Leases of 5 min (10 at most), under a token that cannot live past 2 min.
    let db = Database::enable(&bao.addr, &bao.root_token, &pg, 300, 600);
    let (vault, secret_id) = approle_with(&bao, &["token_ttl=2m", "token_explicit_max_ttl=2m"]);
    let case = Case::new("vaulttokenttl", "tokenttl");
    case.manifest(
        &vault,
        &format!("  - path: db\n    vault_lease: {}\n", db.creds_path()),
    );
    write_policy(&bao, &case);
    let applied = apply(&case, &secret_id);
    applied.assert_code(0);
    let token = fs::read_to_string(case.root().join(".credfile-vault-token")).unwrap();
    Canaries::global().add(token.as_bytes());
    let lease = state(&case)["vault"]["leases"][0]["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    let verify = || {
        case.credfile()
            .env("ORDERS_SECRET_ID", &secret_id)
            .run(["verify", "--env", "test"])
    };
    let early = verify();
    early.assert_code(0);
    assert_has_all(
        &early.stderr,
        &[
            "the kept Vault token ends before the lease",
            &format!("lease_id={lease}"),
            "token_max_ttl",
        ],
    );

    // The token revoked behind credfile's back: its leases are gone, and verify says so.
    let (code, _, err) = bao.cli_as(token.trim(), &["token", "revoke", "-self"]);
    assert_eq!(code, 0, "{err}");
    let gone = verify();
    gone.assert_code(0);
    assert!(
        gone.stderr.contains("the kept Vault token is gone"),
        "{}",
        gone.stderr
    );
    assert_clean_outputs(&[&applied, &early, &gone]);
}

/// A token with room to spare: no warning about it.
#[test]
fn verify_is_quiet_about_a_kept_token_that_outlives_its_leases() {
    let bao = OpenBao::start();
    let pg = Postgres::start();
    let db = Database::enable(&bao.addr, &bao.root_token, &pg, 60, 120);
    let (vault, secret_id) = approle_with(&bao, &["token_ttl=10m", "token_explicit_max_ttl=1h"]);
    let case = Case::new("vaulttokenok", "tokenok");
    case.manifest(
        &vault,
        &format!("  - path: db\n    vault_lease: {}\n", db.creds_path()),
    );
    write_policy(&bao, &case);
    apply(&case, &secret_id).assert_code(0);
    let verified = case
        .credfile()
        .env("ORDERS_SECRET_ID", &secret_id)
        .run(["verify", "--env", "test"]);
    verified.assert_code(0);
    assert!(
        verified.stderr.contains("the kept Vault token lives until"),
        "{}",
        verified.stderr
    );
    assert!(!verified.stderr.contains("kept Vault token ends before"));
    assert!(!verified.stderr.contains("kept Vault token is gone"));
}

/// `credfile run` with a lease and a certificate (docs/src/run.md): fresh credentials for the
/// command alone, that work while it runs; when it exits the lease and the run's token are
/// revoked (PostgreSQL drops the role). `--every` with them is refused before any sign-in.
#[test]
fn run_gets_fresh_leased_credentials_revoked_when_the_command_exits() {
    if !crate::support::is_root() {
        eprintln!("skipped: credfile run needs root (or user namespaces) here");
        return;
    }
    let bao = OpenBao::start();
    let pg = Postgres::start();
    let db = Database::enable(&bao.addr, &bao.root_token, &pg, 300, 600);
    let pki = Pki::enable(&bao.addr, &bao.root_token, 3600);
    let (vault, secret_id) = approle(&bao);
    let case = Case::new("vaultrun", "run");
    fs::create_dir(case.root()).unwrap();
    case.manifest(
        &vault,
        &format!(
            "  - path: db\n    vault_lease: {}\n  - path: tls\n    vault_pki: {{ mount: {}, role: {}, common_name: api.example.test }}\n",
            db.creds_path(),
            pki.mount,
            pki.role
        ),
    );
    write_policy(&bao, &case);
    let out_dir = case.path("out");
    fs::create_dir(&out_dir).unwrap();
    // The command logs in with the files it sees, and reports the user name (not a secret).
    let script = format!(
        "set -e\nR=$CREDFILE_RUN_ROOT\ncp $R/db/username {out}/user\ngrep -q 'BEGIN CERTIFICATE' $R/tls/cert.pem\nPGPASSWORD=$(cat $R/db/password) /usr/lib/postgresql/15/bin/psql -X -w -At -h 127.0.0.1 -p {port} -U $(cat $R/db/username) -d postgres -c 'SELECT current_user' > {out}/psql\n",
        out = out_dir.display(),
        port = pg.port()
    );
    let run = case
        .credfile()
        .env("ORDERS_SECRET_ID", &secret_id)
        .run(["run", "--env", "test", "--", "/bin/sh", "-c", &script]);
    run.assert_code(0);
    let user = fs::read_to_string(out_dir.join("user")).unwrap();
    assert_eq!(
        fs::read_to_string(out_dir.join("psql")).unwrap().trim(),
        user.trim(),
        "the leased credentials did not log in during the run"
    );
    assert!(!pg.role_exists(&user), "the lease outlived the command");
    let (code, _) = lookup_run_token(&bao, &run);
    assert_ne!(code, 0, "the run's token outlived the command");
    assert!(
        fs::read_dir(case.root()).unwrap().next().is_none(),
        "the host's root is not empty"
    );
    assert_clean_outputs(&[&run]);

    let every = case.credfile().env("ORDERS_SECRET_ID", &secret_id).run([
        "run",
        "--env",
        "test",
        "--every",
        "5m",
        "--",
        "/bin/true",
    ]);
    every.assert_code(2);
    assert_has_all(
        &every.stderr,
        &["credfile.yaml:", "vault_lease", "--every", "apply --every"],
    );
    assert!(
        !every.stderr.contains("signed in to Vault"),
        "{}",
        every.stderr
    );
}
