//! Under sudo, root reads nothing for the runner that the runner could not read itself (issue
//! 17, items 1 and 2), with Debian's real sudo and a real unprivileged runner user:
//!
//! - with a rule written with wildcards (test-only), `validate`, `lint`, `policy`, `audit
//!   reuse` and `whoami` on a root-only file (or one naming a root-only template) say "not
//!   readable by USER" and nothing else: no content, no hint of whether the path exists;
//! - a `ci_variable_file:` variable the runner sets is read with the runner's rights: a
//!   root-only file, a link, a FIFO and an oversized file are refused, the runner's own file
//!   works; the step summary is appended as the runner, not through a planted link;
//! - variables that would make the AWS SDK read a file as root are refused.
//!
//! Root only; see tests/it/sudo_support.rs for what the host gets and gives back.

use crate::sudo_support;
use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sudo_support::*;
use support::{Canaries, Output, Proxy, canary_value, moto_endpoint, uid_gid};

/// A root-owned file with `text` and `mode`.
fn root_file(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory the runner owns (0700): what it may plant files, links and FIFOs in.
fn runner_dir(host: &Host) -> PathBuf {
    let dir = host.dir.path().join("runner");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    chown(&dir, host.runner_uid, host.gid);
    dir
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

/// stdout and stderr with `path` replaced and without the timestamped log lines, to compare
/// two runs that differ only in the path.
fn normalized(out: &Output, path: &str) -> String {
    format!("{}\n{}", out.stdout, out.stderr)
        .lines()
        .filter(|l| !l.starts_with(|c: char| c.is_ascii_digit()))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(path, "<PATH>")
}

#[test]
fn under_a_wildcard_rule_root_reads_nothing_the_runner_cannot() {
    if sudo_ready("under_a_wildcard_rule_root_reads_nothing_the_runner_cannot").is_none() {
        return;
    }
    let mut host = Host::new();
    // What docs/src/sudo.md warns against, as a second fence must expect it.
    host.add_rule(
        "w",
        &format!(
            "%{g} ALL=(root) NOPASSWD: {c} validate *, {c} lint *, {c} policy *, {c} audit reuse *, {c} whoami *\n",
            g = host.group,
            c = CREDFILE
        ),
    );
    let proxy = Proxy::start(&moto_endpoint());
    // Root-only: a file in a 0700 directory (the first line as in /etc/shadow), a 0600 file in
    // an open directory, and a name that does not exist in the 0700 directory.
    let canary = canary_value();
    Canaries::global().add(&canary);
    let private = host.dir.path().join("private");
    fs::create_dir(&private).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let shadow = private.join("shadow.yaml");
    root_file(
        &shadow,
        &format!("root:{canary}:19000:0:99999:7:::\n"),
        0o644,
    );
    let closed = host.dir.path().join("closed.yaml");
    root_file(&closed, &format!("{canary}: [\n"), 0o600);
    let absent = private.join("absent.yaml");

    let commands: [&[&str]; 5] = [
        &["validate"],
        &["lint"],
        &["policy", "--env", "production"],
        &["audit", "reuse", "--env", "production"],
        &["whoami", "--env", "production"],
    ];
    for command in commands {
        let mut seen: Vec<String> = Vec::new();
        for path in [&shadow, &closed, &absent] {
            let p = path.to_str().unwrap();
            let args = [&["-n", CREDFILE][..], command, &["--manifest", p]].concat();
            // Output checks every byte for the canary.
            let out = host.sudo(&proxy).run(&args);
            out.assert_code(USAGE);
            let expected = format!(
                "refusing the manifest {p} under sudo: it is not readable by {}",
                host.runner
            );
            assert!(out.stderr.contains(&expected), "{args:?}\n{}", out.stderr);
            for said in [
                "No such file",
                "Permission denied",
                "os error",
                "line 1",
                "owned by",
            ] {
                assert!(
                    !out.stderr.contains(said),
                    "{args:?}: {said}\n{}",
                    out.stderr
                );
            }
            seen.push(normalized(&out, p));
        }
        // The same answer whether the file exists or not.
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "{command:?}: {seen:#?}"
        );
    }

    // A manifest the runner may read, naming a template file it may not.
    let template = private.join("t.j2");
    root_file(&template, &format!("{canary}\n{{{{ v }}}}\n"), 0o644);
    let manifest = host.dir.path().join("tpl.yaml");
    root_file(
        &manifest,
        "version: 1\napp: a\nenvironments:\n  production:\n    region: us-east-1\n    root: /run/credfile/a\nfiles:\n  - path: x\n    format: template\n    template_file: private/t.j2\n    values: { v: { ci_variable: V } }\n",
        0o644,
    );
    let m = manifest.to_str().unwrap();
    for command in [
        &["validate"][..],
        &["lint"],
        &["policy", "--env", "production"],
    ] {
        let args = [&["-n", CREDFILE][..], command, &["--manifest", m]].concat();
        let out = host.sudo(&proxy).run(&args);
        assert_ne!(out.status_code, 0, "{args:?}");
        let said = format!("{}{}", out.stdout, out.stderr);
        assert!(
            said.contains(&format!(
                "refusing template file {} under sudo: it is not readable by {}",
                template.display(),
                host.runner
            )),
            "{args:?}\n{said}"
        );
    }
    assert_eq!(proxy.total(), 0, "no AWS call");
}

/// The manifest of the CI-variable cases: one file from `ci_variable_file: CF_DB_FILE`.
fn install_ci_manifest(host: &Host) {
    root_file(
        &host.manifest,
        &format!(
            "version: 1\napp: payments\ndefaults:\n  region: us-east-1\n  root: {root}\n  owner: {app}\n  group: {app}\n  mode: \"0440\"\n  dir_mode: \"0710\"\nenvironments:\n  production:\n    protected: true\n    account: \"{ACCOUNT}\"\nfiles:\n  - path: db/password\n    ci_variable_file: CF_DB_FILE\n",
            root = host.root().display(),
            app = host.app,
        ),
        0o644,
    );
}

#[test]
fn a_ci_variable_file_under_sudo_is_read_with_the_runners_rights() {
    if sudo_ready("a_ci_variable_file_under_sudo_is_read_with_the_runners_rights").is_none() {
        return;
    }
    let mut host = Host::new();
    // What an admin adds for `ci_variable_file:` (and, to show it refused, an SDK file variable).
    host.add_rule(
        "v",
        "Defaults!/usr/local/bin/credfile env_keep += \"CF_DB_FILE AWS_SHARED_CREDENTIALS_FILE\"\n",
    );
    install_ci_manifest(&host);
    let proxy = Proxy::start(&moto_endpoint());
    let mine = runner_dir(&host);
    let target = host.root().join("db/password");
    let apply = |var: &Path| {
        host.sudo(&proxy)
            .env("CF_DB_FILE", var.to_str().unwrap())
            .run(host.args("apply"))
    };

    // The runner's own file: read, written for the app.
    let value = canary_value();
    Canaries::global().add(&value);
    let own = mine.join("db-password");
    fs::write(&own, &value).unwrap();
    fs::set_permissions(&own, fs::Permissions::from_mode(0o600)).unwrap();
    chown(&own, host.runner_uid, host.gid);
    apply(&own).assert_code(0);
    assert_eq!(fs::read(&target).unwrap(), value.as_bytes());
    assert_eq!(uid_gid(&target), (host.app_uid, host.app_gid));

    // Root-only, present or absent: the runner's own answer, the same for both, and nothing
    // copied.
    let secret = canary_value();
    Canaries::global().add(&secret);
    let private = host.dir.path().join("private");
    fs::create_dir(&private).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let shadow = private.join("key");
    root_file(&shadow, &secret, 0o644);
    let mut seen = Vec::new();
    for path in [&shadow, &private.join("absent")] {
        let out = apply(path);
        assert_ne!(out.status_code, 0);
        assert!(
            out.stderr
                .contains("cannot read the file `CF_DB_FILE` names")
                && out.stderr.contains("Permission denied"),
            "{}",
            out.stderr
        );
        seen.push(normalized(&out, path.to_str().unwrap()));
    }
    assert_eq!(seen[0], seen[1], "no hint of which one exists");
    assert_eq!(
        fs::read(&target).unwrap(),
        value.as_bytes(),
        "left as it was"
    );

    // A link the runner planted to a file root may read: not followed.
    let link = mine.join("link");
    std::os::unix::fs::symlink(&shadow, &link).unwrap();
    chown(&link, host.runner_uid, host.gid);
    let out = apply(&link);
    assert_ne!(out.status_code, 0);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);

    // A FIFO: refused at once, never waited on. (Before, root's open waited for a writer; the
    // writer here would have handed it a value.)
    let fifo = mine.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    chown(&fifo, host.runner_uid, host.gid);
    let fed = canary_value();
    Canaries::global().add(&fed);
    let writer = {
        let (fifo, fed) = (fifo.clone(), fed.clone());
        std::thread::spawn(move || {
            if let Ok(mut f) = fs::OpenOptions::new().write(true).open(&fifo) {
                let _ = std::io::Write::write_all(&mut f, fed.as_bytes());
            }
        })
    };
    let out = apply(&fifo);
    assert_ne!(out.status_code, 0);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
    // Release the writer, whenever it gets to its open: a reader stays open until it is done.
    let reader = fs::OpenOptions::new()
        .read(true)
        .custom_flags_nonblock()
        .open(&fifo)
        .unwrap();
    writer.join().unwrap();
    drop(reader);
    assert_eq!(fs::read(&target).unwrap(), value.as_bytes());

    // Over the cap.
    let big = mine.join("big");
    fs::write(&big, vec![b'x'; (1 << 20) + 1]).unwrap();
    chown(&big, host.runner_uid, host.gid);
    let out = apply(&big);
    assert_ne!(out.status_code, 0);
    assert!(out.stderr.contains("larger than 1 MiB"), "{}", out.stderr);

    // A variable that would have the AWS SDK read a file as root.
    let out = host
        .sudo(&proxy)
        .env("CF_DB_FILE", own.to_str().unwrap())
        .env("AWS_SHARED_CREDENTIALS_FILE", shadow.to_str().unwrap())
        .run(host.args("apply"));
    out.assert_code(USAGE);
    assert!(
        out.stderr.contains(&format!(
            "refusing `AWS_SHARED_CREDENTIALS_FILE` under sudo (invoked by {})",
            host.runner
        )),
        "{}",
        out.stderr
    );
    assert_eq!(proxy.total(), 0, "CI variables need no AWS call");
}

