//! Command line: the stable interface of `credfile` (docs/src/commands.md).
//!
//! Every flag has an environment twin (`CREDFILE_*`) so pipelines can configure a step without
//! templating argv. No flag ever carries a secret value.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::format::{LintFormat, LogFormat, Output};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "credfile",
    version,
    long_version = LONG_VERSION,
    about = "Fetch secrets from AWS Secrets Manager with the identity you already have and write them as permission-restricted files.",
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "CREDFILE_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Attempts per AWS call, the first included (default: AWS_MAX_ATTEMPTS, else 3).
    #[arg(long, global = true, env = "CREDFILE_MAX_ATTEMPTS", value_parser = clap::value_parser!(u32).range(1..=10))]
    pub max_attempts: Option<u32>,

    /// Seconds allowed for one attempt of an AWS call before it is abandoned and retried.
    #[arg(long, global = true, default_value_t = 20, env = "CREDFILE_ATTEMPT_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..=300))]
    pub attempt_timeout: u64,

    /// Seconds allowed for one AWS or Vault call, all attempts and backoff (a throttled call's
    /// waiting its turn) included, and for each systemd-creds call.
    #[arg(long, global = true, default_value_t = 60, env = "CREDFILE_CALL_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..=900))]
    pub call_timeout: u64,
}

impl Cli {
    /// The retry and timeout settings for every AWS call of the run.
    pub fn tuning(&self) -> crate::aws::Tuning {
        let from_env = std::env::var("AWS_MAX_ATTEMPTS")
            .ok()
            .and_then(|v| v.parse().ok());
        crate::aws::Tuning {
            max_attempts: self.max_attempts.or(from_env).unwrap_or(3).clamp(1, 10),
            attempt_timeout: std::time::Duration::from_secs(self.attempt_timeout),
            call_timeout: std::time::Duration::from_secs(self.call_timeout),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch every secret, render every file in memory, then write what changed.
    Apply(RunArgs),
    /// What apply would do: fetches and compares, writes nothing, never shows values.
    Plan(PlanArgs),
    /// Offline: parse and check the manifest (all environments, or one), no network.
    Validate(ValidateArgs),
    /// Drift: compare the files on this host with what the manifest and secrets produce.
    Verify(VerifyArgs),
    /// Remove every file, link and generation credfile wrote for this environment, nothing else.
    Clean(CleanArgs),
    /// Fetch and render as apply does, then run a command with the files at their usual paths
    /// in a private tmpfs that only it sees and that is gone when it exits.
    Run(RunCommandArgs),
    /// The identity credfile would use for an environment: source, account, ARN, session
    /// name, expiry. Never a credential.
    Whoami(WhoamiArgs),
    /// Offline: check manifests against the secrets-management rules (rule ids, SARIF for code scanning).
    Lint(LintArgs),
    /// Print the least-privilege IAM policy (and, with --trust, the OIDC trust policy) for an environment's role.
    Policy(PolicyArgs),
    /// Governance checks that read live secrets.
    Audit(AuditArgs),
    /// Print the systemd drop-in that gives a unit a `deliver: systemd-creds` environment's
    /// credentials (`LoadCredentialEncrypted=` lines). Offline: nothing is fetched.
    SystemdDropin(SystemdDropinArgs),
    /// Print the completion script for SHELL on stdout (what the .deb, .rpm and tarball ship).
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout (what the .deb, .rpm and tarball ship as credfile.1).
    Man,
}

/// `credfile --version`: which commit, when, for which target and glibc baseline (build.rs),
/// so a binary found on a host can be traced to its source and its release.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("CREDFILE_BUILD_COMMIT"),
    "\nbuild date: ",
    env!("CREDFILE_BUILD_DATE"),
    "\ntarget: ",
    env!("CREDFILE_BUILD_TARGET"),
    "\nglibc baseline: ",
    env!("CREDFILE_BUILD_GLIBC"),
);

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `completions` and `man` print generated text and touch nothing else: `main` runs them
/// before any other stage. `None` for every other command.
pub fn print_generated(command: &Command) -> Option<std::process::ExitCode> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    match command {
        Command::Completions(args) => {
            clap_complete::generate(args.shell, &mut cmd, "credfile", &mut out)
        }
        Command::Man => {
            if let Err(e) = clap_mangen::Man::new(cmd).render(&mut out) {
                eprintln!("error: cannot render the man page: {e}");
                return Some(std::process::ExitCode::from(crate::exit::INTERNAL));
            }
        }
        _ => return None,
    }
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&out).and_then(|()| stdout.flush()) {
        // `credfile man | head` is fine.
        Ok(()) => Some(std::process::ExitCode::from(crate::exit::OK)),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Some(std::process::ExitCode::from(crate::exit::OK))
        }
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            Some(std::process::ExitCode::from(crate::exit::INTERNAL))
        }
    }
}

