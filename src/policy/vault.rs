//! The Vault side of `credfile policy` (docs/src/vault.md, "Governance"): the Vault policy
//! (HCL) granting exactly what an environment reads, and the JWT role a pipeline signs in
//! with (bound to one repository or project, with a short token TTL).
//!
//! KV version 2 keeps values under `MOUNT/data/PATH`, so a `vault: secret/orders/db` reference
//! needs `read` on `secret/data/orders/db` (a pinned version is a query on the same path); a
//! KV version 1 mount (named with `--kv-v1 MOUNT`: the manifest does not say, and `policy`
//! works offline) needs `read` on the path itself. The output is sorted and stable, so it can be
//! committed and diffed.

use std::collections::BTreeMap;

use serde_json::json;

use super::PolicyError;
use crate::manifest::{DEFAULT_VAULT_AUDIENCE, Manifest, Plan, SourceKind};

/// A Vault role's token lives this long, and at most this long with renewals: a run takes
/// seconds; `apply --every` renews or signs in again.
pub const ROLE_TOKEN_TTL: &str = "10m";
pub const ROLE_TOKEN_MAX_TTL: &str = "30m";
/// An environment with `vault_lease:` entries keeps its token, and its leases die with it: the
/// role gives a periodic token instead, renewed by every apply for as long as applies come
/// within the period (docs/src/vault-dynamic.md).
pub const ROLE_LEASE_TOKEN_PERIOD: &str = "24h";

/// One `path "..." { capabilities = [...] }` block, with the comment saying why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub path: String,
    pub capabilities: Vec<&'static str>,
    pub why: String,
}

/// The policy's name in the role (`token_policies`): `credfile-APP-ENV`.
pub fn policy_name(app: &str, env: &str) -> String {
    format!("credfile-{app}-{env}")
}

/// What environment `env` reads from Vault, as grants. `kv_v1`: mounts (`kv1` or `kv1/`) that
/// are KV version 1.
pub fn grants(plan: &Plan, kv_v1: &[String]) -> Vec<Grant> {
    let v1: Vec<String> = kv_v1
        .iter()
        .map(|m| format!("{}/", m.trim_matches('/')))
        .collect();
    let mut by_path: BTreeMap<String, Grant> = BTreeMap::new();
    for r in plan.secret_refs() {
        if r.kind != SourceKind::Vault {
            continue;
        }
        let grant = match v1.iter().find(|m| r.id.starts_with(m.as_str())) {
            Some(_) => Grant {
                path: r.id.clone(),
                capabilities: vec!["read"],
                why: format!("KV v1: vault: {}", r.id),
            },
            None => {
                let (mount, rest) = r.id.split_once('/').unwrap_or((&r.id, ""));
                Grant {
                    path: format!("{mount}/data/{rest}"),
                    capabilities: vec!["read"],
                    why: format!("KV v2: vault: {}", r.id),
                }
            }
        };
        by_path.entry(grant.path.clone()).or_insert(grant);
    }
    // Dynamic credentials: `read` on each lease path; renewing and revoking the leases
    // (docs/src/vault-dynamic.md). Certificates: `update` on `MOUNT/issue/ROLE`.
    let mut leases = false;
    for f in &plan.files {
        let Some(r) = f.dynamic() else { continue };
        let entry = f.path.display();
        let grant = match r.kind {
            SourceKind::VaultLease => {
                leases = true;
                Grant {
                    path: r.id.clone(),
                    capabilities: vec!["read"],
                    why: format!("dynamic credentials: {entry} (vault_lease: {})", r.id),
                }
            }
            _ => match crate::manifest::vault_dynamic::PkiRequest::decode(&r.id) {
                Some(req) => Grant {
                    path: req.issue_path(),
                    capabilities: vec!["update"],
                    why: format!("certificate: {entry} (vault_pki: {})", req.issue_path()),
                },
                None => continue,
            },
        };
        by_path.entry(grant.path.clone()).or_insert(grant);
    }
    if leases {
        for (path, why) in [
            (
                "sys/leases/renew",
                "renew the leases in place instead of issuing new credentials",
            ),
            (
                "sys/leases/revoke",
                "revoke a replaced lease once the new set's hooks succeeded",
            ),
        ] {
            by_path.entry(path.to_string()).or_insert(Grant {
                path: path.to_string(),
                capabilities: vec!["update"],
                why: why.to_string(),
            });
        }
    }
    by_path.into_values().collect()
}

