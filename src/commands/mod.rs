//! One file per command, each over the shared stages in [`crate::pipeline`]: the command line
//! (src/cli.rs) picks the file, the file says what its command does with the stages.

mod apply;
mod audit;
mod clean;
mod lint;
mod plan;
mod policy;
mod run;
mod systemd_dropin;
mod validate;
mod verify;
mod whoami;

use crate::cli::{AuditCommand, Cli, Command};
use crate::error::Error;
use crate::pipeline::Settings;

pub use run::inside_main as run_inside_main;

/// Runs the command the command line names.
pub fn run(cli: Cli) -> Result<(), Error> {
    let settings = Settings {
        aws: crate::aws::Context::new(cli.tuning()),
        log_format: cli.log_format,
    };
    match cli.command {
        Command::Apply(args) => apply::run(&args, &settings),
        Command::Plan(args) => plan::run(&args, &settings),
        Command::Validate(args) => validate::run(&args),
        Command::Whoami(args) => whoami::run(&args, &settings),
        Command::Verify(args) => verify::run(&args, &settings),
        Command::Clean(args) => clean::run(&args, &settings),
        Command::Run(args) => run::run(&args, &settings),
        Command::Lint(args) => lint::run(&args),
        Command::Policy(args) => policy::run(&args),
        Command::SystemdDropin(args) => systemd_dropin::run(&args),
        Command::Audit(args) => match args.command {
            AuditCommand::Reuse(args) => audit::reuse(&args, &settings),
        },
        // Printed by main (cli::print_generated) before any stage runs.
        Command::Completions(_) | Command::Man => Ok(()),
    }
}
