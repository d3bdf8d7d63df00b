//! The manifest: load the YAML (stage one, [`raw`]), validate it into typed values (stage two,
//! this module), and resolve one environment into a [`Plan`] that the later stages execute.
//!
//! Every problem found is reported with `file:line:column`, all at once, so a user fixes a
//! manifest in one pass. Validation checks every environment, so `credfile validate` in a pull
//! request catches an undefined `${var}` in production before anyone deploys there.

pub mod raw;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

pub use raw::{CredentialKey, Dialect, Encoding, Format, Layout, VaultMethod, WebIdentity};

/// The default mode of a file: readable by its owner only.
pub const DEFAULT_MODE: u32 = 0o400;
/// The default mode of a directory credfile creates.
pub const DEFAULT_DIR_MODE: u32 = 0o700;

/// Lint rule ids of the governance rules that validation itself enforces (see [`Diagnostic::rule`]).
pub const RULE_PROTECTED_NO_ACCOUNT: &str = "protected-no-account";
pub const RULE_VAR_UNKNOWN: &str = "var-unknown";
/// Directories writable by group or others are refused here; lint reports it under this rule.
pub const RULE_MODE_WRITABLE: &str = "mode-writable";
/// A line that looks like a pasted secret: an error unless accepted with a reason.
pub const RULE_LITERAL_VALUE: &str = "literal-value";

mod checks;
mod error;
pub mod literal;
mod resolve;
pub mod rules;
pub mod suppress;
pub mod template;
mod validate;
pub mod vault;
pub mod vault_dynamic;

pub use checks::is_session_char;
pub use error::{Diagnostic, ManifestError};
pub use resolve::{SubstError, substitute};

/// Where `LoadCredentialEncrypted=NAME` looks first: the root of a `deliver: systemd-creds`
/// environment that sets none (docs/src/systemd-creds.md).
pub const CREDSTORE_ENCRYPTED: &str = "/etc/credstore.encrypted";

/// How an environment's files reach the host (docs/src/systemd-creds.md).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Plaintext files.
    #[default]
    Plain,
    /// Each file is a systemd encrypted credential named by its path.
    SystemdCreds {
        key: CredentialKey,
        /// `--not-after=`, as the manifest gives it (checked by validation).
        not_after: Option<String>,
    },
}

/// A user or group: a numeric id, or a name resolved on the host at write time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Id(u32),
    Name(String),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Id(id) => write!(f, "{id}"),
            Principal::Name(name) => f.write_str(name),
        }
    }
}

/// Which version of a value to read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pin {
    /// The current version (AWSCURRENT; a parameter's latest), fetched in batches.
    Current,
    Stage(String),
    VersionId(String),
    /// A parameter's version number (`name:3`).
    ParamVersion(u64),
    /// A parameter's label (`name:label`).
    ParamLabel(String),
    /// A Vault KV v2 secret's version (`version: 3`).
    KvVersion(u64),
}

/// Where a value comes from. A new source is a variant here, its syntax in `manifest::validate`
/// and one file under `src/fetch/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    /// AWS Secrets Manager: `secret:`.
    Secret,
    /// AWS Systems Manager Parameter Store: `parameter:`.
    Parameter,
    /// Every parameter below a Parameter Store path: `parameters_path:`.
    ParameterPath,
    /// Every secret whose name starts with a prefix: `secret: orders/staging/*` (the id keeps
    /// the `*`; [`SecretRef::prefix`] is the part before it).
    SecretPrefix,
    /// credfile's own environment variable, set by the pipeline: `ci_variable:`.
    CiVariable,
    /// An environment variable holding the path of a file with the value (GitLab's file-type
    /// variables): `ci_variable_file:`.
    CiVariableFile,
    /// A Vault (or OpenBao) KV secret, version 1 or 2: `vault: MOUNT/PATH`.
    Vault,
    /// Dynamic credentials with a lease: `vault_lease: database/creds/ROLE`
    /// (docs/src/vault-dynamic.md).
    VaultLease,
    /// A certificate: `vault_pki: {mount, role, ...}`; the id is the request
    /// ([`vault_dynamic::PkiRequest`]).
    VaultPki,
}