/// The Vault policy for environment `env` of `manifest`, as HCL.
pub fn policy_hcl(manifest: &Manifest, env: &str, kv_v1: &[String]) -> Result<String, PolicyError> {
    let plan = manifest.resolve(env, Some(std::path::Path::new("/")))?;
    let grants = grants(&plan, kv_v1);
    if grants.is_empty() {
        return Err(PolicyError::NoVault {
            file: manifest.file.clone(),
            env: env.to_string(),
        });
    }
    let mut out = format!(
        "# Vault policy `{}`: what environment `{env}` of `{}` reads, and nothing else.\n# Generated by `credfile policy --vault --env {env}`; write it with\n#   vault policy write {} FILE\n",
        policy_name(&plan.app, env),
        plan.app,
        policy_name(&plan.app, env),
    );
    for g in grants {
        let caps: Vec<String> = g.capabilities.iter().map(|c| format!("\"{c}\"")).collect();
        out.push_str(&format!(
            "\n# {}\npath \"{}\" {{\n  capabilities = [{}]\n}}\n",
            g.why,
            g.path,
            caps.join(", ")
        ));
    }
    Ok(out)
}

/// Who signs in with the role: one GitHub repository (optionally one of its environments) or
/// one GitLab project.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bound {
    Github {
        repo: String,
        environment: Option<String>,
    },
    Gitlab {
        host: String,
        project: String,
    },
}

fn parse_role(spec: &str) -> Result<Bound, PolicyError> {
    let fail = |reason: &str| PolicyError::VaultRole {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let path_ok = |p: &str| {
        let parts: Vec<&str> = p.split('/').collect();
        parts.len() >= 2
            && parts.iter().all(|s| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            })
    };
    if let Some(rest) = spec.strip_prefix("github:") {
        let (repo, environment) = match rest.split_once(":environment:") {
            Some((repo, env)) if !env.is_empty() && !env.contains(':') => {
                (repo, Some(env.to_string()))
            }
            Some(_) => return Err(fail("`:environment:` needs a GitHub environment name")),
            None => (rest, None),
        };
        if !path_ok(repo) || repo.split('/').count() != 2 {
            return Err(fail("expected OWNER/REPO"));
        }
        return Ok(Bound::Github {
            repo: repo.to_string(),
            environment,
        });
    }
    if let Some(rest) = spec.strip_prefix("gitlab") {
        let (host, project) = match rest.strip_prefix('@') {
            Some(r) => r
                .split_once(':')
                .ok_or_else(|| fail("expected gitlab@HOST:GROUP/PROJECT"))?,
            None => (
                "gitlab.com",
                rest.strip_prefix(':')
                    .ok_or_else(|| fail("expected gitlab:GROUP/PROJECT"))?,
            ),
        };
        if host.is_empty() || !path_ok(project) {
            return Err(fail("expected gitlab[@HOST]:GROUP/PROJECT"));
        }
        return Ok(Bound::Gitlab {
            host: host.to_string(),
            project: project.to_string(),
        });
    }
    Err(fail("starts with github: or gitlab"))
}

