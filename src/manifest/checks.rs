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

/// A secret prefix: the beginning of secret names, then one `*` (`orders/staging/*`).
pub(super) fn check_secret_prefix(id: &str) -> Option<&'static str> {
    let Some(prefix) = id.strip_suffix('*').filter(|p| !p.contains('*')) else {
        return Some("only one `*`, at the end, is allowed (`orders/staging/*`)");
    };
    if id.starts_with("arn:") {
        return Some(
            "a prefix is the beginning of secret names, not an ARN (ListSecrets finds this account's secrets by name)",
        );
    }
    if prefix.is_empty() {
        return Some("`*` alone would read every secret of the account: name a prefix");
    }
    check_secret_id(prefix)
}

/// Parameter Store names: 1-2048 of `[A-Za-z0-9_.-/]`, a hierarchical name starts with `/`,
/// at most 15 levels, no `aws`/`ssm` prefix; or a parameter ARN.
pub(super) fn check_parameter_name(id: &str) -> Option<&'static str> {
    let name = if let Some(rest) = id.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        let ok = parts.len() == 5
            && parts[0].starts_with("aws")
            && parts[1] == "ssm"
            && !parts[2].is_empty()
            && parts[3].len() == 12
            && parts[4].starts_with("parameter/")
            && parts[4].len() > "parameter/".len();
        if !ok {
            return Some("not a parameter ARN (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)");
        }
        // `parameter/name` and `parameter/app/db` (the ARN drops the leading slash).
        return check_parameter_name(&format!("/{}", &parts[4]["parameter/".len()..]))
            .map(|_| "the name in the parameter ARN is not valid");
    } else {
        id
    };
    if name.is_empty() || name.len() > 2048 {
        return Some("a parameter name must be 1 to 2048 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
    {
        return Some("a parameter name may only hold letters, digits and _.-/");
    }
    if name.contains('/') && !name.starts_with('/') {
        return Some("a hierarchical parameter name starts with `/`");
    }
    if name.ends_with('/') || name.contains("//") {
        return Some("a parameter name has no empty level (`//` or a trailing `/`)");
    }
    if name.split('/').any(|c| c == "." || c == "..") {
        return Some("a parameter name has no `.` or `..` level");
    }
    if name.matches('/').count() > 15 {
        return Some("a parameter name has at most 15 levels");
    }
    None
}

/// A `parameters_path`: `/` or `/a/b/` style, starting and ending with `/`.
pub(super) fn check_parameter_path(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') || !path.ends_with('/') {
        return Some("a path starts and ends with `/`");
    }
    if path == "/" {
        return None;
    }
    check_parameter_name(path.trim_end_matches('/'))
}

/// Labels: 1-100 of `[A-Za-z0-9_.-]`, not starting with a digit, `aws` or `ssm`.
pub(super) fn check_parameter_label(label: &str) -> Option<&'static str> {
    if label.is_empty() || label.len() > 100 {
        return Some("a label is 1 to 100 characters");
    }
    if !label
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Some("a label may only hold letters, digits and _.-");
    }
    let lower = label.to_ascii_lowercase();
    if label.starts_with(|c: char| c.is_ascii_digit())
        || lower.starts_with("aws")
        || lower.starts_with("ssm")
    {
        return Some("a label cannot start with a digit, `aws` or `ssm`");
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
