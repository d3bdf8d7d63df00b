//! The host the sudo tests share (tests/it/sudo.rs, tests/it/sudo_reads.rs, tests/it/sudo_paths.rs):
//! throwaway users and groups, the shipped sudoers rule installed with its placeholders
//! replaced, the binary at /usr/local/bin/credfile, and a GitHub job's environment. Everything
//! is taken back when the [`Host`] is dropped; one test at a time, across processes.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::support::{
    self, Canaries, Credfile, GithubTokenEndpoint, Proxy, Seeder, canary_value, is_root,
    moto_endpoint, unique_prefix,
};

pub const USAGE: i32 = 2;
pub const IDENTITY: i32 = 3;
pub const ACCOUNT: &str = "111111111111";
pub const ROLE: &str = "arn:aws:iam::111111111111:role/payments-deploy";
pub const CREDFILE: &str = "/usr/local/bin/credfile";
pub const SUDOERS: &str = include_str!("../../pipeline-examples/sudo/credfile.sudoers");

/// The host is shared: one test at a time changes it, in this process and, through a lock
/// file, in any other test run on the machine.
static HOST: Mutex<()> = Mutex::new(());
const HOST_LOCK: &str = "/run/lock/credfile-sudo-tests.lock";

/// `None` (and a printed reason) when this machine cannot run the sudo tests. Under
/// scripts/test.sh (CREDFILE_TEST_ENDPOINT set), which installs sudo, a missing sudo fails.
pub fn sudo_ready(test: &str) -> Option<()> {
    if !is_root() {
        eprintln!("{test}: skipped: needs root (creates users, installs a sudoers rule)");
        return None;
    }
    let present = Path::new("/usr/bin/sudo").exists() && Path::new("/usr/sbin/visudo").exists();
    if !present {
        assert!(
            std::env::var_os("CREDFILE_TEST_ENDPOINT").is_none(),
            "sudo is not installed; scripts/lib.sh (credfile_ensure_sudo) installs it"
        );
        eprintln!("{test}: skipped: sudo is not installed (apt-get install sudo)");
        return None;
    }
    Some(())
}