#[derive(Debug, Args)]
pub struct ManifestsArg {
    /// A manifest file; repeat the flag to check several apps together.
    #[arg(
        long = "manifest",
        value_name = "FILE",
        default_value = "credfile.yaml",
        env = "CREDFILE_MANIFEST"
    )]
    pub manifests: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    #[command(flatten)]
    pub manifests: ManifestsArg,

    /// Report format on stdout, as every command's `--output`; `sarif` is SARIF 2.1.0, for
    /// GitHub code scanning.
    #[arg(long, value_enum, env = "CREDFILE_OUTPUT")]
    pub output: Option<LintFormat>,

    /// Deprecated spelling of `--output` (lint's alone once had it); `--output` wins.
    #[arg(long, value_enum, hide = true, env = "CREDFILE_LINT_FORMAT")]
    pub format: Option<LintFormat>,
}

impl LintArgs {
    /// The format asked for: `--output`, else the deprecated `--format`, else human.
    pub fn output(&self) -> LintFormat {
        self.output.or(self.format).unwrap_or(LintFormat::Human)
    }
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// The environment whose role the policy is for.
    #[arg(long, env = "CREDFILE_ENV")]
    pub env: String,

    #[command(flatten)]
    pub manifest: ManifestArg,

    /// Also print the role's trust policy, one statement per provider (repeat the flag or
    /// separate with commas): `github:OWNER/REPO[:ENVIRONMENT]` (default ENVIRONMENT: --env),
    /// `gitlab[@HOST]:GROUP/PROJECT[:BRANCH]` (default HOST gitlab.com, BRANCH main), or `ec2`
    /// (the role is the host's instance profile role).
    #[arg(
        long,
        value_name = "PROVIDER:PATH[:QUALIFIER]",
        env = "CREDFILE_TRUST",
        value_delimiter = ','
    )]
    pub trust: Vec<String>,

    /// Print one document alone (as IAM takes it) instead of both.
    #[arg(long, value_enum)]
    pub only: Option<PolicyDocument>,

    /// Print the Vault policy (HCL) granting what the environment reads from Vault, instead of
    /// the IAM policy (docs/src/vault.md).
    #[arg(long, conflicts_with_all = ["trust", "only", "vault_role"])]
    pub vault: bool,

    /// With --vault: a mount that is KV version 1 (its paths are granted as written, not under
    /// `data/`); repeat for several.
    #[arg(long = "kv-v1", value_name = "MOUNT", requires = "vault")]
    pub kv_v1: Vec<String>,

    /// Print the Vault JWT role (JSON) for a pipeline: `github:OWNER/REPO[:environment:ENV]`
    /// or `gitlab[@HOST]:GROUP/PROJECT`, bound to it, with the environment's policy and a
    /// short token TTL.
    #[arg(long, value_name = "PROVIDER:PATH", conflicts_with_all = ["trust", "only"])]
    pub vault_role: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyDocument {
    /// The permissions policy.
    Identity,
    /// The trust policy (needs --trust).
    Trust,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Fetch every referenced value in each environment (each with its own identity) and report
    /// values shared between environments or apps, by keyed fingerprint, never by value.
    Reuse(ReuseArgs),
}

#[derive(Debug, Args)]
pub struct ReuseArgs {
    /// An environment to compare; repeat the flag (`--env staging --env production`).
    #[arg(long = "env", value_name = "ENV", required = true)]
    pub envs: Vec<String>,

