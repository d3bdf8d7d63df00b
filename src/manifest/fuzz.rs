//! A bounded mutation fuzzer over the manifest loader and validator (a test, not shipped).
//!
//! Seeds are valid and invalid manifests; each round applies a few structure-aware mutations
//! (YAML tokens, anchors and aliases, tabs, NULs, deletions, duplicated lines) and checks that
//! `from_text` returns (Ok or a positioned error) without panicking and in bounded time.
//! `CREDFILE_FUZZ_SECONDS` sets the duration (default 3; scripts/test.sh runs 60); a failing
//! input is written to `target/fuzz-failure.yaml`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{ManifestError, from_text};

const SEEDS: &[&str] = &[
    include_str!("tests.rs"), // a Rust file: plenty of non-YAML structure
    "version: 1\napp: payments\ndefaults:\n  region: us-east-1\n  root: /run/credfile/payments\n  mode: \"0440\"\nenvironments:\n  staging:\n    account: \"111111111111\"\n    identity:\n      role_arn: arn:aws:iam::111111111111:role/deploy\n      web_identity: auto\n    vars: { prefix: payments/staging }\n  production:\n    protected: true\n    account: \"222222222222\"\n    vars: { prefix: payments/production }\nfiles:\n  - path: db/password\n    secret: ${prefix}/db\n    key: password\n  - path: app.env\n    format: dotenv\n    values:\n      API_KEY: { secret: \"${prefix}/api\" }\n      DB_USER: { secret: \"${prefix}/db\", key: /user/name }\n  - path: tls/key\n    secret: ${prefix}/tls\n    version_stage: AWSPREVIOUS\n    encoding: base64\n    environments: [production]\n",
    "version: 1\napp: a\nenvironments: { e: { root: /r } }\nfiles: [ { path: x, secret: s }, { path: y, format: json, values: { k: { secret: s, key: k } } } ]\n",
    "version: 1\napp: a\nenvironments:\n  e: &e { root: /r, vars: { v: x } }\n  f: *e\nfiles:\n  - { path: a, secret: \"${v}\" }\n",
];

const TOKENS: &[&str] = &[
    ":",
    ": ",
    "- ",
    "-",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "<<: *a\n",
    "!!binary ",
    "!!str ",
    "!tag ",
    "${",
    "${v}",
    "}",
    "\n",
    "\n  ",
    "\n    - ",
    "\t",
    "\0",
    "'",
    "\"",
    "~",
    "#",
    "|\n  ",
    ">\n  ",
    "? ",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "\u{feff}",
    "é",
    "\u{202e}",
    "0o777",
    "0x1F",
    "1e309",
    "-.inf",
    ".nan",
    "null",
    "true",
    "yes",
    "/",
    "..",
    "../",
    "~1",
    "~2",
];

/// xorshift64*: deterministic per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(rng: &mut Rng, input: &str) -> String {
    let mut s = input.to_string();
    for _ in 0..1 + rng.below(4) {
        let at = char_boundary(&s, rng.below(s.len() + 1));
        match rng.below(6) {
            0 | 1 => s.insert_str(at, TOKENS[rng.below(TOKENS.len())]),
            2 => {
                let end = char_boundary(&s, at + rng.below(40));
                s.replace_range(at..end.max(at), "");
            }
            3 => {
                let lines: Vec<&str> = s.lines().collect();
                if !lines.is_empty() {
                    let l = lines[rng.below(lines.len())].to_string();
                    s.insert_str(at, &format!("{l}\n"));
                }
            }
            4 => {
                // Repeat a slice to make long scalars and deep structures.
                let end = char_boundary(&s, at + rng.below(16));
                let piece = s[at..end.max(at)].repeat(1 + rng.below(64));
                s.insert_str(at, &piece);
            }
            _ => {
                let end = char_boundary(&s, at + 1);
                if end > at {
                    let c = s[at..end].chars().next().unwrap_or(' ');
                    let flipped = char::from_u32((c as u32) ^ (1 << rng.below(7))).unwrap_or(' ');
                    s.replace_range(at..end, &flipped.to_string());
                }
            }
        }
    }
    s
}

#[test]
fn loader_and_validator_survive_mutated_manifests() {
    let seconds: u64 = std::env::var("CREDFILE_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()));
    let (mut cases, mut valid, mut slowest) = (0u64, 0u64, Duration::ZERO);
    let mut corpus: Vec<String> = SEEDS.iter().map(|s| s.to_string()).collect();
    while Instant::now() < deadline {
        let parent = corpus[rng.below(corpus.len())].clone();
        let input = mutate(&mut rng, &parent);
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| {
            from_text(Path::new("fuzz.yaml"), &input, &crate::manifest::PlainFiles)
        }));
        let took = started.elapsed();
        slowest = slowest.max(took);
        let failure = match &result {
            Err(_) => Some("panicked".to_string()),
            Ok(_) if took > Duration::from_secs(2) => Some(format!("took {took:?}")),
            Ok(Err(ManifestError::Invalid { diagnostics, .. })) if diagnostics.is_empty() => {
                Some("an error without a diagnostic".to_string())
            }
            _ => None,
        };
        if let Some(why) = failure {
            let _ = std::fs::write(
                concat!(env!("CARGO_MANIFEST_DIR"), "/target/fuzz-failure.yaml"),
                &input,
            );
            panic!("manifest fuzzing: input {cases} {why}; saved to target/fuzz-failure.yaml");
        }
        if matches!(result, Ok(Ok(_))) {
            valid += 1;
            // Inputs that still validate are good parents: they reach deeper checks.
            if corpus.len() < 256 && input.len() < 64 * 1024 {
                corpus.push(input);
            }
        }
        cases += 1;
    }
    eprintln!("manifest fuzzing: {cases} inputs in {seconds}s, {valid} valid, slowest {slowest:?}");
    assert!(cases > 100, "the fuzzer ran");
}
