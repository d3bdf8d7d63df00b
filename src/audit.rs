//! Audit reuse: which referenced values are equal across environments or apps.
//!
//! Every value a manifest references is fetched in each environment with that environment's own
//! identity (the same manifest -> plan -> identity -> fetch path as `apply`), selected exactly as a
//! raw file would hold it, and reduced at once to a keyed fingerprint: HMAC-SHA-256 under a
//! 64-byte key drawn from the OS for this run and never stored or printed. Equal fingerprints mean
//! equal values; the values are dropped right after. Fingerprints are useless outside the run:
//! without the key they cannot be recomputed or matched against a guess, and the next run's
//! differ.

use std::collections::BTreeSet;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::fetch::FetchSet;
use crate::format::Output;
use crate::manifest::Plan;
use crate::render::{self, Problem, RenderError};
use crate::terminal::{Escaped, escape_json, sanitize_lines};

/// How many bytes of a fingerprint are printed: enough to tell groups apart.
const SHOWN_BYTES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot draw a random fingerprint key from the operating system: {0}")]
    Random(String),
    #[error(
        "{protected} of {pairs} shared value pair(s) involve a protected environment: a protected environment must not share a value with any other environment or app"
    )]
    Shared { pairs: usize, protected: usize },
}

impl AuditError {
    pub fn hint(&self) -> Option<String> {
        match self {
            AuditError::Random(_) => None,
            AuditError::Shared { .. } => Some(
                "rotate the protected environment's copy to a value of its own, then run the audit again".into(),
            ),
        }
    }
}

/// Keyed fingerprints for one run.
pub struct Fingerprinter {
    mac: Hmac<Sha256>,
}

impl Fingerprinter {
    /// A fingerprinter with a fresh random key.
    ///
    /// # Errors
    /// The OS random source failed.
    pub fn new() -> Result<Fingerprinter, AuditError> {
        let mut key = Zeroizing::new([0u8; 64]);
        getrandom::fill(key.as_mut()).map_err(|e| AuditError::Random(e.to_string()))?;
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_ref())
            .map_err(|e| AuditError::Random(e.to_string()))?;
        Ok(Fingerprinter { mac })
    }

    pub fn fingerprint(&self, value: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(value);
        mac.finalize().into_bytes().into()
    }
}

/// One referenced value in one environment of one app.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unit {
    pub app: String,
    pub env: String,
    pub protected: bool,
    /// The secret reference as the report shows it (id, and pin if any).
    pub secret: String,
    pub key: Option<String>,
}

