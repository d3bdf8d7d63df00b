//! Command line: the stable interface of `credfile` (see the README's command reference).
//!
//! Every flag has an environment twin (`CREDFILE_*`) so pipelines can configure a step without
//! templating argv. No flag ever carries a secret value.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "credfile",
    version,
    about = "Fetch secrets from AWS Secrets Manager with the identity you already have and write them as permission-restricted files.",
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "CREDFILE_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch every secret, render every file in memory, then write what changed.
    Apply(RunArgs),
    /// What apply would do: fetches and compares, writes nothing, never shows values.
    Plan(RunArgs),
    /// Offline: parse and check the manifest (all environments, or one), no network.
    Validate(ValidateArgs),
    /// Drift: compare the files on this host with what the manifest and secrets produce.
    Verify(VerifyArgs),
    /// Remove every file, link and generation credfile wrote for this environment, nothing else.
    Clean(CleanArgs),
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

    /// Append one JSON line per run to this file (time, app, environment, caller, files).
    #[arg(long, env = "CREDFILE_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,

    /// Seconds each change hook may run before it is killed.
    #[arg(long, default_value_t = 60, env = "CREDFILE_HOOK_TIMEOUT")]
    pub hook_timeout: u64,
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

    /// Append one JSON line per run to this file.
    #[arg(long, env = "CREDFILE_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
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

    /// Append one JSON line per run to this file.
    #[arg(long, env = "CREDFILE_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Check only this environment (default: every environment).
    #[arg(long, env = "CREDFILE_ENV")]
    pub env: Option<String>,

    #[command(flatten)]
    pub manifest: ManifestArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

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
        let Command::Plan(args) = cli.command else {
            panic!("not plan")
        };
        assert_eq!(args.manifest.manifest, PathBuf::from("credfile.yaml"));
        assert_eq!(args.output, Output::Human);
        assert!(args.root.is_none());
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
    fn validate_env_is_optional() {
        let cli = Cli::try_parse_from(["credfile", "validate"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Validate(ValidateArgs { env: None, .. })
        ));
    }
}
