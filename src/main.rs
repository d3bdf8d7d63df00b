//! credfile: fetch secrets from AWS Secrets Manager with the identity the pipeline or host
//! already has, and write them as permission-restricted files.
//!
//! `main` hardens the process, parses the command line, sets up logging, runs, and turns the
//! result into an exit code from the single table in [`exit`].

#![forbid(unsafe_code)]

mod audit;
mod aws;
mod cli;
mod commands;
mod error;
mod every;
mod exit;
mod failure;
mod fault;
mod fetch;
mod format;
mod guard;
mod hooks;
mod identity;
mod lint;
mod manifest;
mod materialize;
mod namespace;
mod output;
mod pipeline;
mod policy;
mod render;
mod sudo;
mod systemd_creds;
mod terminal;
mod vault;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    harden();
    // credfile's own helper for opening files as the user who ran sudo (src/sudo/invoker.rs).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == sudo::HELPER_ARG) {
        sudo::helper_main(&args[2..]);
    }
    // `credfile run`'s helpers inside its namespace (src/commands/run.rs, src/namespace/).
    if args.get(1).is_some_and(|a| a == namespace::INSIDE_ARG) {
        commands::run_inside_main(&args[2..]);
    }
    if args.get(1).is_some_and(|a| a == namespace::EXEC_ARG) {
        namespace::exec::main(&args[2..]);
    }
    let cli = cli::Cli::parse();
    if let Some(code) = cli::print_generated(&cli.command) {
        return code;
    }
    init_logging(cli.log_format);
    let context = cli.failure_context();
    match commands::run(cli) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(err) => {
            failure::report(&context, &err);
            err.exit_code()
        }
    }
}

/// Before any secret exists: files we create are private by default, and the process cannot
/// be dumped (no core file, no ptrace by other users) while secrets are in its memory.
fn harden() {
    let started = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    // `credfile run` gives the command the umask its caller had.
    namespace::remember_umask(started);
    let _ = nix::sys::prctl::set_dumpable(false);
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
}

/// Logs go to stderr, filtered by `CREDFILE_LOG` (or `RUST_LOG`). credfile's own events may go
/// to `trace`; every library below it stops at `debug`, whatever the filter says: at `trace` the
/// SDK, its HTTP stack and its signer print request headers (an SSO bearer token, session
/// tokens) and, with `LOG_SENSITIVE_BODIES`, response bodies (secrets).
fn init_logging(format: cli::LogFormat) {
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, fmt};

    let spec = std::env::var("CREDFILE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "warn,credfile=info".to_string());
    let filter = EnvFilter::builder().parse_lossy(spec).add_directive(
        "aws_smithy_runtime::client::orchestrator::http=off"
            .parse()
            .expect("valid directive"),
    );
    let libraries_at_most_debug = filter_fn(|meta| {
        meta.target().starts_with("credfile") || *meta.level() <= tracing::Level::DEBUG
    });
    // Every record passes the one escaping rule: a field from outside stays on its line.
    let layer = fmt::layer()
        .with_writer(terminal::LogStderr)
        .with_target(false);
    let layer = match format {
        cli::LogFormat::Text => layer.with_ansi(false).boxed(),
        cli::LogFormat::Json => layer.json().boxed(),
    };
    tracing_subscriber::registry()
        .with(
            layer
                .with_filter(libraries_at_most_debug)
                .with_filter(filter),
        )
        .init();
}
