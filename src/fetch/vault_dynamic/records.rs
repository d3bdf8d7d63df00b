//! What the state file records about Vault's dynamic credentials and certificates, and the
//! decisions an apply takes from those records (docs/src/vault-dynamic.md).
//!
//! A record names a lease or a certificate: ids, times, the request that made it. Never a
//! value: a password, a private key or a token has no field here, and the certificate itself
//! (public, but the files hold it) is not copied either.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything credfile holds in Vault for one root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultRecords {
    /// The live leases, one per `vault_lease:` entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leases: Vec<LeaseRecord>,
    /// The live certificates, one per `vault_pki:` entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertRecord>,
    /// Leases a run replaced whose successors' change hooks have not all succeeded yet. A
    /// consumer may still use the old credentials until its hook reloaded it, so they are
    /// revoked only then (or at `clean`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<LeaseRecord>,
}

impl VaultRecords {
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty() && self.certificates.is_empty() && self.retired.is_empty()
    }

    /// The lease behind the set at `path` (the entry's directory), if any.
    pub fn lease(&self, path: &std::path::Path) -> Option<&LeaseRecord> {
        self.leases.iter().find(|l| l.path == path)
    }

    pub fn certificate(&self, path: &std::path::Path) -> Option<&CertRecord> {
        self.certificates.iter().find(|c| c.path == path)
    }
}

/// One lease of dynamic credentials (`vault_lease:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRecord {
    /// The entry's directory, relative to the root: the set this lease's values are in.
    pub path: PathBuf,
    /// The Vault path that was read (`database/creds/orders-app`).
    pub source: String,
    /// Vault's lease id (`database/creds/orders-app/AbC...`): an identifier, not a credential.
    pub lease_id: String,
    /// When the credentials were issued, Unix seconds.
    pub issued_at: u64,
    /// When the lease ends unless renewed, Unix seconds.
    pub expires_at: u64,
    /// The lease's duration as issued, in seconds: "a third of its TTL" is measured against it.
    pub ttl: u64,
    pub renewable: bool,
}

/// One certificate (`vault_pki:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertRecord {
    /// The entry's directory, relative to the root.
    pub path: PathBuf,
    /// `<mount>/issue/<role>`.
    pub source: String,
    /// The certificate's serial number, as Vault prints it (`2e:4e:...`).
    pub serial: String,
    /// When it was issued and when it expires, Unix seconds.
    pub issued_at: u64,
    pub expires_at: u64,
    /// The request, in one line (common name, SANs, TTL): a changed manifest issues anew.
    pub request: String,
}

/// What an apply does with a recorded lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeasePlan {
    /// Ask Vault to extend it (`sys/leases/renew`); the set stays as it is if the answer is
    /// long enough (see [`renewal_suffices`]).
    Renew,
    /// Leave it: not renewable, and more than a third of its TTL is left.
    Keep,
    /// New credentials: expired, or not renewable with less than a third left.
    Replace,
}

impl LeaseRecord {
    pub fn plan(&self, now: u64) -> LeasePlan {
        if now >= self.expires_at {
            LeasePlan::Replace
        } else if self.renewable {
            LeasePlan::Renew
        } else if third_left(self.expires_at - now, self.ttl) {
            LeasePlan::Keep
        } else {
            LeasePlan::Replace
        }
    }

    /// Whether it ends before `deadline` (Unix seconds): `verify` warns about those.
    pub fn ends_before(&self, deadline: u64) -> bool {
        self.expires_at <= deadline
    }
}

/// Whether a renewal that granted `granted` seconds keeps the credentials: more than a third of
/// the lease's TTL. Less means the role's maximum TTL is near: Vault caps each renewal at it,
/// and new credentials are due before the lease runs out under the consumer.
pub fn renewal_suffices(granted: u64, ttl: u64) -> bool {
    third_left(granted, ttl)
}

/// `left` is more than a third of `lifetime` (a zero lifetime never is).
fn third_left(left: u64, lifetime: u64) -> bool {
    lifetime > 0 && left.saturating_mul(3) > lifetime
}

/// What `verify` learns of the kept token (`auth/token/lookup-self`): whether it still lives and
/// the latest moment it can, as far as Vault says (docs/src/vault-dynamic.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeptToken {
    /// It no longer looks itself up (expired or revoked): Vault revoked its leases with it.
    Gone,
    /// It lives; `ends_at` (Unix seconds) is when it ends at the latest, and `why` which field
    /// said so. `None`: Vault says nothing that bounds it (a renewable token without an
    /// explicit maximum; the role's or mount's `token_max_ttl` is not in the lookup).
    Lives {
        ends_at: Option<u64>,
        why: &'static str,
    },
}