impl SourceKind {
    /// The word messages use: "secret `x`", "parameter `/x`".
    pub fn noun(self) -> &'static str {
        match self {
            SourceKind::Secret => "secret",
            SourceKind::Parameter => "parameter",
            SourceKind::ParameterPath => "parameter path",
            SourceKind::SecretPrefix => "secret prefix",
            SourceKind::CiVariable => "CI variable",
            SourceKind::CiVariableFile => "CI file variable",
            SourceKind::Vault => "Vault secret",
            SourceKind::VaultLease => "Vault lease",
            SourceKind::VaultPki => "Vault certificate",
        }
    }

    /// The stable name in JSON output, the state file and the audit line.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Secret => "secretsmanager",
            SourceKind::Parameter => "ssm",
            SourceKind::ParameterPath => "ssm_path",
            SourceKind::SecretPrefix => "secretsmanager_prefix",
            SourceKind::CiVariable => "ci_variable",
            SourceKind::CiVariableFile => "ci_variable_file",
            SourceKind::Vault => "vault",
            SourceKind::VaultLease => "vault_lease",
            SourceKind::VaultPki => "vault_pki",
        }
    }

    /// Whether reading it needs an AWS identity.
    pub fn needs_aws(self) -> bool {
        matches!(
            self,
            SourceKind::Secret
                | SourceKind::Parameter
                | SourceKind::ParameterPath
                | SourceKind::SecretPrefix
        )
    }
}

/// One value version to fetch: the unit of deduplication.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRef {
    pub kind: SourceKind,
    pub id: String,
    pub pin: Pin,
}

impl SecretRef {
    /// What the names of a directory entry's files are taken after: a `parameters_path`, or a
    /// secret prefix without its `*`.
    pub fn prefix(&self) -> &str {
        match self.kind {
            SourceKind::SecretPrefix => self.id.strip_suffix('*').unwrap_or(&self.id),
            _ => &self.id,
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind != SourceKind::Secret {
            write!(f, "{} ", self.kind.noun())?;
        }
        // A parameter's name may come from a listing (`parameters_path:`), not the manifest.
        let id = crate::terminal::Escaped(&self.id);
        match &self.pin {
            Pin::Current => write!(f, "{id}"),
            Pin::Stage(stage) => write!(f, "{id} (stage {})", crate::terminal::Escaped(stage)),
            Pin::VersionId(v) => write!(f, "{id} (version {})", crate::terminal::Escaped(v)),
            Pin::ParamVersion(v) => write!(f, "{id} (version {v})"),
            Pin::ParamLabel(l) => write!(f, "{id} (label {})", crate::terminal::Escaped(l)),
            Pin::KvVersion(v) => write!(f, "{id} (version {v})"),
        }
    }
}

/// Which part of a secret's value to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySel {
    /// A top-level key of a JSON object.
    Key(String),
    /// A JSON pointer (RFC 6901), written with a leading `/`.
    Pointer(String),
}

impl fmt::Display for KeySel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySel::Key(k) | KeySel::Pointer(k) => f.write_str(k),
        }
    }
}

/// A value taken from a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub secret: SecretRef,
    pub key: Option<KeySel>,
    /// `sensitive: false` in the manifest: configuration, not a secret (`audit reuse` skips it).
    pub sensitive: bool,
}

/// How a file's bytes are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The whole value (or one key) of one secret, optionally base64-decoded.
    Raw {
        source: Source,
        encoding: Option<Encoding>,
    },
    /// Named values from several secrets, as dotenv lines or a JSON object, in manifest order.
    Map {
        format: Format,
        /// The dotenv reader (`common` for JSON, where it is unused).
        dialect: Dialect,
        values: Vec<(String, Source)>,
    },
    /// A minijinja template (strict: undefined is an error) over named values.
    Template {
        /// `inline` or the template file's path, for messages.
        name: String,
        source: String,
        values: Vec<(String, Source)>,
    },
    /// A directory of files known only after the fetch: one per top-level key of a secret
    /// (`keys: all`), one per parameter below a path (`parameters_path:`) or one per secret under
    /// a prefix (`secret: PREFIX*`). `render::expand` turns it into `Raw` files.
    Expand { source: Source },
}