    #[command(flatten)]
    pub manifests: ManifestsArg,

    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = Output::Human, env = "CREDFILE_OUTPUT")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ManifestArg {
    /// The manifest file.
    #[arg(long, default_value = "credfile.yaml", env = "CREDFILE_MANIFEST")]
    pub manifest: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The environment to deploy; there is no default, an environment is always chosen explicitly.
    #[arg(long, env = "CREDFILE_ENV")]
    pub env: String,

    #[command(flatten)]
    pub manifest: ManifestArg,

    /// Write under this directory instead of the manifest's `root`.
    #[arg(long, env = "CREDFILE_ROOT")]
    pub root: Option<PathBuf>,

    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = Output::Human, env = "CREDFILE_OUTPUT")]
    pub output: Output,

    /// Append one JSON line per run to this file (time, app, environment, caller, files); `-`
    /// writes it on stderr as a log record. Without it, no audit line is written.
    #[arg(long, env = "CREDFILE_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,

    /// Seconds each change hook may run before it is killed.
    #[arg(long, default_value_t = 60, env = "CREDFILE_HOOK_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub hook_timeout: u64,

    /// Wait a random time between 0 and SECONDS before the first AWS call, so that hosts
    /// deploying at once spread their calls over the account's request quotas.
    #[arg(long, value_name = "SECONDS", value_parser = parse_jitter, env = "CREDFILE_JITTER")]
    pub jitter: Option<Duration>,

    /// How secrets are read: `auto` batches and moves what a throttled batch call could not
    /// read to GetSecretValue; `batch` batches only; `single` uses GetSecretValue throughout.
    #[arg(long, value_enum, default_value_t = crate::fetch::FetchMode::Auto, env = "CREDFILE_FETCH")]
    pub fetch: crate::fetch::FetchMode,

    /// `apply` only: apply again every DURATION (`90`, `30s`, `5m`, `1h`) until SIGTERM or SIGINT
    /// (exit 0); a failed round keeps the last good set and the next round tries again.
    #[arg(long, value_name = "DURATION", value_parser = crate::every::parse_interval, env = "CREDFILE_EVERY")]
    pub every: Option<Duration>,
}

/// `credfile run` (docs/src/run.md).
#[derive(Debug, Args)]
pub struct RunCommandArgs {
    /// The environment whose files the command gets.
    #[arg(long, env = "CREDFILE_ENV")]
    pub env: String,

    #[command(flatten)]
    pub manifest: ManifestArg,

    /// Mount the private root here instead of the manifest's `root` (an existing directory; it
    /// stays empty on the host).
    #[arg(long, env = "CREDFILE_ROOT")]
    pub root: Option<PathBuf>,

    /// Run the command as this user (name or uid) when credfile runs as root; files without an
    /// `owner` (and `group`) are theirs. Under sudo the command runs as the invoking user.
    #[arg(long, value_name = "USER", env = "CREDFILE_RUN_AS")]
    pub run_as: Option<String>,

    /// Fetch again every DURATION (`90`, `30s`, `5m`, `1h`) and switch the set inside the
    /// namespace when it changed (all files or none, as apply).
    #[arg(long, value_name = "DURATION", value_parser = crate::every::parse_interval, env = "CREDFILE_EVERY")]
    pub every: Option<Duration>,

    /// With --every: send this signal (`HUP`, `USR1`, a number) to the command after a set changed.
    #[arg(long, value_name = "SIGNAL", value_parser = crate::namespace::supervise::parse_signal, requires = "every")]
    pub reload_signal: Option<nix::sys::signal::Signal>,

    /// How secrets are read (as apply's --fetch).
    #[arg(long, value_enum, default_value_t = crate::fetch::FetchMode::Auto, env = "CREDFILE_FETCH")]
    pub fetch: crate::fetch::FetchMode,

    /// Append one JSON line when the run ends (files, their sources, the command's exit code);
    /// `-` writes it on stderr as a log record. Refused under sudo.
    #[arg(long, env = "CREDFILE_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub run: RunArgs,

    /// Exit 10 when apply would change something (a file to create, update or remove, or a
    /// change hook owed), 0 when nothing would change; other failures keep their codes.
    #[arg(long, env = "CREDFILE_DETAILED_EXITCODE")]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The environment to check.
    #[arg(long, env = "CREDFILE_ENV")]
    pub env: String,