/// Fingerprints every distinct (secret, key) the plan reads, except values marked
/// `sensitive: false`.
///
/// # Errors
/// A value that cannot be selected (no such key, not JSON, binary with a key), per file.
pub fn fingerprint_plan(
    plan: &Plan,
    fetched: &FetchSet,
    fp: &Fingerprinter,
) -> Result<Vec<(Unit, [u8; 32])>, RenderError> {
    let mut out: Vec<(Unit, [u8; 32])> = Vec::new();
    let mut problems = Vec::new();
    for spec in &plan.files {
        // `sensitive: false` (a host, a port): equal across environments by design.
        for source in spec.sources().into_iter().filter(|s| s.sensitive) {
            let unit = Unit {
                app: plan.app.clone(),
                env: plan.env.clone(),
                protected: plan.protected,
                secret: source.secret.to_string(),
                key: source.key.as_ref().map(ToString::to_string),
            };
            if out.iter().any(|(u, _)| *u == unit) {
                continue;
            }
            match render::select(source, fetched) {
                Ok(value) => out.push((unit, fp.fingerprint(&value))),
                Err(what) => problems.push(Problem {
                    path: spec.path.clone(),
                    line: spec.line,
                    noun: source.secret.kind.noun(),
                    secret: source.secret.id.clone(),
                    key: unit.key.clone(),
                    what,
                }),
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(RenderError { problems })
    }
}

/// Two units holding the same value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub a: usize,
    pub b: usize,
    pub protected: bool,
}

/// The audit's result.
pub struct Report {
    pub environments: Vec<String>,
    pub units: Vec<(Unit, [u8; 32])>,
    pub pairs: Vec<Pair>,
}

impl Report {
    /// Orders the units (by the order of `environments`, then app, secret, key) and pairs every
    /// two with equal fingerprints that differ in environment or app. Two references to one
    /// value in the same app and environment are not reuse and are not reported.
    pub fn new(environments: Vec<String>, mut units: Vec<(Unit, [u8; 32])>) -> Report {
        let rank = |env: &str| environments.iter().position(|e| e == env);
        units.sort_by(|(a, _), (b, _)| {
            (rank(&a.env), &a.app, &a.secret, &a.key).cmp(&(
                rank(&b.env),
                &b.app,
                &b.secret,
                &b.key,
            ))
        });
        let mut pairs = Vec::new();
        for a in 0..units.len() {
            for b in a + 1..units.len() {
                let (ua, fa) = &units[a];
                let (ub, fb) = &units[b];
                if fa == fb && (ua.env != ub.env || ua.app != ub.app) {
                    pairs.push(Pair {
                        a,
                        b,
                        protected: ua.protected || ub.protected,
                    });
                }
            }
        }
        Report {
            environments,
            units,
            pairs,
        }
    }

    pub fn protected_pairs(&self) -> usize {
        self.pairs.iter().filter(|p| p.protected).count()
    }

    fn shown(&self, unit: usize) -> String {
        self.units[unit].1[..SHOWN_BYTES]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn apps(&self) -> BTreeSet<&str> {
        self.units.iter().map(|(u, _)| u.app.as_str()).collect()
    }

    pub fn to_json(&self) -> serde_json::Value {
        let unit = |u: &Unit| {
            json!({
                "app": u.app,
                "environment": u.env,
                "protected": u.protected,
                "secret": u.secret,
                "key": u.key,
            })
        };
        let mut out = json!({
            "command": "audit reuse",
            "environments": self.environments,
            "apps": self.apps(),
            "compared": self.units.len(),
            "fingerprint_note": "HMAC-SHA-256 under a random key that exists only for this run: equal within this report means equal values; not comparable across runs",
            "pairs": self.pairs.iter().map(|p| json!({
                "a": unit(&self.units[p.a].0),
                "b": unit(&self.units[p.b].0),
                "protected": p.protected,
                "fingerprint": self.shown(p.a),
            })).collect::<Vec<_>>(),
            "summary": {
                "pairs": self.pairs.len(),
                "protected_pairs": self.protected_pairs(),
            },
        });
        escape_json(&mut out);
        out
    }

    pub fn to_human(&self) -> String {
        let describe = |u: &Unit| {
            let mut s = format!(
                "{}/{} `{}`",
                Escaped(&u.app),
                Escaped(&u.env),
                Escaped(&u.secret)
            );
            if let Some(k) = &u.key {
                s.push_str(&format!(" key `{}`", Escaped(k)));
            }
            if u.protected {
                s.push_str(" (protected)");
            }
            s
        };
        let mut out = format!(
            "audit reuse: compared {} value(s) of app(s) {} in environment(s) {}\n",
            self.units.len(),
            self.apps().into_iter().collect::<Vec<_>>().join(", "),
            self.environments.join(", ")
        );
        for p in &self.pairs {
            out.push_str(&format!(
                "{} {} == {}  [fingerprint {}]\n",
                if p.protected {
                    "SHARED (protected)"
                } else {
                    "SHARED"
                },
                describe(&self.units[p.a].0),
                describe(&self.units[p.b].0),
                self.shown(p.a)
            ));
        }
        if self.pairs.is_empty() {
            out.push_str("no value is shared between environments or apps\n");
        } else {
            out.push_str(&format!(
                "{} pair(s) share a value, {} involving a protected environment (fingerprints are keyed for this run only)\n",
                self.pairs.len(),
                self.protected_pairs()
            ));
        }
        sanitize_lines(&out)
    }

    pub fn print(&self, output: Output) {
        match output {
            Output::Human => print!("{}", self.to_human()),
            Output::Json => println!(
                "{}",
                serde_json::to_string_pretty(&self.to_json()).unwrap_or_default()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(env: &str, secret: &str, protected: bool) -> Unit {
        Unit {
            app: "app".into(),
            env: env.into(),
            protected,
            secret: secret.into(),
            key: None,
        }
    }

    #[test]
    fn fingerprints_are_keyed_per_run() {
        let (a, b) = (Fingerprinter::new().unwrap(), Fingerprinter::new().unwrap());
        assert_eq!(a.fingerprint(b"same"), a.fingerprint(b"same"));
        assert_ne!(a.fingerprint(b"same"), a.fingerprint(b"other"));
        assert_ne!(
            a.fingerprint(b"same"),
            b.fingerprint(b"same"),
            "a new key per run"
        );
    }

    #[test]
    fn pairs_cross_environments_and_apps_only() {
        let fp = Fingerprinter::new().unwrap();
        let shared = fp.fingerprint(b"v1");
        let units = vec![
            (unit("production", "p/shared", true), shared),
            (unit("staging", "s/shared", false), shared),
            (unit("staging", "s/copy", false), shared),
            (unit("staging", "s/own", false), fp.fingerprint(b"v2")),
        ];
        let report = Report::new(vec!["staging".into(), "production".into()], units);
        let named: Vec<(String, String, bool)> = report
            .pairs
            .iter()
            .map(|p| {
                (
                    report.units[p.a].0.secret.clone(),
                    report.units[p.b].0.secret.clone(),
                    p.protected,
                )
            })
            .collect();
        assert_eq!(
            named,
            vec![
                ("s/copy".into(), "p/shared".into(), true),
                ("s/shared".into(), "p/shared".into(), true),
            ],
            "s/copy and s/shared are one app in one environment: not reuse"
        );
        assert_eq!(report.protected_pairs(), 2);
        let human = report.to_human();
        assert!(
            human.contains("SHARED (protected) app/staging `s/copy`"),
            "{human}"
        );
    }
}
