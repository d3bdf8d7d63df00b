//! Syntax checks of the Vault settings and references (docs/src/vault.md): pure functions,
//! shared by validation, lint and the Vault seam.

/// 127.0.0.0/8, ::1 and `localhost`: where plain http may carry a token.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The scheme and host of `address` (`https`, `vault.example.com`), if it has that shape.
fn scheme_host(address: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = address.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        &authority[..v6.find(']').map_or(authority.len(), |i| i + 2)]
    } else {
        authority.split(':').next().unwrap_or("")
    };
    Some((scheme, host))
}

/// Whether `address` is plain http to a host other than this one (lint's `vault-plain-http`).
pub fn plain_http_off_host(address: &str) -> bool {
    matches!(scheme_host(address), Some((s, h)) if s.eq_ignore_ascii_case("http") && !is_loopback(h))
}

/// Whether `address` may carry a token: https, or http to this host only; nothing after the
/// port. `Some(why)` when not.
pub fn check_address(address: &str) -> Option<&'static str> {
    let Some((scheme, host)) = scheme_host(address) else {
        return Some("is not a URL like https://vault.example.com:8200");
    };
    if host.is_empty()
        || address.chars().any(|c| c.is_whitespace() || c.is_control())
        || address.contains('@')
    {
        return Some("is not a URL like https://vault.example.com:8200");
    }
    match scheme {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => {
            return Some(
                "is plain http to another host: the token and every value would cross the network in clear text; use https (http is accepted on 127.0.0.1, ::1 and localhost only)",
            );
        }
        _ => return Some("must start with https:// (or http:// on loopback)"),
    }
    let rest = &address[scheme.len() + 3..];
    let after = rest.find(['/', '?', '#']).map(|i| &rest[i..]).unwrap_or("");
    if !after.is_empty() && after != "/" {
        return Some("must be the server's address only, without a path (no /v1) or query");
    }
    None
}

/// A KV secret path, `MOUNT/PATH`: at least two levels, no empty, `.` or `..` level, no
/// characters a URL would read differently.
pub fn check_path(path: &str) -> Option<&'static str> {
    if path.is_empty() || path.len() > 1024 {
        return Some("a Vault path must be 1 to 1024 characters");
    }
    if path.starts_with('/') || path.ends_with('/') {
        return Some("a Vault path is MOUNT/PATH, without a leading or trailing `/`");
    }
    if path.split('/').count() < 2 {
        return Some(
            "a Vault path is MOUNT/PATH (e.g. secret/orders/db): the mount, then the secret",
        );
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Some("a Vault path must not have empty, `.` or `..` levels");
    }
    if !path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/_-.+=@:,".contains(c))
    {
        return Some("a Vault path may only hold letters, digits and /_-.+=@:,");
    }
    None
}

/// An auth mount or a role name: letters, digits and `-_.@`, and `/` inside a mount.
pub fn check_name(name: &str, slashes: bool) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name.starts_with('/')
        && !name.ends_with('/')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c) || (slashes && c == '/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(check_address("https://vault.example.com:8200"), None);
        assert_eq!(check_address("https://vault.example.com:8200/"), None);
        assert_eq!(check_address("http://127.0.0.1:8200"), None);
        assert_eq!(check_address("http://[::1]:8200"), None);
        assert_eq!(check_address("http://localhost:8200"), None);
        assert!(
            check_address("http://vault.example.com:8200")
                .is_some_and(|m| m.contains("clear text"))
        );
        assert!(check_address("http://127.0.0.1.evil.example").is_some());
        assert!(check_address("https://v.example/v1").is_some());
        assert!(check_address("vault.example.com").is_some());
        assert!(check_address("https://user@v.example").is_some());
        assert!(plain_http_off_host("http://10.0.0.5:8200"));
        assert!(!plain_http_off_host("http://127.0.0.1:8200"));
        assert!(!plain_http_off_host("https://10.0.0.5:8200"));
    }

    #[test]
    fn paths() {
        assert_eq!(check_path("secret/orders/db"), None);
        assert!(check_path("secret").is_some());
        assert!(check_path("/secret/x").is_some());
        assert!(check_path("secret//x").is_some());
        assert!(check_path("secret/../x").is_some());
        assert!(check_path("secret/x?version=2").is_some());
        assert!(check_path("secret/x y").is_some());
    }
}
