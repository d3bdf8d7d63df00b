//! The syntax of `vault_lease:` and `vault_pki:` entries (docs/src/vault-dynamic.md): pure
//! functions shared by validation, the run and `credfile policy`.
//!
//! A certificate request travels through the plan as one reference id, in a canonical form
//! (`pki/issue/web?cn=api.example.test&alt=www.example.test&ip=10.0.0.1&ttl=259200&before=3600`),
//! so `${var}` substitution, deduplication and the state file's record all see one string.
//! Validation allows only DNS and IP characters in names, so the form is unambiguous.

/// A certificate request: `<mount>/issue/<role>` with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiRequest {
    pub mount: String,
    pub role: String,
    pub common_name: String,
    pub alt_names: Vec<String>,
    pub ip_sans: Vec<String>,
    /// Seconds; `None`: the role's default.
    pub ttl: Option<u64>,
    /// Seconds; `None`: a third of the lifetime.
    pub renew_before: Option<u64>,
}

impl PkiRequest {
    /// The Vault path that issues: `<mount>/issue/<role>`.
    pub fn issue_path(&self) -> String {
        format!("{}/issue/{}", self.mount, self.role)
    }

    /// The canonical id (see the module's documentation).
    pub fn encode(&self) -> String {
        let mut out = format!("{}?cn={}", self.issue_path(), self.common_name);
        if !self.alt_names.is_empty() {
            out.push_str(&format!("&alt={}", self.alt_names.join(",")));
        }
        if !self.ip_sans.is_empty() {
            out.push_str(&format!("&ip={}", self.ip_sans.join(",")));
        }
        if let Some(t) = self.ttl {
            out.push_str(&format!("&ttl={t}"));
        }
        if let Some(b) = self.renew_before {
            out.push_str(&format!("&before={b}"));
        }
        out
    }

    /// What [`PkiRequest::encode`] made; `None` for anything else.
    pub fn decode(id: &str) -> Option<PkiRequest> {
        let (path, query) = id.split_once('?')?;
        let (mount, role) = path.rsplit_once("/issue/")?;
        let mut req = PkiRequest {
            mount: mount.to_string(),
            role: role.to_string(),
            common_name: String::new(),
            alt_names: Vec::new(),
            ip_sans: Vec::new(),
            ttl: None,
            renew_before: None,
        };
        let list = |v: &str| v.split(',').map(str::to_string).collect::<Vec<_>>();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=')?;
            match k {
                "cn" => req.common_name = v.to_string(),
                "alt" => req.alt_names = list(v),
                "ip" => req.ip_sans = list(v),
                "ttl" => req.ttl = Some(v.parse().ok()?),
                "before" => req.renew_before = Some(v.parse().ok()?),
                _ => return None,
            }
        }
        (!req.common_name.is_empty()).then_some(req)
    }

    /// The request as it is recorded in the state file: a changed one issues anew.
    pub fn record(&self) -> String {
        self.encode()
    }
}

/// A duration in seconds from `90`, `90s`, `15m`, `72h` or `30d`.
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(factor).filter(|s| *s > 0)
}

/// A DNS name (or wildcard) a certificate may name: letters, digits, `-`, `.`, a leading `*.`.
pub fn check_dns_name(name: &str) -> Option<&'static str> {
    let body = name.strip_prefix("*.").unwrap_or(name);
    if body.is_empty() || name.len() > 253 {
        return Some("is not a DNS name");
    }
    if body
        .split('.')
        .any(|l| l.is_empty() || l.len() > 63 || l.starts_with('-') || l.ends_with('-'))
        || !body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Some("is not a DNS name (letters, digits, `-` and `.`; `*.` first for a wildcard)");
    }
    None
}

/// A mount or role name: what `manifest::vault::check_name` allows, no `?`, `&`, `=` or `,`.
pub fn check_pki_name(name: &str, slashes: bool) -> bool {
    super::vault::check_name(name, slashes) && !name.contains("/issue/")
}

/// A lease path, `MOUNT/creds/ROLE` and the like: a Vault path (`manifest::vault::check_path`).
pub fn check_lease_path(path: &str) -> Option<&'static str> {
    super::vault::check_path(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_survives_its_id() {
        let r = PkiRequest {
            mount: "pki/int".into(),
            role: "web".into(),
            common_name: "api.example.test".into(),
            alt_names: vec!["www.example.test".into(), "*.example.test".into()],
            ip_sans: vec!["10.0.0.1".into(), "::1".into()],
            ttl: Some(259_200),
            renew_before: Some(3600),
        };
        let id = r.encode();
        assert_eq!(PkiRequest::decode(&id), Some(r.clone()));
        let bare = PkiRequest {
            alt_names: Vec::new(),
            ip_sans: Vec::new(),
            ttl: None,
            renew_before: None,
            ..r
        };
        assert_eq!(PkiRequest::decode(&bare.encode()), Some(bare));
        assert_eq!(PkiRequest::decode("secret/x"), None);
    }

    #[test]
    fn durations_and_names() {
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("15m"), Some(900));
        assert_eq!(parse_duration("72h"), Some(259_200));
        assert_eq!(parse_duration("2d"), Some(172_800));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("5w"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(check_dns_name("api.example.test"), None);
        assert_eq!(check_dns_name("*.example.test"), None);
        assert!(check_dns_name("a&b.test").is_some());
        assert!(check_dns_name("a..b").is_some());
        assert!(check_dns_name("").is_some());
    }
}