    #[command(flatten)]
    pub manifest: ManifestArg,

    /// Check under this directory instead of the manifest's `root`.
    #[arg(long, env = "CREDFILE_ROOT")]
    pub root: Option<PathBuf>,

    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = Output::Human, env = "CREDFILE_OUTPUT")]
    pub output: Output,

    /// Metadata only (existence, type, mode, owner, group, extra files): no AWS call at all.
    #[arg(long)]
    pub offline: bool,

    /// Append one JSON line per run to this file (`-`: stderr, as a log record).
    #[arg(long, env = "CREDFILE_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SystemdDropinArgs {
    /// The environment whose credentials the unit loads.
    #[arg(long, env = "CREDFILE_ENV")]
    pub env: String,

    #[command(flatten)]
    pub manifest: ManifestArg,

    /// The unit that reads the credentials (`.service` when no suffix is given).
    #[arg(long)]
    pub unit: String,

    /// The directory the credentials are in, instead of the manifest's `root`.
    #[arg(long, env = "CREDFILE_ROOT")]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// The environment whose files to remove.
    #[arg(long, env = "CREDFILE_ENV")]
    pub env: String,

    #[command(flatten)]
    pub manifest: ManifestArg,

    /// Clean this directory instead of the manifest's `root`.
    #[arg(long, env = "CREDFILE_ROOT")]
    pub root: Option<PathBuf>,

    /// Append one JSON line per run to this file (`-`: stderr, as a log record).
    #[arg(long, env = "CREDFILE_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,

    /// List what would be removed and kept; remove nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Do not ask: needed to clean a protected environment when no terminal can answer.
    #[arg(long)]
    pub yes: bool,
}

/// The longest `--jitter`: an hour is already longer than any deploy should wait.
pub const MAX_JITTER: Duration = Duration::from_secs(3600);

fn parse_jitter(s: &str) -> Result<Duration, String> {
    let seconds: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(0.0..=MAX_JITTER.as_secs_f64()).contains(&seconds) {
        return Err(format!("must be between 0 and {}", MAX_JITTER.as_secs()));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Check only this environment (default: every environment).
    #[arg(long, env = "CREDFILE_ENV")]
    pub env: Option<String>,

    #[command(flatten)]
    pub manifest: ManifestArg,

    /// Result format on stdout: `json` is one object (ok, environments, warnings, errors with
    /// file and line), also when the manifest is invalid.
    #[arg(long, value_enum, default_value_t = Output::Human, env = "CREDFILE_OUTPUT")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct WhoamiArgs {
    /// The environment whose identity to show.
    #[arg(long, env = "CREDFILE_ENV")]
    pub env: String,

    #[command(flatten)]
    pub manifest: ManifestArg,

    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = Output::Human, env = "CREDFILE_OUTPUT")]
    pub output: Output,
}

impl Cli {
    /// What a failure report says of this command line.
    pub fn failure_context(&self) -> crate::failure::Context {
        let (command, env, manifest, output, summary) = match &self.command {
            Command::Apply(a) => (
                "apply",
                Some(&a.env),
                Some(&a.manifest.manifest),
                Some(a.output),
                true,
            ),
            Command::Plan(p) => (
                "plan",
                Some(&p.run.env),
                Some(&p.run.manifest.manifest),
                Some(p.run.output),
                true,
            ),
            Command::Verify(a) => (
                "verify",
                Some(&a.env),
                Some(&a.manifest.manifest),
                Some(a.output),
                true,
            ),
            Command::Clean(a) => (
                "clean",
                Some(&a.env),
                Some(&a.manifest.manifest),
                None,
                true,
            ),
            Command::SystemdDropin(a) => (
                "systemd-dropin",
                Some(&a.env),
                Some(&a.manifest.manifest),
                None,
                false,
            ),
            Command::Run(a) => ("run", Some(&a.env), Some(&a.manifest.manifest), None, false),
            Command::Whoami(a) => (
                "whoami",
                Some(&a.env),
                Some(&a.manifest.manifest),
                Some(a.output),
                true,
            ),
            // Validate prints its own result with `--output json`, failed or not.
            Command::Validate(a) => (
                "validate",
                a.env.as_ref(),
                Some(&a.manifest.manifest),
                None,
                true,
            ),
            Command::Lint(a) => ("lint", None, a.manifests.manifests.first(), None, false),
            Command::Completions(_) => ("completions", None, None, None, false),
            Command::Man => ("man", None, None, None, false),
            Command::Policy(a) => (
                "policy",
                Some(&a.env),
                Some(&a.manifest.manifest),
                None,
                false,
            ),
            Command::Audit(a) => match &a.command {
                AuditCommand::Reuse(r) => (
                    "audit reuse",
                    r.envs.first(),
                    r.manifests.manifests.first(),
                    Some(r.output),
                    true,
                ),
            },
        };
        crate::failure::Context {
            command,
            env: env.cloned(),
            manifest: manifest.cloned(),
            output,
            summary,
            log_format: self.log_format,
        }
    }
}

