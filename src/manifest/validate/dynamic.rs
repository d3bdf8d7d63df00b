//! Validation of `vault_lease:` and `vault_pki:` entries (docs/src/vault-dynamic.md): a
//! directory of files whose values Vault issues with a lifetime.

use super::*;
use crate::manifest::vault_dynamic::{
    PkiRequest, check_dns_name, check_lease_path, check_pki_name, parse_duration,
};

impl Validator<'_> {
    /// The entry's content when it has `vault_lease:` or `vault_pki:`: the entry's only source.
    pub(super) fn dynamic(
        &mut self,
        base: &[Seg],
        f: &raw::File,
        envs: &[&Environment],
    ) -> Option<EntryContent> {
        let (k, kind) = match (&f.vault_lease, &f.vault_pki) {
            (Some(_), None) => ("vault_lease", SourceKind::VaultLease),
            (None, Some(_)) => ("vault_pki", SourceKind::VaultPki),
            _ => {
                self.problem(
                    &at(base, &[key("vault_pki")]),
                    "give `vault_lease:` or `vault_pki:`, not both",
                    Some("each is a directory entry of its own"),
                );
                return None;
            }
        };
        let others = [
            ("secret", f.secret.is_some()),
            ("parameter", f.parameter.is_some()),
            ("vault", f.vault.is_some()),
            ("ci_variable", f.ci_variable.is_some()),
            ("ci_variable_file", f.ci_variable_file.is_some()),
            ("parameters_path", f.parameters_path.is_some()),
            ("keys", f.keys.is_some()),
            ("key", f.key.is_some()),
            ("encoding", f.encoding.is_some()),
            ("version", f.version.is_some()),
            ("version_stage", f.version_stage.is_some()),
            ("version_id", f.version_id.is_some()),
            ("label", f.label.is_some()),
            ("values", f.values.is_some()),
        ];
        for (other, present) in others {
            if present {
                self.problem(
                    &at(base, &[key(other)]),
                    format!("`{other}` cannot be combined with `{k}`"),
                    Some("a lease or a certificate is the entry's only source: its files are named by what Vault returns"),
                );
            }
        }
        if f.format != Format::Raw {
            self.problem(
                &at(base, &[key("format")]),
                format!("`{k}` writes one file per value: it takes no `format:`"),
                None,
            );
        }
        for env in envs.iter().filter(|e| e.vault.is_none()) {
            self.problem(
                &at(base, &[key(k)]),
                format!(
                    "environment `{}` reads from Vault but has no `vault:` block",
                    env.name
                ),
                Some("add `vault: { address: https://..., auth: {...} }` under the environment or `defaults`, or limit the file with `environments:`"),
            );
        }
        let id = match (&f.vault_lease, &f.vault_pki) {
            (Some(path), _) => path.clone(),
            (_, Some(pki)) => self.pki_id(&at(base, &[key(k)]), pki)?,
            _ => return None,
        };
        let kat = at(base, &[key(k)]);
        for env in envs {
            let resolved = match substitute(&id, &env.vars) {
                Ok(r) => r,
                Err(SubstError::Unclosed) => {
                    self.problem(&kat, "`${` without a closing `}`", None);
                    return None;
                }
                Err(SubstError::Undefined(var)) => {
                    self.rule_problem(RULE_VAR_UNKNOWN, &kat, format!("`${{{var}}}` is not defined in environment `{}`", env.name), Some(&format!("add `{var}` under `environments.{}.vars`, or limit the file with `environments:`", env.name)));
                    continue;
                }
            };
            let why = match kind {
                SourceKind::VaultLease => check_lease_path(&resolved).map(str::to_string),
                _ => PkiRequest::decode(&resolved)
                    .map_or(Some("is not a valid request".to_string()), |r| {
                        check_request(&r)
                    }),
            };
            if let Some(why) = why {
                self.problem(
                    &kat,
                    format!("`{k}` (environment `{}`): {why}", env.name),
                    Some(match kind {
                        SourceKind::VaultLease => "`vault_lease:` takes the path that issues credentials, e.g. database/creds/orders-app",
                        _ => "`vault_pki:` takes { mount, role, common_name, alt_names, ip_sans, ttl, renew_before }",
                    }),
                );
            }
        }
        Some(EntryContent::Expand {
            source: EntrySource {
                kind,
                secret: id,
                key: None,
                pin: Pin::Current,
                sensitive: true,
            },
        })
    }

    /// The canonical request id of a `vault_pki:` block (names are checked per environment,
    /// after substitution).
    fn pki_id(&mut self, p: &[Seg], pki: &raw::VaultPki) -> Option<String> {
        let mut missing = false;
        for (k, v) in [
            ("mount", &pki.mount),
            ("role", &pki.role),
            ("common_name", &pki.common_name),
        ] {
            if v.as_deref().is_none_or(str::is_empty) {
                self.problem(&at(p, &[key(k)]), format!("`vault_pki:` needs `{k}`"), None);
                missing = true;
            }
        }
        let mut seconds = |k: &str, d: &Option<raw::Duration>| -> Option<Option<u64>> {
            match d {
                None => Some(None),
                Some(raw::Duration::Seconds(s)) if *s > 0 => Some(Some(*s)),
                Some(raw::Duration::Text(t)) if parse_duration(t).is_some() => {
                    Some(parse_duration(t))
                }
                Some(_) => {
                    self.problem(
                        &at(p, &[key(k)]),
                        format!("`{k}` is not a duration"),
                        Some("seconds, or a number with s, m, h or d: 90s, 15m, 72h, 30d"),
                    );
                    None
                }
            }
        };
        let ttl = seconds("ttl", &pki.ttl);
        let renew_before = seconds("renew_before", &pki.renew_before);
        let (Some(ttl), Some(renew_before)) = (ttl, renew_before) else {
            return None;
        };
        if let (Some(t), Some(b)) = (ttl, renew_before)
            && b >= t
        {
            self.problem(
                &at(p, &[key("renew_before")]),
                "`renew_before` must be shorter than `ttl`",
                Some("otherwise every apply issues a new certificate"),
            );
        }
        if missing {
            return None;
        }
        Some(
            PkiRequest {
                mount: pki.mount.clone().unwrap_or_default(),
                role: pki.role.clone().unwrap_or_default(),
                common_name: pki.common_name.clone().unwrap_or_default(),
                alt_names: pki.alt_names.clone(),
                ip_sans: pki.ip_sans.clone(),
                ttl,
                renew_before,
            }
            .encode(),
        )
    }
}

/// What is wrong with a request whose `${var}`s are substituted, if anything.
fn check_request(r: &PkiRequest) -> Option<String> {
    if !check_pki_name(&r.mount, true) {
        return Some(format!("mount `{}` is not a mount path", r.mount));
    }
    if !check_pki_name(&r.role, false) {
        return Some(format!("role `{}` is not a role name", r.role));
    }
    for name in std::iter::once(&r.common_name).chain(&r.alt_names) {
        if let Some(why) = check_dns_name(name) {
            return Some(format!("`{}` {why}", crate::terminal::Escaped(name)));
        }
    }
    for ip in &r.ip_sans {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Some(format!(
                "ip_sans `{}` is not an IP address",
                crate::terminal::Escaped(ip)
            ));
        }
    }
    None
}
