//! Under sudo, the files named for Vault sign-in (an AppRole secret id file, `ca_file`) are read
//! with the invoking user's rights (docs/src/vault.md, "Signing in"; docs/src/sudo.md): a
//! root-only file is refused, though root could read it; the runner's own file works. Debian's
//! real sudo, a real runner user, a real OpenBao. Root only (tests/it/sudo_support.rs).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::sudo_support::{Host, IDENTITY, sudo_ready};
use crate::support::vault_case::canary;
use crate::support::{OpenBao, Proxy, moto_endpoint};

fn install(host: &Host, bao: &OpenBao, prefix: &str, auth_extra: &str) {
    let text = format!(
        "version: 1\napp: payments\ndefaults:\n  region: us-east-1\n  root: {root}\n  owner: {app}\n  group: {app}\n  mode: \"0440\"\n  dir_mode: \"0710\"\nenvironments:\n  production:\n    vault:\n      address: {addr}\n{auth_extra}      auth:\n        method: approle\n        role_id: sudo-role\n        secret_id_file: {sid}\nfiles:\n  - path: db/password\n    vault: secret/{prefix}/db\n    key: password\n",
        root = host.root().display(),
        app = host.app,
        addr = bao.addr,
        sid = secret_id_path(host).display(),
    );
    fs::write(&host.manifest, text).unwrap();
    fs::set_permissions(&host.manifest, fs::Permissions::from_mode(0o644)).unwrap();
}

fn secret_id_path(host: &Host) -> std::path::PathBuf {
    host.dir.path().join("secret-id")
}

fn owned(path: &Path, uid: u32, gid: u32, mode: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn sign_in_files_are_read_as_the_invoking_user_under_sudo() {
    if sudo_ready("sign_in_files_are_read_as_the_invoking_user_under_sudo").is_none() {
        return;
    }
    let host = Host::new();
    let proxy = Proxy::start(&moto_endpoint());
    let bao = OpenBao::start();
    let prefix = crate::support::unique_prefix("vault-sudo");
    let value = canary();
    bao.kv_put(
        &format!("secret/{prefix}/db"),
        &[&format!("password={value}")],
    );
    bao.ok(&["auth", "enable", "approle"]);
    bao.ok_stdin(
        &["policy", "write", "reader", "-"],
        &format!("path \"secret/data/{prefix}/*\" {{ capabilities = [\"read\"] }}\n"),
    );
    bao.ok(&[
        "write",
        "auth/approle/role/sudo",
        "role_id=sudo-role",
        "token_policies=reader",
    ]);
    let secret_id = bao.approle_secret_id("sudo");
    let sid = secret_id_path(&host);
    fs::write(&sid, &secret_id).unwrap();
    install(&host, &bao, &prefix, "");
    let run = || host.sudo(&proxy).run(host.args("apply"));

    // Root's own secret id file (0600 root): root could read it, the runner cannot.
    owned(&sid, 0, 0, 0o600);
    let out = run();
    out.assert_code(IDENTITY);
    let want = format!("cannot read the secret id file {}", sid.display());
    assert!(
        out.stderr.contains(&want),
        "missing {want:?} in {}",
        out.stderr
    );
    assert!(!host.root().exists(), "nothing may be written");

    // The runner's own file: the run signs in and writes.
    owned(&sid, host.runner_uid, host.gid, 0o600);
    let out = run();
    out.assert_code(0);
    assert_eq!(
        fs::read_to_string(host.root().join("current/db/password")).unwrap(),
        value
    );

    // A root-only `ca_file` is refused the same way.
    let ca = host.dir.path().join("vault-ca.pem");
    fs::write(&ca, crate::support::k8s::ca_cert_pem()).unwrap();
    owned(&ca, 0, 0, 0o600);
    install(
        &host,
        &bao,
        &prefix,
        &format!("      ca_file: {}\n", ca.display()),
    );
    let out = run();
    out.assert_code(IDENTITY);
    let want = format!("cannot read the CA file (`vault.ca_file`) {}", ca.display());
    assert!(
        out.stderr.contains(&want),
        "missing {want:?} in {}",
        out.stderr
    );
}
