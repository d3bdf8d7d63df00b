//! `apply --every` with a Vault source (docs/src/vault.md, "Signing in"): the token credfile
//! signed in for is kept between rounds and renewed before it expires (seen through bao: same
//! accessor, a renewal time, one login), and revoked when SIGTERM stops the loop.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::vault_case::{DB_FILE, vault_case, write_policy};
use crate::support::{Credfile, OpenBao, Output, Proxy};

/// Polls `what` until it holds, failing the test after `limit` (a deadline, not a measurement).
fn wait_for(limit: Duration, label: &str, mut what: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !what() {
        assert!(Instant::now() < deadline, "timed out waiting for {label}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The token of policy `policy` bao knows of: (accessor, lookup data).
fn token_with_policy(bao: &OpenBao, policy: &str) -> Option<(String, serde_json::Value)> {
    let (code, out, _) = bao.cli(&["list", "-format=json", "auth/token/accessors"]);
    if code != 0 {
        return None;
    }
    let accessors: Vec<String> = serde_json::from_str(&out).unwrap_or_default();
    accessors.into_iter().find_map(|a| {
        let data = lookup(bao, &a)?;
        let has = data["policies"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x == policy));
        has.then_some((a, data))
    })
}

/// `apply --env test --every 1s` with `driver` run in a thread once credfile has started, then
/// SIGTERM to credfile; a failed assertion of the driver fails the test after the run.
fn every_until_driver_done(cmd: Credfile, driver: impl FnOnce() + Send + 'static) -> Output {
    let driver = Mutex::new(Some(driver));
    let handle: Arc<Mutex<Option<std::thread::JoinHandle<()>>>> = Arc::default();
    let handle2 = handle.clone();
    let out = cmd
        .on_spawn(move |pid| {
            let Some(driver) = driver.lock().unwrap().take() else {
                return;
            };
            *handle2.lock().unwrap() = Some(std::thread::spawn(move || {
                driver();
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }));
        })
        .run(["apply", "--env", "test", "--every", "1s"]);
    if let Some(h) = handle.lock().unwrap().take() {
        h.join().expect("the driver's assertions");
    }
    out
}

/// Waits (bounded) until bao knows a token of `policy`: its accessor.
fn wait_for_token(bao: &OpenBao, policy: &str, label: &str) -> String {
    let mut accessor = String::new();
    wait_for(Duration::from_secs(30), label, || {
        match token_with_policy(bao, policy) {
            Some((a, _)) => {
                accessor = a;
                true
            }
            None => false,
        }
    });
    accessor
}

fn lookup(bao: &OpenBao, accessor: &str) -> Option<serde_json::Value> {
    let (code, out, _) = bao.cli(&["token", "lookup", "-format=json", "-accessor", accessor]);
    (code == 0).then(|| serde_json::from_str::<serde_json::Value>(&out).unwrap()["data"].clone())
}

#[test]
fn every_keeps_and_renews_the_token_and_sigterm_revokes_it() {
    let (bao, case, _) = vault_case("vaultevery", "every");
    let bao = Arc::new(bao);
    let proxy = Arc::new(Proxy::start(&bao.addr));
    case.manifest(
        &format!(
            "    vault:\n      address: {}\n      auth: {{ method: approle, role_id: every-role, secret_id_env: EVERY_SECRET_ID }}\n",
            proxy.endpoint()
        ),
        DB_FILE,
    );
    write_policy(&bao, &case, "credfile-vaultevery-test");
    bao.ok(&["auth", "enable", "approle"]);
    // A short token TTL, so a few rounds of one second reach the renewal point (a third left).
    bao.ok(&[
        "write",
        "auth/approle/role/every",
        "role_id=every-role",
        "token_policies=credfile-vaultevery-test",
        "token_ttl=6s",
        "token_max_ttl=5m",
    ]);
    let secret_id = bao.approle_secret_id("every");

    let seen: Arc<Mutex<Option<(String, usize)>>> = Arc::default();
    let (bao2, proxy2, seen2) = (bao.clone(), proxy.clone(), seen.clone());
    let reads = format!("GET /v1/secret/data/{}/db", case.prefix);
    let count = move |p: &Proxy| p.requests().iter().filter(|(_, r)| *r == reads).count();
    let cmd = case
        .credfile()
        .env("EVERY_SECRET_ID", &secret_id)
        .timeout(Duration::from_secs(90));
    let out = every_until_driver_done(cmd, move || {
        let (bao, proxy, seen) = (bao2, proxy2, seen2);
        let accessor = wait_for_token(&bao, "credfile-vaultevery-test", "credfile's token in bao");
        // The same token, renewed by a later round (bao records the renewal).
        wait_for(Duration::from_secs(40), "a renewal", || {
            lookup(&bao, &accessor).is_some_and(|d| !d["last_renewal_time"].is_null())
        });
        // One more round reads with it, then stop.
        let after = count(&proxy);
        wait_for(Duration::from_secs(20), "a round after the renewal", || {
            count(&proxy) > after
        });
        *seen.lock().unwrap() = Some((accessor, count(&proxy)));
    });
    out.assert_code(0);
    let (accessor, rounds) = seen.lock().unwrap().clone().expect("the driver ran");
    assert!(rounds >= 3, "{rounds} rounds");
    // One login for every round; the renewals went through renew-self.
    let logins = proxy
        .requests()
        .iter()
        .filter(|(_, r)| r == "POST /v1/auth/approle/login")
        .count();
    assert_eq!(logins, 1, "{:?}", proxy.requests());
    assert!(
        proxy
            .requests()
            .iter()
            .any(|(_, r)| r == "POST /v1/auth/token/renew-self"),
        "{:?}",
        proxy.requests()
    );
    assert!(
        out.stderr.contains("renewed the Vault token"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("round failed"), "{}", out.stderr);
    // SIGTERM between rounds revoked it: bao no longer knows the accessor.
    assert!(
        out.stderr.contains("revoked the Vault token"),
        "{}",
        out.stderr
    );
    assert!(
        lookup(&bao, &accessor).is_none(),
        "the token outlived SIGTERM"
    );
}

#[test]
fn every_signs_in_anew_when_the_token_is_not_renewable() {
    use crate::support::aws_auth::{AwsAuth, AwsRole};
    use crate::support::moto_endpoint;
    let (bao, case, _) = vault_case("vaultrenew", "every-new");
    let bao = Arc::new(bao);
    let auth = Arc::new(AwsAuth::start(
        &bao.addr,
        &bao.root_token,
        &moto_endpoint(),
        None,
        ("testing", "testing"),
    ));
    case.manifest(
        &format!(
            "    vault:\n      address: {}\n      auth: {{ method: aws, role: deploy }}\n",
            auth.addr()
        ),
        DB_FILE,
    );
    write_policy(&bao, &case, "credfile-vaultrenew-test");
    auth.role(
        "deploy",
        AwsRole {
            bound_arn: "arn:aws:sts::123456789012:user/moto".into(),
            policies: vec!["credfile-vaultrenew-test".into()],
            ttl: "4s".into(),
            renewable: false,
        },
    );
    let first: Arc<Mutex<Option<(String, bool)>>> = Arc::default();
    let (bao2, auth2, first2) = (bao.clone(), auth.clone(), first.clone());
    let cmd = case.credfile().timeout(Duration::from_secs(90));
    let out = every_until_driver_done(cmd, move || {
        let (bao, auth, first) = (bao2, auth2, first2);
        let accessor = wait_for_token(&bao, "credfile-vaultrenew-test", "credfile's first token");
        // Near its end it cannot be renewed: a second login, the first token revoked.
        wait_for(Duration::from_secs(40), "a second login", || {
            auth.logins().len() >= 2
        });
        wait_for(Duration::from_secs(10), "the first token revoked", || {
            lookup(&bao, &accessor).is_none()
        });
        *first.lock().unwrap() = Some((accessor, true));
    });
    out.assert_code(0);
    assert!(first.lock().unwrap().is_some(), "the driver ran");
    assert!(
        !out.stderr.contains("renewed the Vault token"),
        "{}",
        out.stderr
    );
    // It signed in anew before the token expired: no round failed for it.
    assert!(!out.stderr.contains("round failed"), "{}", out.stderr);
    // Every token credfile got is gone after SIGTERM.
    assert!(
        token_with_policy(&bao, "credfile-vaultrenew-test").is_none(),
        "a token outlived the run"
    );
}
