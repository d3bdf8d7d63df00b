//! The tests' counting, fault-injecting proxy (tests/it/support/proxy) as a program, for the
//! benchmark scripts: one proxy for tests and benchmarks.
//!
//!     proxy UPSTREAM [--scale S] [--upstream-slots N]
//!
//! Prints its port on the first line of stdout, then serves until killed. `--scale S` enforces
//! AWS's request quotas divided by S; `GET /credfile-proxy/stats` reports what passed and what
//! was throttled, `POST /credfile-proxy/reset` starts the count again.

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
        eprintln!("usage: proxy UPSTREAM [--scale S] [--upstream-slots N]");
        return ExitCode::from(2);
    };
    let mut scale = None;
    let mut slots = 0;
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--scale" => scale = value.parse::<f64>().ok().filter(|s| *s > 0.0),
            "--upstream-slots" => slots = value.parse().unwrap_or(0),
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
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{}", p.addr().port());
    let _ = out.flush();
    loop {
        std::thread::park();
    }
}
