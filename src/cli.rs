//! Command line: the stable interface of `credfile` (see the README's command reference).
//!
//! Every flag has an environment twin (`CREDFILE_*`) so pipelines can configure a step without
//! templating argv. No flag ever carries a secret value.

use std::path::PathBuf;
use std::time::Duration;

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
    /// The identity credfile would use for an environment: source, account, ARN, session
    /// name, expiry. Never a credential.
    Whoami(WhoamiArgs),
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

    /// Wait a random time between 0 and SECONDS before the first AWS call, so that hosts
    /// deploying at once spread their calls over the account's request quotas.
    #[arg(long, value_name = "SECONDS", value_parser = parse_jitter, env = "CREDFILE_JITTER")]
    pub jitter: Option<Duration>,
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
        assert!(args.jitter.is_none());
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
    fn validate_env_is_optional() {
        let cli = Cli::try_parse_from(["credfile", "validate"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Validate(ValidateArgs { env: None, .. })
        ));
    }
}