/// One file to write, fully resolved for one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Relative to the root; validated: no `..`, no absolute path, no empty component.
    pub path: PathBuf,
    /// Where the entry is in the manifest, for error messages.
    pub line: usize,
    pub mode: u32,
    pub owner: Option<Principal>,
    pub group: Option<Principal>,
    /// The manifest lines of the keys that set `owner` and `group` (the entry's, the
    /// environment's or the defaults'), for an unknown user or group.
    pub owner_line: usize,
    pub group_line: usize,
    pub content: Content,
    /// The entry accepts a target inside a git work tree (when git ignores the path).
    pub allow_in_repository: bool,
    /// Change hook (argv, no shell); empty: none.
    pub on_change: Vec<String>,
}

impl FileSpec {
    /// A `vault_lease:` or `vault_pki:` entry's reference.
    pub fn dynamic(&self) -> Option<&SecretRef> {
        match &self.content {
            Content::Expand { source }
                if matches!(
                    source.secret.kind,
                    SourceKind::VaultLease | SourceKind::VaultPki
                ) =>
            {
                Some(&source.secret)
            }
            _ => None,
        }
    }

    pub fn sources(&self) -> Vec<&Source> {
        match &self.content {
            Content::Raw { source, .. } | Content::Expand { source } => vec![source],
            Content::Map { values, .. } | Content::Template { values, .. } => {
                values.iter().map(|(_, s)| s).collect()
            }
        }
    }
}

/// Everything a run needs, for one environment.
#[derive(Debug, Clone)]
pub struct Plan {
    pub app: String,
    pub env: String,
    pub protected: bool,
    pub region: Option<String>,
    pub account: Option<String>,
    pub identity: IdentitySpec,
    pub root: PathBuf,
    pub dir_mode: u32,
    pub dir_group: Option<Principal>,
    /// The manifest line of the `group` key that set `dir_group`.
    pub dir_group_line: usize,
    /// Refuse a root that is not on a memory filesystem (tmpfs, ramfs).
    pub require_memory_fs: bool,
    pub layout: Layout,
    pub delivery: Delivery,
    /// The environment's change hook (argv, no shell); empty: none.
    pub on_change: Vec<String>,
    /// `credfile run` as root without `--run-as`: who the command runs as (docs/src/run.md),
    /// and the manifest line that says so.
    pub run_as: Option<Principal>,
    pub run_as_line: usize,
    pub files: Vec<FileSpec>,
    /// Where Vault is and how to sign in, when the environment says (docs/src/vault.md).
    pub vault: Option<VaultSpec>,
}

impl Plan {
    /// Whether any file reads from AWS; an environment of CI variables only needs no identity.
    pub fn needs_aws(&self) -> bool {
        self.secret_refs().iter().any(|r| r.kind.needs_aws())
    }

    /// Whether any file reads from Vault: only then does a run sign in to Vault.
    pub fn needs_vault(&self) -> bool {
        self.secret_refs()
            .iter()
            .any(|r| r.kind == SourceKind::Vault)
    }

    /// Whether any entry is a lease or a certificate: those are decided against the state
    /// file's records before the fetch (docs/src/vault-dynamic.md).
    pub fn has_dynamic(&self) -> bool {
        self.files.iter().any(|f| f.dynamic().is_some())
    }

    /// The plan without its `Expand` entries: what can be checked before anything is fetched.
    pub fn without_expansions(&self) -> Plan {
        let mut plan = self.clone();
        plan.files
            .retain(|f| !matches!(f.content, Content::Expand { .. }));
        plan
    }

    /// Every distinct secret version the plan reads, in a stable order.
    pub fn secret_refs(&self) -> Vec<SecretRef> {
        let set: BTreeSet<SecretRef> = self
            .files
            .iter()
            .flat_map(|f| f.sources().into_iter().map(|s| s.secret.clone()))
            .collect();
        set.into_iter().collect()
    }
}

/// A validated manifest, all environments.
#[derive(Debug)]
pub struct Manifest {
    pub file: PathBuf,
    pub app: String,
    pub environments: Vec<Environment>,
    files: Vec<Entry>,
}

