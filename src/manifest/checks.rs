//! Syntax checks of single values (names, ARNs, pointers): pure functions, no positions.

use super::{Environment, Format};

pub(super) fn format_name(f: Format) -> &'static str {
    match f {
        Format::Raw => "raw",
        Format::Dotenv => "dotenv",
        Format::Json => "json",
        Format::Template => "template",
    }
}

pub(super) fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Secrets Manager names: 1-512 of `[A-Za-z0-9/_+=.@-]`; or a secret ARN.
pub(super) fn check_secret_id(id: &str) -> Option<&'static str> {
    if let Some(rest) = id.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(6, ':').collect();
        let ok = parts.len() == 6
            && parts[0].starts_with("aws")
            && parts[1] == "secretsmanager"
            && !parts[2].is_empty()
            && parts[3].len() == 12
            && parts[4] == "secret"
            && !parts[5].is_empty();
        return (!ok).then_some(
            "not a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)",
        );
    }
    if id.is_empty() || id.len() > 512 {
        return Some("a secret name must be 1 to 512 characters");
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
    {
        return Some("a secret name may only hold letters, digits and /_+=.@-");
    }
    None
}

pub(super) fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].starts_with("role/")
        && parts[5].len() > 5
}

/// STS session names: `[\w+=,.@-]`.
pub fn is_session_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// For a secret ARN: says how its account or region differs from the environment's.
pub(super) fn foreign_arn(id: &str, env: &Environment) -> Option<String> {
    let parts: Vec<&str> = id.strip_prefix("arn:")?.splitn(6, ':').collect();
    let (region, account) = (parts.get(2)?, parts.get(3)?);
    if let Some(expected) = &env.account
        && account != expected
    {
        return Some(format!(
            "the ARN is in account {account}, the environment in {expected}"
        ));
    }
    if let Some(expected) = &env.region
        && region != expected
    {
        return Some(format!(
            "the ARN is in region {region}, the environment in {expected}"
        ));
    }
    None
}

/// A KMS key ARN: `arn:PARTITION:kms:REGION:ACCOUNT:key/KEY-ID`.
pub(super) fn check_kms_key_arn(arn: &str) -> Option<&'static str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "kms"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].strip_prefix("key/").is_some_and(|id| {
            !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        None
    } else if parts.len() == 6 && parts[5].starts_with("alias/") {
        Some("is an alias ARN, not a key ARN")
    } else {
        Some("is not a KMS key ARN")
    }
}

pub(super) fn check_pointer(p: &str) -> Option<&'static str> {
    let bytes = p.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'~' && !matches!(bytes.get(i + 1), Some(b'0') | Some(b'1')) {
            return Some("`~` not followed by 0 or 1");
        }
    }
    None
}
