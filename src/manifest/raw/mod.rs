//! Stage one of the manifest: plain serde structs that mirror the YAML exactly.
//!
//! Every struct denies unknown keys, so a typo (`mdoe:`) or an attempt to put a literal value in
//! the manifest (`value:`) is an error with a position, not silently ignored. serde_yaml is
//! archived upstream, so it is used only here, behind [`parse`] and [`locate`].

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

mod position;
pub use position::{Seg, entry_lines, entry_spans, locate};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub app: String,
    #[serde(default)]
    pub defaults: Defaults,
    pub environments: OrderedMap<Environment>,
    pub files: Vec<File>,
}

/// Settings every environment inherits and may override.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub region: Option<String>,
    pub root: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
    pub dir_mode: Option<String>,
    pub layout: Option<Layout>,
    pub on_change: Option<Vec<String>>,
    pub vault: Option<Vault>,
}

/// One environment. The `defaults` keys are repeated here rather than flattened, because serde's
/// `flatten` does not work with `deny_unknown_fields`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub region: Option<String>,
    pub root: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
    pub dir_mode: Option<String>,
    pub layout: Option<Layout>,
    pub on_change: Option<Vec<String>>,
    pub account: Option<String>,
    #[serde(default)]
    pub protected: bool,
    #[serde(default)]
    pub allow_static_credentials: bool,
    #[serde(default)]
    pub require_memory_fs: bool,
    #[serde(default)]
    pub identity: Identity,
    #[serde(default)]
    pub vars: OrderedMap<String>,
    /// Customer-managed KMS keys that encrypt this environment's secrets (key ARNs). Only
    /// `credfile policy` reads them, to grant `kms:Decrypt`.
    pub kms_keys: Option<Vec<String>>,
    /// How the files reach the host: plaintext (default) or systemd encrypted credentials.
    pub deliver: Option<Deliver>,
    /// `deliver: systemd-creds`: which key seals the credentials.
    pub credential_key: Option<CredentialKey>,
    /// `deliver: systemd-creds`: the time after which the credentials no longer decrypt.
    pub not_after: Option<String>,
    /// `credfile run` as root: the user the command runs as (docs/src/run.md).
    pub run_as: Option<String>,
    /// Where Vault is and how to sign in (docs/src/vault.md); fields not set here come from
    /// `defaults.vault`.
    pub vault: Option<Vault>,
}

/// How an environment's files reach the host (docs/src/systemd-creds.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Deliver {
    /// Plaintext files with the manifest's modes and owners.
    #[default]
    Plain,
    /// systemd encrypted credentials (`systemd-creds encrypt`), for `LoadCredentialEncrypted=`.
    SystemdCreds,
}

/// `credential_key:`, passed as `systemd-creds encrypt --with-key=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum CredentialKey {
    /// The TPM2 and the host key when both exist, else what there is.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// The host key (`/var/lib/systemd/credential.secret`).
    #[serde(rename = "host")]
    Host,
    #[serde(rename = "tpm2")]
    Tpm2,
    #[serde(rename = "host+tpm2")]
    HostTpm2,
}

impl CredentialKey {
    /// The word `systemd-creds --with-key=` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKey::Auto => "auto",
            CredentialKey::Host => "host",
            CredentialKey::Tpm2 => "tpm2",
            CredentialKey::HostTpm2 => "host+tpm2",
        }
    }
}

/// `vault:` on an environment or the defaults.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vault {
    pub address: Option<String>,
    pub namespace: Option<String>,
    pub ca_file: Option<String>,
    pub auth: Option<VaultAuth>,
}

/// `vault.auth:`. Which keys a method takes is checked in validation, each with a hint; a
/// secret (`secret_id`, a token) has no key here: it comes from a variable or a file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultAuth {
    pub method: Option<VaultMethod>,
    /// Where the auth method is mounted (`auth/<mount>`); default: the method's name.
    pub mount: Option<String>,
    /// jwt, kubernetes, aws: the Vault role to sign in as.
    pub role: Option<String>,
    /// jwt on GitHub Actions: the `aud` requested from the token endpoint.
    pub audience: Option<String>,
    /// jwt on GitLab CI: the variable holding the `id_tokens` JWT.
    pub token_env: Option<String>,
    /// kubernetes: the service-account token file.
    pub token_file: Option<String>,
    /// aws: the `X-Vault-AWS-IAM-Server-ID` header value the role requires.
    pub server_id: Option<String>,
    /// approle: the role id itself (an identifier, not a secret) or a file holding it.
    pub role_id: Option<String>,
    pub role_id_file: Option<String>,
    /// approle: the variable or the file holding the secret id.
    pub secret_id_env: Option<String>,
    pub secret_id_file: Option<String>,
    /// approle: the secret id is a response-wrapping token, unwrapped first.
    #[serde(default)]
    pub wrapped: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VaultMethod {
    Jwt,
    Kubernetes,
    Aws,
    Approle,
    Token,
}