#[derive(Debug)]
pub struct Environment {
    pub name: String,
    pub protected: bool,
    pub region: Option<String>,
    pub root: Option<PathBuf>,
    pub owner: Option<Principal>,
    pub group: Option<Principal>,
    /// Where `owner` and `group` were set (this environment or the defaults; 0: not set).
    pub owner_line: usize,
    pub group_line: usize,
    pub mode: u32,
    pub dir_mode: u32,
    pub layout: Layout,
    pub delivery: Delivery,
    pub on_change: Vec<String>,
    pub account: Option<String>,
    pub identity: IdentitySpec,
    pub require_memory_fs: bool,
    /// KMS key ARNs that encrypt this environment's secrets; used by `credfile policy` only.
    pub kms_keys: Vec<String>,
    /// `credfile run` as root: who the command runs as, and the line saying so (0: not set).
    pub run_as: Option<Principal>,
    pub run_as_line: usize,
    pub vault: Option<VaultSpec>,
    vars: Vec<(String, String)>,
}

/// An environment's `vault:` block, merged with the defaults' and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultSpec {
    pub address: String,
    pub namespace: Option<String>,
    /// PEM roots to trust instead of the system's (read as the invoker under sudo).
    pub ca_file: Option<PathBuf>,
    pub auth: VaultAuthSpec,
    /// The manifest line of the `vault:` block, for messages.
    pub line: usize,
}

/// How credfile signs in to Vault (docs/src/vault.md, "Signing in").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultAuthSpec {
    /// `None`: `jwt` inside CI, `token` by hand.
    pub method: Option<VaultMethod>,
    /// `auth/<mount>`; `None`: the method's name.
    pub mount: Option<String>,
    pub role: Option<String>,
    pub audience: String,
    pub token_env: String,
    pub token_file: PathBuf,
    pub server_id: Option<String>,
    pub role_id: Option<String>,
    pub role_id_file: Option<PathBuf>,
    pub secret_id_env: Option<String>,
    pub secret_id_file: Option<PathBuf>,
    pub wrapped: bool,
}

impl VaultAuthSpec {
    /// The mount path of `method` (`auth/<this>/login`).
    pub fn mount_for(&self, method: VaultMethod) -> String {
        self.mount
            .clone()
            .unwrap_or_else(|| method.name().to_string())
    }
}

/// The `aud` a Vault JWT role expects from GitHub Actions when `audience` is not set.
pub const DEFAULT_VAULT_AUDIENCE: &str = "vault";
/// The variable holding GitLab's `id_tokens` JWT for Vault when `token_env` is not set.
pub const DEFAULT_VAULT_TOKEN_ENV: &str = "VAULT_ID_TOKEN";
/// Where a pod's service-account token is mounted.
pub const DEFAULT_K8S_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// How an environment gets its AWS identity (docs/src/identity.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySpec {
    pub role_arn: Option<String>,
    pub web_identity: WebIdentity,
    /// The `aud` requested from GitHub's token endpoint.
    pub audience: String,
    /// The variable holding GitLab's `id_tokens` JWT.
    pub token_env: String,
    /// Overrides the session name derived from CI metadata.
    pub session_name: Option<String>,
    /// Session length in seconds, 900 to 43200.
    pub duration: u32,
    /// A second role to assume with the first role's credentials (cross-account).
    pub then_assume: Option<String>,
    pub then_session_name: Option<String>,
    /// Accept long-lived IAM user keys inside CI.
    pub allow_static_credentials: bool,
}

pub const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";
pub const DEFAULT_TOKEN_ENV: &str = "AWS_ID_TOKEN";
pub const DEFAULT_DURATION: u32 = 900;

/// A file entry, validated but with `${var}` references still unresolved.
#[derive(Debug)]
struct Entry {
    /// Position in `files:`.
    index: usize,
    path: PathBuf,
    line: usize,
    mode: Option<u32>,
    owner: Option<Principal>,
    group: Option<Principal>,
    environments: Option<Vec<String>>,
    content: EntryContent,
    allow_in_repository: bool,
    on_change: Vec<String>,
}