impl KeptToken {
    /// From `lookup-self`'s `data`: `explicit_max_ttl` counted from `creation_time` caps it; a
    /// token that is not renewable ends with its `ttl`. `now`: Unix seconds.
    pub fn from_lookup(data: &serde_json::Value, now: u64) -> KeptToken {
        let num = |k: &str| data.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let renewable = data
            .get("renewable")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let (ttl, explicit, created) = (num("ttl"), num("explicit_max_ttl"), num("creation_time"));
        let mut end: Option<(u64, &'static str)> = None;
        if explicit > 0 && created > 0 {
            end = Some((created + explicit, "its explicit_max_ttl"));
        }
        if !renewable && ttl > 0 && end.is_none_or(|(at, _)| now + ttl < at) {
            end = Some((now + ttl, "its TTL (it is not renewable)"));
        }
        match end {
            Some((at, why)) => KeptToken::Lives {
                ends_at: Some(at),
                why,
            },
            None => KeptToken::Lives {
                ends_at: None,
                why: "",
            },
        }
    }

    /// The live leases that would outlive the token: Vault revokes them when it ends.
    pub fn outlived<'a>(&self, leases: &'a [LeaseRecord]) -> Vec<&'a LeaseRecord> {
        match self {
            KeptToken::Lives {
                ends_at: Some(end), ..
            } => leases
                .iter()
                .filter(|l| !l.lease_id.is_empty() && l.expires_at > *end)
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl CertRecord {
    /// Whether the certificate must be issued again at `now`: the request changed, it expired,
    /// or less than `renew_before` seconds (default: a third of its lifetime) is left.
    pub fn due(&self, now: u64, request: &str, renew_before: Option<u64>) -> bool {
        if self.request != request || now >= self.expires_at {
            return true;
        }
        let left = self.expires_at - now;
        match renew_before {
            Some(before) => left <= before,
            None => !third_left(left, self.expires_at.saturating_sub(self.issued_at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(expires_at: u64, ttl: u64, renewable: bool) -> LeaseRecord {
        LeaseRecord {
            path: "db".into(),
            source: "database/creds/app".into(),
            lease_id: "database/creds/app/x".into(),
            issued_at: 1000,
            expires_at,
            ttl,
            renewable,
        }
    }

    #[test]
    fn a_live_renewable_lease_is_renewed_an_expired_one_replaced() {
        assert_eq!(lease(1300, 300, true).plan(1100), LeasePlan::Renew);
        assert_eq!(lease(1300, 300, true).plan(1300), LeasePlan::Replace);
        assert_eq!(lease(1300, 300, false).plan(1100), LeasePlan::Keep);
        // 99 s of 300 left: less than a third.
        assert_eq!(lease(1300, 300, false).plan(1201), LeasePlan::Replace);
    }

    #[test]
    fn a_renewal_capped_by_the_max_ttl_asks_for_new_credentials() {
        assert!(renewal_suffices(300, 300));
        assert!(renewal_suffices(101, 300));
        assert!(!renewal_suffices(100, 300));
        assert!(!renewal_suffices(0, 0));
    }

    #[test]
    fn a_certificate_is_issued_again_only_when_due() {
        let c = CertRecord {
            path: "tls".into(),
            source: "pki/issue/web".into(),
            serial: "01:02".into(),
            issued_at: 1000,
            expires_at: 1900,
            request: "cn=a".into(),
        };
        assert!(!c.due(1500, "cn=a", None), "400 of 900 s left");
        assert!(c.due(1600, "cn=a", None), "300 of 900 s left: a third");
        assert!(c.due(1100, "cn=b", None), "another request");
        assert!(c.due(1900, "cn=a", None), "expired");
        assert!(!c.due(1700, "cn=a", Some(100)));
        assert!(c.due(1800, "cn=a", Some(100)));
    }

    #[test]
    fn the_kept_token_ends_at_its_explicit_max_or_its_ttl_when_not_renewable() {
        let lookup = |v: serde_json::Value| KeptToken::from_lookup(&v, 1000);
        let capped = lookup(serde_json::json!({
            "ttl": 60, "renewable": true, "explicit_max_ttl": 120, "creation_time": 950
        }));
        assert_eq!(
            capped,
            KeptToken::Lives {
                ends_at: Some(1070),
                why: "its explicit_max_ttl"
            }
        );
        // Lease ends 1300 > 1070: outlived; one ending at 1070 is not.
        let leases = [lease(1300, 300, true), lease(1070, 300, true)];
        assert_eq!(capped.outlived(&leases), vec![&leases[0]]);
        let fixed = lookup(serde_json::json!({ "ttl": 50, "renewable": false }));
        assert_eq!(
            fixed,
            KeptToken::Lives {
                ends_at: Some(1050),
                why: "its TTL (it is not renewable)"
            }
        );
        // Renewable without an explicit maximum: nothing bounds it as far as Vault says.
        let open = lookup(serde_json::json!({ "ttl": 50, "renewable": true }));
        assert_eq!(open.outlived(&leases), Vec::<&LeaseRecord>::new());
        assert_eq!(
            KeptToken::Gone.outlived(&leases),
            Vec::<&LeaseRecord>::new()
        );
    }

    #[test]
    fn records_hold_no_value() {
        let r = VaultRecords {
            leases: vec![lease(1300, 300, true)],
            certificates: Vec::new(),
            retired: Vec::new(),
        };
        let text = serde_json::to_string(&r).unwrap();
        for word in ["password", "private", "token", "value", "key"] {
            assert!(!text.contains(word), "{text}");
        }
        let back: VaultRecords = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }
}