#[test]
fn under_sudo_the_step_summary_is_appended_as_the_runner() {
    if sudo_ready("under_sudo_the_step_summary_is_appended_as_the_runner").is_none() {
        return;
    }
    let mut host = Host::new();
    host.add_rule(
        "v",
        "Defaults!/usr/local/bin/credfile env_keep += \"CF_DB_FILE\"\n",
    );
    install_ci_manifest(&host);
    let proxy = Proxy::start(&moto_endpoint());
    let mine = runner_dir(&host);
    let own = mine.join("db-password");
    fs::write(&own, canary_value()).unwrap();
    chown(&own, host.runner_uid, host.gid);
    let run = |summary: &Path| {
        host.sudo(&proxy)
            .env("CF_DB_FILE", own.to_str().unwrap())
            .env("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())
            .run(host.args("apply"))
    };

    // The shipped rule keeps GITHUB_STEP_SUMMARY: the runner's file, appended by the runner.
    let summary = mine.join("summary.md");
    run(&summary).assert_code(0);
    assert!(
        fs::read_to_string(&summary).unwrap().contains("payments"),
        "a summary was written"
    );
    assert_eq!(
        uid_gid(&summary),
        (host.runner_uid, host.gid),
        "created as the runner"
    );

    // A link the runner planted to a root-owned file: the file stays as it was.
    let precious = host.dir.path().join("precious");
    root_file(&precious, "root's\n", 0o644);
    let link = mine.join("summary-link.md");
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    chown(&link, host.runner_uid, host.gid);
    run(&link).assert_code(0);
    assert_eq!(fs::read_to_string(&precious).unwrap(), "root's\n");
}

/// `O_NONBLOCK` on an `OpenOptions`, for opening a FIFO's read end without waiting.
trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(nix::libc::O_NONBLOCK)
    }
}