impl VaultMethod {
    pub fn name(self) -> &'static str {
        match self {
            VaultMethod::Jwt => "jwt",
            VaultMethod::Kubernetes => "kubernetes",
            VaultMethod::Aws => "aws",
            VaultMethod::Approle => "approle",
            VaultMethod::Token => "token",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub role_arn: Option<String>,
    pub web_identity: Option<WebIdentity>,
    pub audience: Option<String>,
    pub token_env: Option<String>,
    pub session_name: Option<String>,
    pub duration: Option<u32>,
    pub then_assume: Option<String>,
    pub then_session_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebIdentity {
    Auto,
    Github,
    Gitlab,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Raw,
    Dotenv,
    Json,
    Template,
}

/// Which program reads a `format: dotenv` file (docs/src/manifest.md, "Rendering"): each quotes and
/// escapes differently, so the encoder follows the reader (src/render/dotenv.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// The strict form both dotenvy and python-dotenv read back exactly.
    #[default]
    Common,
    PythonDotenv,
    Dotenvy,
    /// node's `dotenv` package.
    Node,
    /// `docker run --env-file` (and compose's `env_file` in its raw form).
    Docker,
    /// POSIX shell `.` / `source` (dash, bash).
    Shell,
    /// systemd's `EnvironmentFile=`.
    Systemd,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Common => "common",
            Dialect::PythonDotenv => "python-dotenv",
            Dialect::Dotenvy => "dotenvy",
            Dialect::Node => "node",
            Dialect::Docker => "docker",
            Dialect::Shell => "shell",
            Dialect::Systemd => "systemd",
        }
    }
}

/// How a root's files are published (docs/src/layouts.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Set-atomic: hidden generation directories, one `current` symlink flip.
    #[default]
    Generation,
    /// Per-file atomic replacement at fixed paths.
    Files,
}

/// `keys:` on a secret entry; `all` is the only value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keys {
    All,
}

/// `vault_pki:` (docs/src/vault-dynamic.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultPki {
    /// The pki mount, e.g. `pki`.
    pub mount: Option<String>,
    pub role: Option<String>,
    pub common_name: Option<String>,
    #[serde(default)]
    pub alt_names: Vec<String>,
    #[serde(default)]
    pub ip_sans: Vec<String>,
    /// The certificate's lifetime (`72h`, `30m`, `90s` or seconds); default: the role's.
    pub ttl: Option<Duration>,
    /// Issue anew when this much is left; default: a third of the lifetime.
    pub renew_before: Option<Duration>,
}

/// A duration: seconds, or a number with `s`, `m`, `h` or `d`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Duration {
    Seconds(u64),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Base64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub path: String,
    #[serde(default)]
    pub format: Format,
    /// Only with `format: dotenv`.
    pub dialect: Option<Dialect>,
    pub secret: Option<String>,
    /// A Parameter Store name or ARN.
    pub parameter: Option<String>,
    /// credfile's environment variable holding the value (the CI-variable tier).
    pub ci_variable: Option<String>,
    /// credfile's environment variable holding the path of a file with the value.
    pub ci_variable_file: Option<String>,
    /// A Vault KV secret, `MOUNT/PATH` (docs/src/vault.md).
    pub vault: Option<String>,
    pub key: Option<String>,
    pub version_stage: Option<String>,
    pub version_id: Option<String>,
    /// A parameter's version number, or a KV v2 secret's.
    pub version: Option<u64>,
    /// A parameter's label.
    pub label: Option<String>,
    pub encoding: Option<Encoding>,
    /// `keys: all`: one file per top-level key of the secret, under `path` as a directory.
    pub keys: Option<Keys>,
    /// One file per parameter below this Parameter Store path, under `path` as a directory.
    pub parameters_path: Option<String>,
    /// Dynamic credentials, e.g. `database/creds/orders-app`: one file per key of the answer,
    /// under `path` as a directory (docs/src/vault-dynamic.md).
    pub vault_lease: Option<String>,
    /// A certificate from a pki mount: `cert.pem`, `key.pem` and `chain.pem` under `path`.
    pub vault_pki: Option<VaultPki>,
    pub values: Option<OrderedMap<Value>>,
    pub template: Option<String>,
    pub template_file: Option<String>,
    pub on_change: Option<Vec<String>>,
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub environments: Option<Vec<String>>,
    #[serde(default)]
    pub allow_cross_account: bool,
    #[serde(default)]
    pub allow_in_repository: bool,
    /// `false`: the value is configuration (a host, a port), not a secret; `audit reuse` and
    /// lint's sharing rules skip it. It is still fetched and written like any other.
    pub sensitive: Option<bool>,
    /// Lint findings this entry accepts, each with the reason.
    pub lint: Option<LintOptions>,
}

/// One entry of a `dotenv` or `json` file's `values`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Value {
    pub secret: Option<String>,
    pub parameter: Option<String>,
    pub ci_variable: Option<String>,
    pub ci_variable_file: Option<String>,
    pub vault: Option<String>,
    pub key: Option<String>,
    pub version_stage: Option<String>,
    pub version_id: Option<String>,
    pub version: Option<u64>,
    pub label: Option<String>,
    #[serde(default)]
    pub allow_cross_account: bool,
    /// As on a file entry; a value inherits its entry's.
    pub sensitive: Option<bool>,
}