pub fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn id_of(flag: &str, name: &str) -> u32 {
    let out = Command::new("id").args([flag, name]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Everything a test put on the host; `Drop` takes it all back.
pub struct Host {
    _lock: std::sync::MutexGuard<'static, ()>,
    _host_lock: nix::fcntl::Flock<fs::File>,
    pub tag: String,
    /// The runner's group, which the rule names instead of `credfile-deployers`.
    pub group: String,
    pub gid: u32,
    pub runner: String,
    pub runner_uid: u32,
    pub app: String,
    /// Someone on call: in the group the rule's `credfile-oncall` becomes.
    pub oncall: String,
    pub oncall_group: String,
    pub app_uid: u32,
    pub app_gid: u32,
    pub sudoers: Vec<PathBuf>,
    pub bin_backup: Option<PathBuf>,
    pub created_etc_credfile: bool,
    pub manifest: PathBuf,
    /// Root-owned scratch: the deploy root and the hook's record.
    pub dir: tempfile::TempDir,
}

impl Host {
    pub fn new() -> Host {
        let lock = HOST.lock().unwrap_or_else(|e| e.into_inner());
        let _ = fs::create_dir_all("/run/lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(HOST_LOCK)
            .unwrap();
        let host_lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .unwrap();
        let tag = support::random_hex(4);
        let (group, runner, app) = (
            format!("cfdeploy{tag}"),
            format!("cfrunner{tag}"),
            format!("cfapp{tag}"),
        );
        let (oncall_group, oncall) = (format!("cfoncall{tag}"), format!("cfperson{tag}"));
        let dir = tempfile::Builder::new()
            .prefix("credfile-sudo-")
            .tempdir()
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let mut host = Host {
            _lock: lock,
            _host_lock: host_lock,
            manifest: PathBuf::from(format!("/etc/credfile/cftest{tag}.yaml")),
            tag,
            group,
            gid: 0,
            runner,
            runner_uid: 0,
            app,
            oncall,
            oncall_group,
            app_uid: 0,
            app_gid: 0,
            sudoers: Vec::new(),
            bin_backup: None,
            created_etc_credfile: false,
            dir,
        };
        sh("groupadd", &[&host.group]);
        sh(
            "useradd",
            &[
                "-M",
                "-N",
                "-g",
                &host.group,
                "-s",
                "/usr/sbin/nologin",
                &host.runner,
            ],
        );
        sh(
            "useradd",
            &["-M", "-U", "-s", "/usr/sbin/nologin", &host.app],
        );
        sh("groupadd", &[&host.oncall_group]);
        sh(
            "useradd",
            &[
                "-M",
                "-N",
                "-g",
                &host.oncall_group,
                "-s",
                "/usr/sbin/nologin",
                &host.oncall,
            ],
        );
        host.gid = id_of("-g", &host.runner);
        host.runner_uid = id_of("-u", &host.runner);
        host.app_uid = id_of("-u", &host.app);
        host.app_gid = id_of("-g", &host.app);

        // The binary where the rule names it (the original, if any, comes back afterwards).
        let bin = Path::new(CREDFILE);
        if bin.exists() {
            let backup = PathBuf::from(format!("{CREDFILE}.cftest{}", host.tag));
            fs::rename(bin, &backup).unwrap();
            host.bin_backup = Some(backup);
        }
        let built = Path::new(env!("CARGO_BIN_EXE_credfile"));
        if fs::hard_link(built, bin).is_err() {
            fs::copy(built, bin).unwrap();
        }

        if !Path::new("/etc/credfile").exists() {
            fs::create_dir("/etc/credfile").unwrap();
            fs::set_permissions("/etc/credfile", fs::Permissions::from_mode(0o755)).unwrap();
            host.created_etc_credfile = true;
        }

        // The shipped rule, with only its placeholders replaced.
        let rule = SUDOERS
            .replace("%credfile-deployers", &format!("%{}", host.group))
            .replace("%credfile-oncall", &format!("%{}", host.oncall_group))
            .replace(
                "/etc/credfile/payments.yaml",
                &host.manifest.to_string_lossy(),
            );
        assert_ne!(rule, SUDOERS);
        // Test plumbing only, in its own file after the rule: moto's address, IMDS off, one
        // attempt, and static keys standing in for the host's instance role (a test has none).
        // Never part of the shipped rule. (No config-file variables: credfile refuses those
        // under sudo; sudo sets HOME to root's, which has no ~/.aws here.)
        host.add_rule("z", "Defaults!/usr/local/bin/credfile env_keep += \"AWS_ENDPOINT_URL AWS_EC2_METADATA_DISABLED AWS_MAX_ATTEMPTS AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY\"\n");
        host.add_rule("", &rule);
        host
    }

    /// Installs `text` as /etc/sudoers.d/cftestTAG`suffix` (checked by visudo first; sudo reads
    /// the drop-ins in name order; no dot in the name, or sudo ignores the file).
    pub fn add_rule(&mut self, suffix: &str, text: &str) {
        let name = format!("cftest{}{suffix}", self.tag);
        let staged = self.dir.path().join(&name);
        fs::write(&staged, text).unwrap();
        sh("visudo", &["-cf", &staged.to_string_lossy()]);
        let path = PathBuf::from("/etc/sudoers.d").join(&name);
        fs::copy(&staged, &path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o440)).unwrap();
        self.sudoers.push(path);
        sh("visudo", &["-c"]);
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn hook_record(&self) -> PathBuf {
        self.dir.path().join("reloads")
    }

    /// Installs the manifest root-owned (0644), as docs/src/sudo.md says; `protected` production or
    /// not, with a reload hook that appends a line to [`Host::hook_record`].
    pub fn install_manifest(&self, secret: &str, protected: bool) {
        let hook = self.dir.path().join("reload.sh");
        fs::write(
            &hook,
            format!(
                "#!/bin/sh\necho reload >> {}\n",
                self.hook_record().display()
            ),
        )
        .unwrap();
        fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).unwrap();
        let text = format!(
            "version: 1\napp: payments\ndefaults:\n  region: us-east-1\n  root: {root}\n  owner: {app}\n  group: {app}\n  mode: \"0440\"\n  dir_mode: \"0710\"\nenvironments:\n  production:\n    protected: {protected}\n    account: \"{ACCOUNT}\"\n    identity:\n      role_arn: {ROLE}\n      web_identity: auto\n    on_change: [{hook}]\nfiles:\n  - path: db/password\n    secret: {secret}\n",
            root = self.root().display(),
            app = self.app,
            hook = hook.display(),
        );
        fs::write(&self.manifest, text).unwrap();
        fs::set_permissions(&self.manifest, fs::Permissions::from_mode(0o644)).unwrap();
    }

    /// `sudo -n` as the runner user (its group is the one the rule names), from `/`, with the
    /// job's environment plus the plumbing the test rule keeps.
    pub fn sudo(&self, proxy: &Proxy) -> Credfile {
        Credfile::new(&proxy.endpoint())
            .program("/usr/bin/sudo")
            .cwd("/")
            .run_as(self.runner_uid, self.gid)
            .env_remove("AWS_REGION")
            // sudo drops them unless a rule keeps them; a test that keeps one sets it itself.
            .env_remove("AWS_CONFIG_FILE")
            .env_remove("AWS_SHARED_CREDENTIALS_FILE")
            .fail_fast()
    }

    pub fn args<'a>(&'a self, command: &'a str) -> Vec<&'a str> {
        vec![
            "-n",
            CREDFILE,
            command,
            "--env",
            "production",
            "--manifest",
            self.manifest.to_str().unwrap(),
        ]
    }

    pub fn reloads(&self) -> usize {
        fs::read_to_string(self.hook_record())
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for p in &self.sudoers {
            let _ = fs::remove_file(p);
        }
        let _ = fs::remove_file(CREDFILE);
        if let Some(b) = &self.bin_backup {
            let _ = fs::rename(b, CREDFILE);
        }
        let _ = fs::remove_file(&self.manifest);
        if self.created_etc_credfile {
            let _ = fs::remove_dir("/etc/credfile");
        }
        // The deploy root holds files owned by the app user: remove them before the user.
        let _ = fs::remove_dir_all(self.root());
        for user in [&self.runner, &self.app, &self.oncall] {
            let _ = Command::new("userdel").arg(user).output();
        }
        for group in [&self.group, &self.oncall_group] {
            let _ = Command::new("groupdel").arg(group).output();
        }
    }
}

pub fn token_endpoint() -> GithubTokenEndpoint {
    let endpoint =
        GithubTokenEndpoint::start(&format!("request-token-{}", support::random_hex(16)));
    Canaries::global().add(&endpoint.request_token);
    Canaries::global().add(&endpoint.jwt);
    endpoint
}

/// What a GitHub Actions job on a self-hosted runner has in its environment.
pub fn github_job(endpoint: &GithubTokenEndpoint, c: Credfile) -> Credfile {
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("GITHUB_ACTIONS", "true")
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", endpoint.url())
        .env(
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            endpoint.request_token.clone(),
        )
        .env("GITHUB_REPOSITORY", "acme/payments")
        .env("GITHUB_RUN_ID", "4242")
}

pub fn seed() -> (String, String) {
    let secret = format!("{}/db", unique_prefix("sudo"));
    let value = canary_value();
    Seeder::in_account(&moto_endpoint(), ACCOUNT).create_string(&secret, &value);
    (secret, value)
}

pub fn sts_body(proxy: &Proxy, action: &str) -> String {
    proxy
        .requests()
        .into_iter()
        .find(|(a, _)| a == action)
        .map(|(_, b)| b)
        .unwrap_or_default()
}
