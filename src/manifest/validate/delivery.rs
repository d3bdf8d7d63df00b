//! Validation of `deliver:` and what it implies for the entries (docs/src/systemd-creds.md).

use super::*;

/// The longest credential name systemd takes (a file name: NAME_MAX).
const MAX_CREDENTIAL_NAME: usize = 255;

/// Whether `name` is a systemd credential name credfile writes: a file name systemd accepts
/// (`credential_name_valid`) made of characters a unit file line carries as they are (no `%`
/// specifier, no `:` that would split `LoadCredentialEncrypted=NAME:PATH`, no space), not hidden
/// (names starting with `.` are credfile's own in a root).
pub fn is_credential_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CREDENTIAL_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@+".contains(&b))
}

/// Whether `t` is a `not_after` credfile passes to `systemd-creds --not-after=`: an absolute
/// time, `YYYY-MM-DD`, optionally ` HH:MM` or ` HH:MM:SS`, optionally ` UTC`. Absolute only: a
/// relative time would give every run a different credential.
pub fn is_not_after(t: &str) -> bool {
    let t = t.strip_suffix(" UTC").unwrap_or(t);
    let (date, time) = match t.split_once(' ') {
        Some((d, t)) => (d, Some(t)),
        None => (t, None),
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let date_ok = match date.split('-').collect::<Vec<_>>().as_slice() {
        [y, m, d] => digits(y, 4) && digits(m, 2) && digits(d, 2),
        _ => false,
    };
    let time_ok = match time.map(|t| t.split(':').collect::<Vec<_>>()) {
        None => true,
        Some(parts) => (parts.len() == 2 || parts.len() == 3) && parts.iter().all(|p| digits(p, 2)),
    };
    date_ok && time_ok
}

impl Validator<'_> {
    /// `deliver`, `credential_key` and `not_after` of one environment.
    pub(super) fn delivery(&mut self, base: &[Seg], e: &raw::Environment) -> Delivery {
        match e.deliver.unwrap_or_default() {
            raw::Deliver::Plain => {
                for (field, given) in [
                    ("credential_key", e.credential_key.is_some()),
                    ("not_after", e.not_after.is_some()),
                ] {
                    if given {
                        self.problem(
                            &at(base, &[key(field)]),
                            format!("`{field}` only applies with `deliver: systemd-creds`"),
                            Some("add `deliver: systemd-creds` to this environment, or remove the key"),
                        );
                    }
                }
                Delivery::Plain
            }
            raw::Deliver::SystemdCreds => {
                if let Some(t) = &e.not_after
                    && !is_not_after(t)
                {
                    self.problem(
                        &at(base, &[key("not_after")]),
                        format!("`not_after` `{t}` is not a date and time credfile passes to systemd-creds"),
                        Some("write an absolute time: \"2027-01-31\", \"2027-01-31 12:00\" or \"2027-01-31 12:00:00 UTC\""),
                    );
                }
                Delivery::SystemdCreds {
                    key: e.credential_key.unwrap_or_default(),
                    not_after: e.not_after.clone(),
                }
            }
        }
    }

    /// In a `deliver: systemd-creds` environment each entry's path is the credential's name.
    pub(super) fn credential_names(&mut self, files: &[Entry], envs: &[Environment]) {
        for f in files {
            let Some(env) = envs.iter().find(|e| {
                matches!(e.delivery, Delivery::SystemdCreds { .. }) && applies(f, &e.name)
            }) else {
                continue;
            };
            let at_path = [key("files"), Seg::Index(f.index), key("path")];
            if matches!(f.content, EntryContent::Expand { .. }) {
                self.problem(
                    &at_path,
                    format!(
                        "`{}` expands to a directory of files, but environment `{}` sets `deliver: systemd-creds`: each credential is one named file",
                        f.path.display(),
                        env.name
                    ),
                    Some("name each value in its own entry, or limit this entry to other environments with `environments:`"),
                );
                continue;
            }
            let name = f.path.to_string_lossy();
            if !is_credential_name(&name) {
                self.problem(
                    &at_path,
                    format!(
                        "path `{name}` is not a systemd credential name, and environment `{}` sets `deliver: systemd-creds` (the path is the name `LoadCredentialEncrypted=` asks for)",
                        env.name
                    ),
                    Some("use one name of letters, digits, `.`, `_`, `-`, `@` or `+`, without `/` and not starting with `.` (for example `db-password` instead of `db/password`)"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names() {
        for ok in ["db-password", "tls.key", "a@b+c_d", "x"] {
            assert!(is_credential_name(ok), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "",
            "db/password",
            ".hidden",
            "a b",
            "a:b",
            "a%b",
            long.as_str(),
        ] {
            assert!(!is_credential_name(bad), "{bad}");
        }
    }

    #[test]
    fn not_after_times() {
        for ok in ["2027-01-31", "2027-01-31 12:00", "2027-01-31 12:00:59 UTC"] {
            assert!(is_not_after(ok), "{ok}");
        }
        for bad in [
            "+30d",
            "tomorrow",
            "2027-1-31",
            "2027-01-31T12:00",
            "2027-01-31 12",
        ] {
            assert!(!is_not_after(bad), "{bad}");
        }
    }
}
