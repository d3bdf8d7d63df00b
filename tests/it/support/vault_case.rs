//! What the Vault tests share (docs/src/vault.md): a started OpenBao with a case whose
//! `secret/${prefix}/db` holds a canary password, the manifest's `vault:` lines, the policy
//! `credfile policy --vault` prints written into OpenBao, and the token a run signed in for.

use super::{Canaries, Case, OpenBao, Output, canary_value};

/// A canary registered in the global registry (the runner checks every output against it).
pub fn canary() -> String {
    let v = canary_value();
    Canaries::global().add(&v);
    v
}

/// The environment's `vault:` lines for `bao`, with `auth` (indented lines) under them.
pub fn vault_env(bao: &OpenBao, auth: &str) -> String {
    format!("    vault:\n      address: {}\n{auth}", bao.addr)
}

/// One file, `db.password`, from the `password` key of `secret/${prefix}/db`.
pub const DB_FILE: &str =
    "  - path: db.password\n    vault: \"secret/${prefix}/db\"\n    key: password\n";

/// `bao kv put secret/PREFIX/db password=CANARY`: the canary.
pub fn seed_db(bao: &OpenBao, case: &Case) -> String {
    let value = canary();
    bao.kv_put(
        &format!("secret/{}/db", case.prefix),
        &[&format!("password={value}")],
    );
    value
}

/// A started OpenBao and a case (`app`, `name`) with [`seed_db`]'s canary.
pub fn vault_case(app: &'static str, name: &str) -> (OpenBao, Case, String) {
    let bao = OpenBao::start();
    let case = Case::new(app, name);
    let value = seed_db(&bao, &case);
    (bao, case, value)
}

/// Writes the policy `credfile policy --vault --env test` prints into bao as `name`; the policy.
#[track_caller]
pub fn write_policy(bao: &OpenBao, case: &Case, name: &str) -> String {
    let policy = case.run(&["policy", "--vault"]);
    policy.assert_code(0);
    bao.ok_stdin(&["policy", "write", name, "-"], &policy.stdout);
    policy.stdout
}

/// The accessor the run's "signed in to Vault" line names.
#[track_caller]
pub fn signed_in_accessor(out: &Output) -> String {
    out.stderr
        .lines()
        .find(|l| l.contains("signed in to Vault"))
        .and_then(|l| l.split("accessor=").nth(1))
        .and_then(|a| a.split_whitespace().next())
        .expect("the sign-in line names the token's accessor")
        .to_string()
}

/// `bao token lookup` of the token the run signed in for: (exit code, stderr).
pub fn lookup_run_token(bao: &OpenBao, out: &Output) -> (i32, String) {
    let (code, _, err) = bao.cli(&["token", "lookup", "-accessor", &signed_in_accessor(out)]);
    (code, err)
}

/// Every one of `wants` is in `text`.
#[track_caller]
pub fn assert_has_all<S: AsRef<str>>(text: &str, wants: &[S]) {
    for want in wants {
        let want = want.as_ref();
        assert!(text.contains(want), "missing {want:?} in {text}");
    }
}
