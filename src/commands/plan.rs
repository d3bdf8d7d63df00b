//! `credfile plan`: one apply round that writes nothing and runs no hook, and says what apply
//! would change (docs/src/commands.md).

use super::apply;
use crate::cli::{Cli, PlanArgs};
use crate::error::Error;
use crate::pipeline::{Pipeline, Settings};

pub fn run(args: &PlanArgs, settings: &Settings) -> Result<(), Error> {
    if args.run.every.is_some() {
        use clap::CommandFactory;
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--every repeats `apply`; `plan` runs once",
            )
            .exit()
    }
    let run = &args.run;
    let plan = run.target().plan()?;
    let round = apply::Round {
        dry_run: true,
        detailed: args.detailed_exitcode,
        number: None,
    };
    apply::round(run, &plan, round, &mut Pipeline::new(settings)?)
}