macro_rules! target {
    ($($args:ty),*) => {$(
        impl $args {
            /// Where the command works (manifest, environment, root, audit log).
            pub fn target(&self) -> crate::pipeline::Target<'_> {
                crate::pipeline::Target {
                    manifest: &self.manifest.manifest,
                    env: &self.env,
                    root: self.root.as_deref(),
                    audit_log: self.audit_log.as_deref(),
                }
            }
        }
    )*};
}

target!(RunArgs, VerifyArgs, CleanArgs);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_required_for_apply() {
        let err = Cli::try_parse_from(["credfile", "apply"]).unwrap_err();
        assert!(err.to_string().contains("--env"), "{err}");
    }

    #[test]
    fn manifest_defaults_to_credfile_yaml() {
        let cli = Cli::try_parse_from(["credfile", "plan", "--env", "staging"]).unwrap();
        let Command::Plan(PlanArgs {
            run: args,
            detailed_exitcode: false,
        }) = cli.command
        else {
            panic!("not plan")
        };
        assert_eq!(args.manifest.manifest, PathBuf::from("credfile.yaml"));
        assert_eq!(args.output, Output::Human);
        assert!(args.root.is_none());
        assert!(args.jitter.is_none());
        assert_eq!(args.fetch, crate::fetch::FetchMode::Auto);
        assert!(args.every.is_none());
    }

    #[test]
    fn fetch_and_every_parse() {
        let cli = Cli::try_parse_from([
            "credfile", "apply", "--env", "p", "--fetch", "single", "--every", "5m",
        ])
        .unwrap();
        let Command::Apply(args) = cli.command else {
            panic!("not apply")
        };
        assert_eq!(args.fetch, crate::fetch::FetchMode::Single);
        assert_eq!(args.every, Some(Duration::from_secs(300)));
        assert!(
            Cli::try_parse_from(["credfile", "apply", "--env", "p", "--fetch", "many"]).is_err()
        );
        assert!(Cli::try_parse_from(["credfile", "apply", "--env", "p", "--every", "0"]).is_err());
    }

    #[test]
    fn jitter_takes_seconds() {
        let cli =
            Cli::try_parse_from(["credfile", "apply", "--env", "p", "--jitter", "2.5"]).unwrap();
        let Command::Apply(args) = cli.command else {
            panic!("not apply")
        };
        assert_eq!(args.jitter, Some(Duration::from_millis(2500)));
        for bad in ["-1", "abc", "3601", "NaN"] {
            assert!(
                Cli::try_parse_from(["credfile", "apply", "--env", "p", "--jitter", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn lint_takes_several_manifests_and_defaults_to_one() {
        let cli = Cli::try_parse_from(["credfile", "lint"]).unwrap();
        let Command::Lint(args) = cli.command else {
            panic!("not lint")
        };
        assert_eq!(
            args.manifests.manifests,
            vec![PathBuf::from("credfile.yaml")]
        );
        assert_eq!(args.output(), LintFormat::Human);
        let cli = Cli::try_parse_from([
            "credfile",
            "lint",
            "--manifest",
            "a.yaml",
            "--manifest",
            "b.yaml",
            "--format",
            "sarif",
        ])
        .unwrap();
        let Command::Lint(args) = cli.command else {
            panic!("not lint")
        };
        assert_eq!(args.manifests.manifests.len(), 2);
        assert_eq!(args.output(), LintFormat::Sarif);
        for (argv, want) in [
            (vec!["--output", "json"], LintFormat::Json),
            (
                vec!["--output", "sarif", "--format", "json"],
                LintFormat::Sarif,
            ),
        ] {
            let cli = Cli::try_parse_from([&["credfile", "lint"][..], &argv].concat()).unwrap();
            let Command::Lint(args) = cli.command else {
                panic!("not lint")
            };
            assert_eq!(args.output(), want, "{argv:?}");
        }
    }

    #[test]
    fn every_reporting_command_takes_output_json() {
        for argv in [
            vec!["apply", "--env", "e"],
            vec!["plan", "--env", "e"],
            vec!["verify", "--env", "e"],
            vec!["whoami", "--env", "e"],
            vec!["validate"],
            vec!["lint"],
            vec!["audit", "reuse", "--env", "e"],
        ] {
            let full = [&["credfile"][..], &argv, &["--output", "json"]].concat();
            assert!(Cli::try_parse_from(&full).is_ok(), "{full:?}");
        }
    }

    #[test]
    fn audit_reuse_needs_environments() {
        assert!(Cli::try_parse_from(["credfile", "audit", "reuse"]).is_err());
        let cli = Cli::try_parse_from(["credfile", "audit", "reuse", "--env", "a", "--env", "b"])
            .unwrap();
        let Command::Audit(AuditArgs {
            command: AuditCommand::Reuse(args),
        }) = cli.command
        else {
            panic!("not audit reuse")
        };
        assert_eq!(args.envs, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn policy_needs_env() {
        assert!(Cli::try_parse_from(["credfile", "policy"]).is_err());
        let cli =
            Cli::try_parse_from(["credfile", "policy", "--env", "p", "--trust", "github:o/r"])
                .unwrap();
        assert!(matches!(
            cli.command,
            Command::Policy(PolicyArgs { ref trust, .. }) if trust.len() == 1
        ));
    }

    #[test]
    fn verify_and_clean_need_an_environment() {
        assert!(Cli::try_parse_from(["credfile", "verify"]).is_err());
        assert!(Cli::try_parse_from(["credfile", "clean"]).is_err());
        let cli = Cli::try_parse_from(["credfile", "verify", "--env", "s", "--offline"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Verify(VerifyArgs { offline: true, .. })
        ));
    }

    #[test]
    fn plan_detailed_exitcode_and_clean_rails_are_flags() {
        let cli =
            Cli::try_parse_from(["credfile", "plan", "--env", "p", "--detailed-exitcode"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Plan(PlanArgs {
                detailed_exitcode: true,
                ..
            })
        ));
        assert!(
            Cli::try_parse_from(["credfile", "apply", "--env", "p", "--detailed-exitcode"])
                .is_err()
        );
        let cli =
            Cli::try_parse_from(["credfile", "clean", "--env", "p", "--dry-run", "--yes"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Clean(CleanArgs {
                dry_run: true,
                yes: true,
                ..
            })
        ));
    }

    #[test]
    fn validate_env_is_optional() {
        let cli = Cli::try_parse_from(["credfile", "validate"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Validate(ValidateArgs { env: None, .. })
        ));
    }

    #[test]
    fn long_version_names_commit_date_target_and_glibc() {
        use clap::CommandFactory;
        let v = Cli::command().render_long_version();
        assert!(
            v.starts_with(&format!("credfile {}\n", env!("CARGO_PKG_VERSION"))),
            "{v}"
        );
        for field in ["commit: ", "build date: ", "target: ", "glibc baseline: "] {
            assert!(v.contains(field), "{field} missing in {v}");
        }
    }

    #[test]
    fn completions_take_a_known_shell_only() {
        let cli = Cli::try_parse_from(["credfile", "completions", "zsh"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Completions(CompletionsArgs {
                shell: clap_complete::Shell::Zsh
            })
        ));
        assert!(Cli::try_parse_from(["credfile", "completions", "tcsh"]).is_err());
        assert!(matches!(
            Cli::try_parse_from(["credfile", "man"]).unwrap().command,
            Command::Man
        ));
    }
}