/// `lint:` on a file entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LintOptions {
    #[serde(default)]
    pub allow: Vec<Allow>,
}

/// One suppression: a lint rule id and why the finding is accepted (required, shown in every
/// output format and in SARIF as the suppression's justification).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allow {
    pub rule: String,
    pub reason: Option<String>,
}

/// A YAML mapping that keeps the manifest's order (dotenv output follows it) and rejects
/// duplicate keys, which YAML parsers otherwise resolve silently.
#[derive(Debug)]
pub struct OrderedMap<V>(pub Vec<(String, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(OrderedMap(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, V)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
                    }
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// A parse failure with its position (1-based), if the parser knew it.
#[derive(Debug)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses the manifest text into the raw structs.
pub fn parse(text: &str) -> Result<Manifest, ParseError> {
    serde_yaml::from_str(text).map_err(|err| {
        let (line, column) = err.location().map_or((1, 1), |l| (l.line(), l.column()));
        ParseError {
            line,
            column,
            message: clean_message(&err.to_string(), line, column),
        }
    })
}

/// serde_yaml appends " at line L column C", which we print as a `file:L:C:` prefix instead, and
/// quotes offending scalars, which could be a value pasted into the wrong place: redact them.
fn clean_message(message: &str, line: usize, column: usize) -> String {
    let suffix = format!(" at line {line} column {column}");
    let message = message.strip_suffix(&suffix).unwrap_or(message);
    let message = message.replace(&suffix, "");
    let mut out = String::with_capacity(message.len());
    let mut in_quote = false;
    for c in message.chars() {
        if c == '"' {
            if in_quote {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            in_quote = !in_quote;
        } else if !in_quote {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Seg {
        Seg::Key(k.to_string())
    }

    #[test]
    fn locate_finds_nested_nodes() {
        let text =
            "version: 1\napp: a\nfiles:\n  - path: x\n    secret: s\n  - path: y\n    secret: t\n";
        assert_eq!(
            locate(text, &[key("files"), Seg::Index(1), key("secret")]),
            (7, 13)
        );
        assert_eq!(locate(text, &[key("files"), Seg::Index(0)]), (4, 5));
        assert_eq!(locate(text, &[key("app")]), (2, 6));
        // A missing leaf falls back to the nearest ancestor.
        assert_eq!(
            locate(text, &[key("files"), Seg::Index(1), key("mode")]),
            (6, 5)
        );
    }

    #[test]
    fn entry_lines_agree_with_locate() {
        for text in [
            "version: 1\napp: a\nfiles:\n  - path: x\n    secret: s\n  # note\n\n  - secret: t\n    path: y\n",
            "files: [ {path: a, secret: b},\n  {path: c, secret: d} ]\napp: a\n",
            "app: a\nfiles:\n- path: x\n  secret: |\n    - path: not an entry\n- path: y\nenvironments: {}\n",
            "files: []\n",
        ] {
            let lines = entry_lines(text).unwrap();
            let expected: Vec<usize> = (0..lines.len())
                .map(|i| locate(text, &[key("files"), Seg::Index(i)]).0)
                .collect();
            assert_eq!(lines, expected, "{text}");
        }
        assert_eq!(
            entry_lines("app: a\nfiles:\n- path: x\n  secret: |\n    - path: z\n- path: y\n")
                .unwrap()
                .len(),
            2
        );
        // Shapes it does not handle: the caller falls back to `locate`.
        assert_eq!(entry_lines("files:\n  - {}\n"), None);
        assert_eq!(entry_lines("files:\n  - just-a-string\n"), None);
    }

    #[test]
    fn locate_handles_flow_style() {
        let text = "environments: { staging: { vars: { prefix: a/b } } }\n";
        let (line, col) = locate(
            text,
            &[
                key("environments"),
                key("staging"),
                key("vars"),
                key("prefix"),
            ],
        );
        assert_eq!((line, col), (1, 44));
    }

    #[test]
    fn parse_errors_have_positions_and_no_quoted_values() {
        let err = parse("version: \"hunter2-secret\"\napp: a\nenvironments: {}\nfiles: []\n")
            .unwrap_err();
        assert_eq!((err.line, err.column), (1, 10));
        assert!(!err.message.contains("hunter2"), "{}", err.message);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err =
            parse("version: 1\napp: a\nenvironments: {}\nfiles:\n  - path: p\n    value: x\n")
                .unwrap_err();
        assert!(
            err.message.contains("unknown field `value`"),
            "{}",
            err.message
        );
        assert_eq!((err.line, err.column), (6, 5));
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let err =
            parse("version: 1\napp: a\nenvironments:\n  s: {}\n  s: {}\nfiles: []\n").unwrap_err();
        assert!(err.message.contains("duplicate"), "{}", err.message);
    }
}