#[derive(Debug)]
enum EntryContent {
    Raw {
        source: EntrySource,
        encoding: Option<Encoding>,
    },
    Map {
        format: Format,
        dialect: Dialect,
        values: Vec<(String, EntrySource)>,
    },
    Template {
        name: String,
        source: String,
        values: Vec<(String, EntrySource)>,
    },
    Expand {
        source: EntrySource,
    },
}

#[derive(Debug, Clone)]
struct EntrySource {
    kind: SourceKind,
    secret: String,
    key: Option<KeySel>,
    pin: Pin,
    sensitive: bool,
}

/// A manifest holds references only; anything larger is a mistake or an attack on the parser.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// How deep a file may sit below the root; deeper trees are a mistake (and would make cleaning
/// up old generations recursive without bound).
/// Variables a change hook inherits from credfile's environment, when set; nothing else
/// reaches it. Part of what a manifest means: a `ci_variable:` may not take one of these names.
pub const HOOK_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ",
];

/// The most files one `keys: all`, `parameters_path:` or secret-prefix entry may expand to; the
/// listings stop there too. A secret holds at most 64 KiB (under 11,000 keys even with one-byte
/// names and values), and a standard-tier Parameter Store account at most 10,000 parameters:
/// 20,000 covers both with room, while keeping a run's memory, its state file (about 300 bytes a
/// file) and its time bounded.
pub const MAX_SET_FILES: usize = 20_000;

const MAX_PATH_DEPTH: usize = 32;
/// Validation stops reporting after this many problems.
const MAX_DIAGNOSTICS: usize = 50;

/// How the manifest layer reads the files a manifest names besides itself (`template_file`).
/// The layer above decides: plainly ([`PlainFiles`]), or under sudo only what the invoking user
/// may read and root alone may change.
pub trait Files {
    /// The text of `path`, or why it may not be read.
    fn read_text(&self, path: &Path) -> Result<String, Refused>;
}

/// Why a file the manifest names was not read: a message and a hint for the manifest's error.
pub struct Refused {
    pub message: String,
    pub hint: &'static str,
}

/// Reads files as they are, with credfile's rights.
pub struct PlainFiles;

impl Files for PlainFiles {
    fn read_text(&self, path: &Path) -> Result<String, Refused> {
        // As large as a manifest may be, at most: a template is part of it.
        read_text(path).map_err(|e| {
            let why = match e {
                ManifestError::Read { source, .. } => source.to_string(),
                ManifestError::TooLarge { .. } => {
                    format!("it is larger than {MAX_MANIFEST_BYTES} bytes")
                }
                _ => "it is not UTF-8 text".to_string(),
            };
            Refused {
                message: format!("cannot read template file {}: {why}", path.display()),
                hint: "`template_file` is relative to the manifest's directory",
            }
        })
    }
}

/// Reads and validates the manifest at `path`, reading its template files through `files`.
pub fn load(path: &Path, files: &dyn Files) -> Result<Manifest, ManifestError> {
    let text = read_text(path)?;
    from_text(path, &text, files)
}

/// A manifest's text: at most [`MAX_MANIFEST_BYTES`], UTF-8, or an error naming the line.
pub fn read_text(path: &Path) -> Result<String, ManifestError> {
    use std::io::Read;
    let read_err = |source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(read_err)?
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|b| **b == b'\n').count() + 1;
        let column = good.len() - good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) + 1;
        ManifestError::NotUtf8 {
            path: path.to_path_buf(),
            line,
            column,
        }
    })
}

/// Validates manifest text; `file` is only used in messages and to find template files.
pub fn from_text(file: &Path, text: &str, files: &dyn Files) -> Result<Manifest, ManifestError> {
    let invalid = |diagnostics| ManifestError::Invalid {
        file: file.to_path_buf(),
        diagnostics,
    };
    let raw = raw::parse(text).map_err(|e| {
        let hint = error::hint_for_parse(&e.message);
        invalid(vec![Diagnostic {
            line: e.line,
            column: e.column,
            message: e.message,
            hint,
            rule: None,
        }])
    })?;
    validate::validate(file, text, raw, files).map_err(invalid)
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
