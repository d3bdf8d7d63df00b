//! The tests' counting, fault-injecting proxy (tests/it/support/proxy) as a program, for the
//! benchmark scripts: one proxy for tests and benchmarks.
//!
//!     proxy UPSTREAM [--scale S] [--upstream-slots N] [--delay ACTION=MS]...
//!
//! Prints its port on the first line of stdout, then serves until killed. `--scale S` enforces
//! AWS's request quotas divided by S; `GET /credfile-proxy/stats` reports what passed and what
//! was throttled, `POST /credfile-proxy/reset` starts the count again. `--delay ACTION=MS` holds
//! every request of ACTION (`Vault` for every `/v1/` request, `GetSecretValue`, ...) MS
//! milliseconds before forwarding it, each request on its own: a network round trip put in
//! front of a loopback server, the same for every client (scripts/vault-bench.sh).

// The tests use the rest of the proxy's API (fault rules, request logs); this program does not.
#[allow(dead_code)]
#[path = "../tests/it/support/proxy/mod.rs"]
mod proxy;

use std::io::Write;
use std::process::ExitCode;

/// AWS's quotas in requests per second per account and Region (BENCHMARKS.md, "Fleet"); every
/// STS action shares one bucket.
const AWS_QUOTAS: [(&str, f64); 3] = [
    ("BatchGetSecretValue", 100.0),
    ("GetSecretValue", 10_000.0),
    ("STS", 600.0),
];

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(upstream) = args.next() else {
        eprintln!("usage: proxy UPSTREAM [--scale S] [--upstream-slots N] [--delay ACTION=MS]...");
        return ExitCode::from(2);
    };
    let mut scale = None;
    let mut slots = 0;
    let mut delays = Vec::new();
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--scale" => scale = value.parse::<f64>().ok().filter(|s| *s > 0.0),
            "--upstream-slots" => slots = value.parse().unwrap_or(0),
            "--delay" => match value.split_once('=').map(|(a, ms)| (a, ms.parse::<u64>())) {
                Some((action, Ok(ms))) if !action.is_empty() => {
                    delays.push((action.to_string(), std::time::Duration::from_millis(ms)));
                }
                _ => {
                    eprintln!("proxy: --delay takes ACTION=MS, got {value:?}");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("proxy: unknown flag {flag}");
                return ExitCode::from(2);
            }
        }
    }
    let p = proxy::Proxy::start(&upstream);
    if let Some(scale) = scale {
        for (bucket, rate) in AWS_QUOTAS {
            p.quota(bucket, rate / scale);
        }
    }
    p.limit_upstream(slots);
    for (action, delay) in delays {
        p.delay(&action, delay);
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{}", p.addr().port());
    let _ = out.flush();
    loop {
        std::thread::park();
    }
}