/// The JWT role for `spec` (JSON, as `vault write auth/jwt/role/NAME @FILE` takes it), for
/// environment `env`: its policy, the audience the environment asks for, and the claims
/// that bind it to one repository or project.
pub fn role_json(manifest: &Manifest, env: &str, spec: &str) -> Result<String, PolicyError> {
    let plan = manifest.resolve(env, Some(std::path::Path::new("/")))?;
    let bound = parse_role(spec)?;
    let audience = plan
        .vault
        .as_ref()
        .map(|v| v.auth.audience.clone())
        .unwrap_or_else(|| DEFAULT_VAULT_AUDIENCE.to_string());
    let (claims, issuer) = match &bound {
        Bound::Github { repo, environment } => {
            let mut c = serde_json::Map::new();
            c.insert("repository".into(), json!(repo));
            if let Some(e) = environment {
                c.insert("environment".into(), json!(e));
            }
            (c, "https://token.actions.githubusercontent.com".to_string())
        }
        Bound::Gitlab { host, project } => {
            let mut c = serde_json::Map::new();
            c.insert("project_path".into(), json!(project));
            if plan.protected {
                // Only jobs on protected branches or tags of the project.
                c.insert("ref_protected".into(), json!("true"));
            }
            (c, format!("https://{host}"))
        }
    };
    let mut role = json!({
        "role_type": "jwt",
        "bound_audiences": [audience],
        "bound_claims_type": "string",
        "bound_claims": claims,
        "user_claim": "sub",
        "token_policies": [policy_name(&plan.app, env)],
        "token_ttl": ROLE_TOKEN_TTL,
        "token_max_ttl": ROLE_TOKEN_MAX_TTL,
        "token_type": "service",
    });
    let keeps_leases = plan
        .files
        .iter()
        .filter_map(|f| f.dynamic())
        .any(|r| r.kind == SourceKind::VaultLease);
    if keeps_leases && let Some(fields) = role.as_object_mut() {
        // A 30-minute maximum would end the kept token, and every lease with it, between
        // applies: a periodic token lives as long as it is renewed.
        fields.remove("token_ttl");
        fields.remove("token_max_ttl");
        fields.insert("token_period".into(), json!(ROLE_LEASE_TOKEN_PERIOD));
    }
    let mut text = serde_json::to_string_pretty(&role).unwrap_or_default();
    text.push('\n');
    tracing::info!(issuer = %issuer, "the jwt auth method must trust this issuer (`bound_issuer`, `oidc_discovery_url`)");
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_for_an_environment_with_leases_gives_a_periodic_token() {
        let text = |files: &str| {
            format!(
                "version: 1\napp: orders\nenvironments:\n  prod:\n    root: /run/o\n    vault:\n      address: https://vault.example.com\n      auth:\n        method: jwt\n        role: orders\nfiles:\n{files}"
            )
        };
        let role = |files: &str| -> serde_json::Value {
            let m = crate::manifest::from_text(
                std::path::Path::new("credfile.yaml"),
                &text(files),
                &crate::manifest::PlainFiles,
            )
            .unwrap();
            serde_json::from_str(&role_json(&m, "prod", "github:acme/orders").unwrap()).unwrap()
        };
        let kv = role("  - path: db\n    vault: secret/orders/db\n    key: password\n");
        assert_eq!(kv["token_max_ttl"], ROLE_TOKEN_MAX_TTL);
        assert!(kv.get("token_period").is_none());
        let leases = role("  - path: db\n    vault_lease: database/creds/orders\n");
        assert_eq!(leases["token_period"], ROLE_LEASE_TOKEN_PERIOD);
        assert!(leases.get("token_max_ttl").is_none() && leases.get("token_ttl").is_none());
    }

    #[test]
    fn role_specs_parse() {
        assert_eq!(
            parse_role("github:acme/pay:environment:prod").unwrap(),
            Bound::Github {
                repo: "acme/pay".into(),
                environment: Some("prod".into())
            }
        );
        assert_eq!(
            parse_role("gitlab@git.acme.dev:ops/pay").unwrap(),
            Bound::Gitlab {
                host: "git.acme.dev".into(),
                project: "ops/pay".into()
            }
        );
        assert_eq!(
            parse_role("gitlab:group/sub/pay").unwrap(),
            Bound::Gitlab {
                host: "gitlab.com".into(),
                project: "group/sub/pay".into()
            }
        );
        for bad in [
            "github:acme",
            "github:a/b:environment:",
            "bitbucket:a/b",
            "gitlab@:a/b",
        ] {
            assert!(parse_role(bad).is_err(), "{bad}");
        }
    }
}
