//! The manifest: load the YAML (stage one, [`raw`]), validate it into typed values (stage two,
//! this module), and resolve one environment into a [`Plan`] that the later stages execute.
//!
//! Every problem found is reported with `file:line:column`, all at once, so a user fixes a
//! manifest in one pass. Validation checks every environment, so `credfile validate` in a pull
//! request catches an undefined `${var}` in production before anyone deploys there.

pub mod raw;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use raw::Seg;
pub use raw::{Encoding, Format, Layout, WebIdentity};

/// The default mode of a file: readable by its owner only.
pub const DEFAULT_MODE: u32 = 0o400;
/// The default mode of a directory credfile creates.
pub const DEFAULT_DIR_MODE: u32 = 0o700;

/// Lint rule ids of the governance rules that validation itself enforces (see [`Diagnostic::rule`]).
pub const RULE_PROTECTED_NO_ACCOUNT: &str = "protected-no-account";
pub const RULE_VAR_UNKNOWN: &str = "var-unknown";
/// Directories writable by group or others are refused here; lint reports it under this rule.
pub const RULE_MODE_WRITABLE: &str = "mode-writable";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: the manifest is larger than {} bytes", path.display(), MAX_MANIFEST_BYTES)]
    TooLarge { path: PathBuf },
    #[error("{}:{line}:{column}: the manifest is not UTF-8 text", path.display())]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    #[error("{}", diagnostics.iter().map(|d| format!("{}:{d}", file.display())).collect::<Vec<_>>().join("\n"))]
    Invalid {
        file: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
    #[error("{}: no environment `{env}` (the manifest defines: {})", file.display(), known.join(", "))]
    UnknownEnvironment {
        file: PathBuf,
        env: String,
        known: Vec<String>,
    },
    #[error("{}: environment `{env}` has no root directory", file.display())]
    NoRoot { file: PathBuf, env: String },
    #[error("--root {} contains `..`", path.display())]
    RootDotDot { path: PathBuf },
    #[error("cannot resolve --root {}: {source}", path.display())]
    RootArg {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ManifestError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ManifestError::Read { .. } => {
                Some("pass --manifest FILE or set CREDFILE_MANIFEST".to_string())
            }
            ManifestError::TooLarge { .. } => {
                Some("a manifest holds references only; split it per application".to_string())
            }
            ManifestError::NotUtf8 { .. } => Some("save the manifest as UTF-8 YAML".to_string()),
            ManifestError::Invalid { diagnostics, .. } => {
                diagnostics.iter().find_map(|d| d.hint.clone())
            }
            ManifestError::UnknownEnvironment { .. } => {
                Some("choose one of the environments listed, with --env or CREDFILE_ENV".into())
            }
            ManifestError::NoRoot { env, .. } => Some(format!(
                "set `root:` under `defaults` or `environments.{env}`, or pass --root DIR"
            )),
            ManifestError::RootArg { .. } => None,
            ManifestError::RootDotDot { .. } => Some(
                "give the directory without `..` (an absolute path, or one below the working directory); credfile never resolves `..` itself".into(),
            ),
        }
    }
}

/// One problem in the manifest, at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
    /// The `credfile lint` rule this problem also is, when validation enforces a governance rule
    /// itself (a protected environment without `account`, an undefined `${var}`).
    pub rule: Option<&'static str>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
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

/// Which version of a secret to read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pin {
    /// AWSCURRENT, fetched in batches.
    Current,
    Stage(String),
    VersionId(String),
}

/// One secret version to fetch: the unit of deduplication.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRef {
    pub id: String,
    pub pin: Pin,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pin {
            Pin::Current => write!(f, "{}", self.id),
            Pin::Stage(stage) => write!(f, "{} (stage {stage})", self.id),
            Pin::VersionId(id) => write!(f, "{} (version {id})", self.id),
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
        values: Vec<(String, Source)>,
    },
    /// A minijinja template (strict: undefined is an error) over named values.
    Template {
        /// `inline` or the template file's path, for messages.
        name: String,
        source: String,
        values: Vec<(String, Source)>,
    },
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
    pub content: Content,
    /// The entry accepts a target inside a git work tree (when git ignores the path).
    pub allow_in_repository: bool,
    /// Change hook (argv, no shell); empty: none.
    pub on_change: Vec<String>,
}

impl FileSpec {
    pub fn sources(&self) -> Vec<&Source> {
        match &self.content {
            Content::Raw { source, .. } => vec![source],
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
    /// Refuse a root that is not on a memory filesystem (tmpfs, ramfs).
    pub require_memory_fs: bool,
    pub layout: Layout,
    /// The environment's change hook (argv, no shell); empty: none.
    pub on_change: Vec<String>,
    pub files: Vec<FileSpec>,
}

impl Plan {
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
    pub mode: u32,
    pub dir_mode: u32,
    pub layout: Layout,
    pub on_change: Vec<String>,
    pub account: Option<String>,
    pub identity: IdentitySpec,
    pub require_memory_fs: bool,
    /// KMS key ARNs that encrypt this environment's secrets; used by `credfile policy` only.
    pub kms_keys: Vec<String>,
    vars: Vec<(String, String)>,
}

/// How an environment gets its AWS identity (see the README, "Identity").
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
        values: Vec<(String, EntrySource)>,
    },
    Template {
        name: String,
        source: String,
        values: Vec<(String, EntrySource)>,
    },
}

#[derive(Debug, Clone)]
struct EntrySource {
    secret: String,
    key: Option<KeySel>,
    pin: Pin,
}

/// A manifest holds references only; anything larger is a mistake or an attack on the parser.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// How deep a file may sit below the root; deeper trees are a mistake (and would make cleaning
/// up old generations recursive without bound).
const MAX_PATH_DEPTH: usize = 32;
/// Validation stops reporting after this many problems.
const MAX_DIAGNOSTICS: usize = 50;

/// Reads and validates the manifest at `path`.
pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
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
    let text = String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|b| **b == b'\n').count() + 1;
        let column = good.len() - good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) + 1;
        ManifestError::NotUtf8 {
            path: path.to_path_buf(),
            line,
            column,
        }
    })?;
    from_text(path, &text)
}

/// Validates manifest text; `file` is only used in messages.
pub fn from_text(file: &Path, text: &str) -> Result<Manifest, ManifestError> {
    let invalid = |diagnostics| ManifestError::Invalid {
        file: file.to_path_buf(),
        diagnostics,
    };
    let raw = raw::parse(text).map_err(|e| {
        let hint = hint_for_parse(&e.message);
        invalid(vec![Diagnostic {
            line: e.line,
            column: e.column,
            message: e.message,
            hint,
            rule: None,
        }])
    })?;
    let mut v = Validator {
        text,
        dir: file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
        problems: Vec::new(),
        entry_lines: None,
    };
    let manifest = v.manifest(file, raw);
    if v.problems.is_empty() {
        Ok(manifest)
    } else {
        v.problems.sort_by_key(|d| (d.line, d.column));
        Err(invalid(v.problems))
    }
}

fn hint_for_parse(message: &str) -> Option<String> {
    if [
        "unknown field `value`",
        "unknown field `values`",
        "unknown field `literal`",
    ]
    .iter()
    .any(|m| message.contains(m))
    {
        return Some(
            "the manifest holds references only: store the value in Secrets Manager and \
             reference it with `secret:`"
                .into(),
        );
    }
    if message.contains("unknown field") {
        return Some(
            "check the key's spelling against the manifest reference in the README".into(),
        );
    }
    None
}

impl Manifest {
    pub fn environment_names(&self) -> Vec<String> {
        self.environments.iter().map(|e| e.name.clone()).collect()
    }

    /// Resolves one environment into a plan. `root_override` is `--root`.
    pub fn resolve(&self, env: &str, root_override: Option<&Path>) -> Result<Plan, ManifestError> {
        let Some(e) = self.environments.iter().find(|e| e.name == env) else {
            return Err(ManifestError::UnknownEnvironment {
                file: self.file.clone(),
                env: env.to_string(),
                known: self.environment_names(),
            });
        };
        if let Some(dir) = root_override
            && dir
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(ManifestError::RootDotDot {
                path: dir.to_path_buf(),
            });
        }
        let root = match root_override {
            Some(dir) if dir.is_absolute() => dir
                .components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .collect(),
            Some(dir) => std::env::current_dir()
                .map_err(|source| ManifestError::RootArg {
                    path: dir.to_path_buf(),
                    source,
                })?
                .join(dir)
                .components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .collect(),
            None => e.root.clone().ok_or_else(|| ManifestError::NoRoot {
                file: self.file.clone(),
                env: env.to_string(),
            })?,
        };
        let files = self
            .files
            .iter()
            .filter(|f| applies(f, env))
            .map(|f| FileSpec {
                path: f.path.clone(),
                line: f.line,
                mode: f.mode.unwrap_or(e.mode),
                owner: f.owner.clone().or_else(|| e.owner.clone()),
                group: f.group.clone().or_else(|| e.group.clone()),
                allow_in_repository: f.allow_in_repository,
                content: match &f.content {
                    EntryContent::Raw { source, encoding } => Content::Raw {
                        source: resolve_source(source, e),
                        encoding: *encoding,
                    },
                    EntryContent::Map { format, values } => Content::Map {
                        format: *format,
                        values: values
                            .iter()
                            .map(|(k, s)| (k.clone(), resolve_source(s, e)))
                            .collect(),
                    },
                    EntryContent::Template {
                        name,
                        source,
                        values,
                    } => Content::Template {
                        name: name.clone(),
                        source: source.clone(),
                        values: values
                            .iter()
                            .map(|(k, s)| (k.clone(), resolve_source(s, e)))
                            .collect(),
                    },
                },
                on_change: f.on_change.clone(),
            })
            .collect();
        Ok(Plan {
            app: self.app.clone(),
            env: e.name.clone(),
            protected: e.protected,
            region: e.region.clone(),
            account: e.account.clone(),
            identity: e.identity.clone(),
            root,
            dir_mode: e.dir_mode,
            dir_group: e.group.clone(),
            require_memory_fs: e.require_memory_fs,
            layout: e.layout,
            on_change: e.on_change.clone(),
            files,
        })
    }
}

fn applies(entry: &Entry, env: &str) -> bool {
    entry
        .environments
        .as_ref()
        .is_none_or(|list| list.iter().any(|e| e == env))
}

fn resolve_source(s: &EntrySource, env: &Environment) -> Source {
    // Validation already substituted every applicable environment successfully.
    let id = substitute(&s.secret, &env.vars).unwrap_or_else(|_| s.secret.clone());
    Source {
        secret: SecretRef {
            id,
            pin: s.pin.clone(),
        },
        key: s.key.clone(),
    }
}

/// Replaces `${name}` with the variable's value. Errors name the first undefined variable.
pub fn substitute(template: &str, vars: &[(String, String)]) -> Result<String, SubstError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(SubstError::Unclosed);
        };
        let name = &after[..end];
        match vars.iter().find(|(k, _)| k == name) {
            Some((_, value)) => out.push_str(value),
            None => return Err(SubstError::Undefined(name.to_string())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[derive(Debug, PartialEq, Eq)]
pub enum SubstError {
    Unclosed,
    Undefined(String),
}

struct Validator<'a> {
    text: &'a str,
    /// The manifest's directory: `template_file` is relative to it.
    dir: PathBuf,
    problems: Vec<Diagnostic>,
    /// The line of each `files` entry, found in one parse ([`raw::entry_lines`]).
    entry_lines: Option<Vec<usize>>,
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

fn at(base: &[Seg], more: &[Seg]) -> Vec<Seg> {
    base.iter().chain(more).cloned().collect()
}

impl Validator<'_> {
    fn problem(&mut self, path: &[Seg], message: impl Into<String>, hint: Option<&str>) {
        if self.problems.len() >= MAX_DIAGNOSTICS {
            return;
        }
        let (line, column) = raw::locate(self.text, path);
        self.problems.push(Diagnostic {
            line,
            column,
            message: message.into(),
            hint: hint.map(str::to_string),
            rule: None,
        });
    }

    /// A problem that is also a `credfile lint` rule.
    fn rule_problem(
        &mut self,
        rule: &'static str,
        path: &[Seg],
        message: impl Into<String>,
        hint: Option<&str>,
    ) {
        self.problem(path, message, hint);
        if let Some(last) = self.problems.last_mut() {
            last.rule = Some(rule);
        }
    }

    fn manifest(&mut self, file: &Path, raw: raw::Manifest) -> Manifest {
        if raw.version != 1 {
            self.problem(
                &[key("version")],
                format!("unsupported manifest version {}", raw.version),
                Some("this credfile understands `version: 1`"),
            );
        }
        if raw.app.is_empty()
            || !raw
                .app
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            self.problem(
                &[key("app")],
                "`app` must be a non-empty name of letters, digits, `-`, `_` or `.`",
                None,
            );
        }
        let d = &raw.defaults;
        let dpath = [key("defaults")];
        let defaults = Settings {
            region: self.region(&dpath, d.region.as_deref()),
            root: self.root(&dpath, d.root.as_deref()),
            owner: self.principal(&at(&dpath, &[key("owner")]), d.owner.as_deref()),
            group: self.principal(&at(&dpath, &[key("group")]), d.group.as_deref()),
            mode: self.mode(&at(&dpath, &[key("mode")]), d.mode.as_deref()),
            dir_mode: self.dir_mode(&at(&dpath, &[key("dir_mode")]), d.dir_mode.as_deref()),
            layout: d.layout,
            on_change: self.argv(&at(&dpath, &[key("on_change")]), d.on_change.as_ref()),
        };
        if raw.environments.0.is_empty() {
            self.problem(
                &[key("environments")],
                "no environments defined",
                Some("add at least one environment under `environments:`"),
            );
        }
        self.entry_lines = raw::entry_lines(self.text).filter(|l| l.len() == raw.files.len());
        let environments: Vec<Environment> = raw
            .environments
            .0
            .iter()
            .map(|(name, e)| self.environment(name, e, &defaults))
            .collect();
        let files: Vec<Entry> = raw
            .files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| self.entry(i, f, &environments))
            .collect();
        self.conflicts(&files, &environments);
        self.reserved(&files, &environments);
        Manifest {
            file: file.to_path_buf(),
            app: raw.app,
            environments,
            files,
        }
    }

    fn environment(&mut self, name: &str, e: &raw::Environment, d: &Settings) -> Environment {
        let base = [key("environments"), key(name)];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            self.problem(
                &base,
                format!("environment name `{name}` must be letters, digits, `-`, `_` or `.`"),
                None,
            );
        }
        let account = e.account.clone();
        if let Some(acct) = &account {
            if acct.len() != 12 || !acct.bytes().all(|b| b.is_ascii_digit()) {
                self.problem(
                    &at(&base, &[key("account")]),
                    "`account` must be a 12-digit AWS account id",
                    Some("quote it so YAML keeps leading zeros: account: \"012345678901\""),
                );
            }
        } else if e.protected {
            self.rule_problem(RULE_PROTECTED_NO_ACCOUNT, &base, format!("protected environment `{name}` has no `account`"), Some("a protected environment must pin the AWS account it deploys from: add `account: \"123456789012\"`"));
        }
        let identity = self.identity(&base, &e.identity, e.allow_static_credentials);
        let mut vars = Vec::new();
        for (k, v) in &e.vars.0 {
            if !is_ident(k) {
                self.problem(
                    &at(&base, &[key("vars"), key(k)]),
                    format!("variable name `{k}` must be letters, digits and `_`"),
                    None,
                );
            }
            if v.contains("${") {
                self.problem(
                    &at(&base, &[key("vars"), key(k)]),
                    format!(
                        "variable `{k}` refers to another variable; values are used as written"
                    ),
                    None,
                );
            }
            vars.push((k.clone(), v.clone()));
        }
        let mut kms_keys: Vec<String> = Vec::new();
        for (i, arn) in e.kms_keys.iter().flatten().enumerate() {
            let kat = at(&base, &[key("kms_keys"), Seg::Index(i)]);
            if let Some(msg) = check_kms_key_arn(arn) {
                self.problem(
                    &kat,
                    format!("`{arn}` {msg}"),
                    Some("give the key ARN, arn:aws:kms:REGION:ACCOUNT:key/KEY-ID (IAM authorizes kms:Decrypt on the key, not on an alias)"),
                );
            } else if kms_keys.contains(arn) {
                self.problem(&kat, format!("KMS key `{arn}` is listed twice"), None);
            } else {
                kms_keys.push(arn.clone());
            }
        }
        Environment {
            name: name.to_string(),
            protected: e.protected,
            region: self
                .region(&base, e.region.as_deref())
                .or_else(|| d.region.clone()),
            root: self
                .root(&base, e.root.as_deref())
                .or_else(|| d.root.clone()),
            owner: self
                .principal(&at(&base, &[key("owner")]), e.owner.as_deref())
                .or_else(|| d.owner.clone()),
            group: self
                .principal(&at(&base, &[key("group")]), e.group.as_deref())
                .or_else(|| d.group.clone()),
            mode: self
                .mode(&at(&base, &[key("mode")]), e.mode.as_deref())
                .or(d.mode)
                .unwrap_or(DEFAULT_MODE),
            dir_mode: self
                .dir_mode(&at(&base, &[key("dir_mode")]), e.dir_mode.as_deref())
                .or(d.dir_mode)
                .unwrap_or(DEFAULT_DIR_MODE),
            layout: e.layout.or(d.layout).unwrap_or_default(),
            on_change: self
                .argv(&at(&base, &[key("on_change")]), e.on_change.as_ref())
                .or_else(|| d.on_change.clone())
                .unwrap_or_default(),
            account,
            identity,
            require_memory_fs: e.require_memory_fs,
            kms_keys,
            vars,
        }
    }

    fn identity(&mut self, base: &[Seg], i: &raw::Identity, allow_static: bool) -> IdentitySpec {
        let ibase = at(base, &[key("identity")]);
        for (field, arn) in [("role_arn", &i.role_arn), ("then_assume", &i.then_assume)] {
            if let Some(arn) = arn
                && !is_role_arn(arn)
            {
                self.problem(
                    &at(&ibase, &[key(field)]),
                    format!("`{field}` is not an IAM role ARN"),
                    Some("expected arn:aws:iam::123456789012:role/NAME"),
                );
            }
        }
        let web_identity = i.web_identity.unwrap_or(WebIdentity::Auto);
        if matches!(web_identity, WebIdentity::Github | WebIdentity::Gitlab) && i.role_arn.is_none()
        {
            self.problem(
                &at(&ibase, &[key("web_identity")]),
                "a pipeline web identity needs `role_arn`: the role the OIDC token is exchanged for",
                None,
            );
        }
        if i.then_assume.is_some() && i.role_arn.is_none() && web_identity != WebIdentity::None {
            // Allowed: the host's own identity assumes `then_assume` directly is odd; say so.
            self.problem(
                &at(&ibase, &[key("then_assume")]),
                "`then_assume` chains from `role_arn`; set `role_arn` (or use `role_arn` alone)",
                None,
            );
        }
        for (field, name) in [
            ("session_name", &i.session_name),
            ("then_session_name", &i.then_session_name),
        ] {
            if let Some(n) = name
                && (n.len() < 2 || n.len() > 64 || !n.chars().all(is_session_char))
            {
                self.problem(
                    &at(&ibase, &[key(field)]),
                    format!("`{field}` must be 2 to 64 of letters, digits and +=,.@_-"),
                    None,
                );
            }
        }
        let duration = i.duration.unwrap_or(DEFAULT_DURATION);
        if !(900..=43200).contains(&duration) {
            self.problem(
                &at(&ibase, &[key("duration")]),
                format!("`duration` {duration} is outside 900..=43200 seconds"),
                Some("STS sessions last 15 minutes to 12 hours; the role's maximum session duration must allow it"),
            );
        }
        if let Some(t) = &i.token_env
            && !is_ident(t)
        {
            self.problem(
                &at(&ibase, &[key("token_env")]),
                format!("`token_env` `{t}` is not a variable name"),
                None,
            );
        }
        if let Some(a) = &i.audience
            && a.is_empty()
        {
            self.problem(&at(&ibase, &[key("audience")]), "`audience` is empty", None);
        }
        IdentitySpec {
            role_arn: i.role_arn.clone(),
            web_identity,
            audience: i
                .audience
                .clone()
                .unwrap_or_else(|| DEFAULT_AUDIENCE.to_string()),
            token_env: i
                .token_env
                .clone()
                .unwrap_or_else(|| DEFAULT_TOKEN_ENV.to_string()),
            session_name: i.session_name.clone(),
            duration,
            then_assume: i.then_assume.clone(),
            then_session_name: i.then_session_name.clone(),
            allow_static_credentials: allow_static,
        }
    }

    fn entry(&mut self, i: usize, f: &raw::File, envs: &[Environment]) -> Option<Entry> {
        let base = [key("files"), Seg::Index(i)];
        let before = self.problems.len();
        let path = self.rel_path(&at(&base, &[key("path")]), &f.path);
        if let Some(list) = &f.environments {
            for (j, name) in list.iter().enumerate() {
                if !envs.iter().any(|e| e.name == *name) {
                    self.problem(
                        &at(&base, &[key("environments"), Seg::Index(j)]),
                        format!("no environment `{name}` in `environments:`"),
                        None,
                    );
                }
            }
        }
        let applicable: Vec<&Environment> = envs
            .iter()
            .filter(|e| f.environments.as_ref().is_none_or(|l| l.contains(&e.name)))
            .collect();
        if f.format != Format::Template {
            for (k, given) in [
                ("template", f.template.is_some()),
                ("template_file", f.template_file.is_some()),
            ] {
                if given {
                    self.problem(
                        &at(&base, &[key(k)]),
                        format!("`{k}` needs `format: template`"),
                        None,
                    );
                }
            }
        }
        let on_change = self
            .argv(&at(&base, &[key("on_change")]), f.on_change.as_ref())
            .unwrap_or_default();
        let content = match f.format {
            Format::Raw => {
                if f.values.is_some() {
                    self.problem(
                        &at(&base, &[key("values")]),
                        "`values` needs `format: dotenv`, `json` or `template`",
                        None,
                    );
                }
                match &f.secret {
                    None => {
                        self.problem(&base, format!("file `{}` has no `secret`", f.path), Some("a raw file takes `secret:` (and optionally `key:`); several values need `format: dotenv` or `json` with `values:`"));
                        None
                    }
                    Some(secret) => {
                        let source = self.source(
                            &base,
                            secret,
                            f.key.as_deref(),
                            f.version_stage.as_deref(),
                            f.version_id.as_deref(),
                            f.allow_cross_account,
                            &applicable,
                        );
                        Some(EntryContent::Raw {
                            source,
                            encoding: f.encoding,
                        })
                    }
                }
            }
            format => {
                for (k, name) in [
                    ("secret", f.secret.is_some()),
                    ("key", f.key.is_some()),
                    ("version_stage", f.version_stage.is_some()),
                    ("version_id", f.version_id.is_some()),
                    ("encoding", f.encoding.is_some()),
                ] {
                    if name {
                        self.problem(
                            &at(&base, &[key(k)]),
                            format!(
                                "`{k}` belongs inside each entry of `values` for `format: {}`",
                                format_name(format)
                            ),
                            None,
                        );
                    }
                }
                let values = match &f.values {
                    Some(v) if !v.0.is_empty() => v,
                    _ => {
                        self.problem(
                            &base,
                            format!("`format: {}` needs `values:`", format_name(format)),
                            Some("values: { NAME: { secret: ..., key: ... } }"),
                        );
                        return None;
                    }
                };
                let mut out = Vec::new();
                for (name, v) in &values.0 {
                    let vbase = at(&base, &[key("values"), key(name)]);
                    if format == Format::Dotenv && !is_ident(name) {
                        self.problem(&vbase, format!("dotenv name `{name}` must be letters, digits and `_`, not starting with a digit"), None);
                    }
                    if format == Format::Template && !is_ident(name) {
                        self.problem(&vbase, format!("template value name `{name}` must be letters, digits and `_`, not starting with a digit"), None);
                    }
                    if name.is_empty() {
                        self.problem(&vbase, "empty value name", None);
                    }
                    let source = self.source(
                        &vbase,
                        &v.secret,
                        v.key.as_deref(),
                        v.version_stage.as_deref(),
                        v.version_id.as_deref(),
                        v.allow_cross_account || f.allow_cross_account,
                        &applicable,
                    );
                    out.push((name.clone(), source));
                }
                if format == Format::Template {
                    self.template(&base, f, out)
                } else {
                    Some(EntryContent::Map {
                        format,
                        values: out,
                    })
                }
            }
        };
        let mode = self.mode(&at(&base, &[key("mode")]), f.mode.as_deref());
        let owner = self.principal(&at(&base, &[key("owner")]), f.owner.as_deref());
        let group = self.principal(&at(&base, &[key("group")]), f.group.as_deref());
        if self.problems.len() > before {
            return None;
        }
        Some(Entry {
            index: i,
            path: path?,
            line: match &self.entry_lines {
                Some(lines) => lines[i],
                None => raw::locate(self.text, &base).0,
            },
            mode,
            owner,
            group,
            environments: f.environments.clone(),
            content: content?,
            allow_in_repository: f.allow_in_repository,
            on_change,
        })
    }

    /// `format: template`: exactly one of `template` and `template_file`, which must compile
    /// and may use only the names in `values`.
    fn template(
        &mut self,
        base: &[Seg],
        f: &raw::File,
        values: Vec<(String, EntrySource)>,
    ) -> Option<EntryContent> {
        let (at_key, name, source) = match (&f.template, &f.template_file) {
            (Some(t), None) => ("template", "inline".to_string(), t.clone()),
            (None, Some(file)) => {
                let path = self.dir.join(file);
                match std::fs::read_to_string(&path) {
                    Ok(text) => ("template_file", path.display().to_string(), text),
                    Err(e) => {
                        self.problem(
                            &at(base, &[key("template_file")]),
                            format!("cannot read template file {}: {e}", path.display()),
                            Some("`template_file` is relative to the manifest's directory"),
                        );
                        return None;
                    }
                }
            }
            (Some(_), Some(_)) => {
                self.problem(
                    &at(base, &[key("template_file")]),
                    "give `template` or `template_file`, not both",
                    None,
                );
                return None;
            }
            (None, None) => {
                self.problem(
                    base,
                    "`format: template` needs `template:` (inline) or `template_file:`",
                    None,
                );
                return None;
            }
        };
        let names: Vec<&str> = values.iter().map(|(n, _)| n.as_str()).collect();
        if let Err(problem) = crate::render::template::check(&name, &source, &names) {
            self.problem(
                &at(base, &[key(at_key)]),
                problem,
                Some(
                    "templates use minijinja syntax; every name must be one of the file's `values`",
                ),
            );
            return None;
        }
        Some(EntryContent::Template {
            name,
            source,
            values,
        })
    }

    /// A hook's argv: a non-empty list, the program first; no shell is involved.
    fn argv(&mut self, p: &[Seg], argv: Option<&Vec<String>>) -> Option<Vec<String>> {
        let argv = argv?;
        if argv.is_empty() || argv[0].is_empty() {
            self.problem(
                p,
                "`on_change` needs a program and its arguments, e.g. [systemctl, reload, app]",
                Some("hooks run without a shell: write each argument as its own list item"),
            );
            return None;
        }
        if argv.iter().any(|a| a.contains('\0')) {
            self.problem(p, "`on_change` arguments must not contain NUL bytes", None);
            return None;
        }
        Some(argv.clone())
    }

    /// In the generation layout the root holds `current` and one link per top-level name, so
    /// no file may be called `current`.
    fn reserved(&mut self, files: &[Entry], envs: &[Environment]) {
        for f in files {
            let top = f.path.components().next().map(|c| c.as_os_str());
            let clash = envs
                .iter()
                .any(|e| e.layout == Layout::Generation && applies(f, &e.name));
            if clash && top == Some(std::ffi::OsStr::new("current")) {
                self.problem(
                    &[key("files"), Seg::Index(f.index), key("path")],
                    format!(
                        "path `{}`: `current` is reserved in `layout: generation` (it points at the live generation)",
                        f.path.display()
                    ),
                    Some("rename the file, or use `layout: files` for this environment"),
                );
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn source(
        &mut self,
        base: &[Seg],
        secret: &str,
        key_sel: Option<&str>,
        stage: Option<&str>,
        version: Option<&str>,
        cross_account: bool,
        envs: &[&Environment],
    ) -> EntrySource {
        let secret_at = at(base, &[key("secret")]);
        for env in envs {
            match substitute(secret, &env.vars) {
                Ok(id) => {
                    if let Some(msg) = check_secret_id(&id) {
                        // Not quoted: an invalid reference may be a value pasted by mistake.
                        self.problem(
                            &secret_at,
                            format!(
                                "the secret reference (environment `{}`) is not valid: {msg}",
                                env.name
                            ),
                            Some("`secret:` takes a Secrets Manager name or ARN, never a value"),
                        );
                    } else if !cross_account && let Some(msg) = foreign_arn(&id, env) {
                        self.problem(
                            &secret_at,
                            format!("secret `{id}` (environment `{}`): {msg}", env.name),
                            Some("reading another account's or region's secret is usually a mistake; if it is intended, add `allow_cross_account: true` to the entry"),
                        );
                    }
                }
                Err(SubstError::Unclosed) => {
                    self.problem(
                        &secret_at,
                        format!("`{secret}`: `${{` without a closing `}}`"),
                        None,
                    );
                    break;
                }
                Err(SubstError::Undefined(var)) => {
                    self.rule_problem(RULE_VAR_UNKNOWN, &secret_at, format!("`${{{var}}}` is not defined in environment `{}`", env.name), Some(&format!("add `{var}` under `environments.{}.vars`, or limit the file with `environments:`", env.name)));
                }
            }
        }
        let key_sel = key_sel.and_then(|k| {
            let kat = at(base, &[key("key")]);
            if k.is_empty() {
                self.problem(&kat, "`key` is empty", None);
                None
            } else if k.starts_with('/') {
                if let Some(msg) = check_pointer(k) {
                    self.problem(
                        &kat,
                        format!("JSON pointer `{k}`: {msg}"),
                        Some(
                            "in a JSON pointer `~` must be written `~0` and `/` inside a key `~1`",
                        ),
                    );
                }
                Some(KeySel::Pointer(k.to_string()))
            } else {
                Some(KeySel::Key(k.to_string()))
            }
        });
        let pin = match (stage, version) {
            (Some(_), Some(_)) => {
                self.problem(
                    &at(base, &[key("version_id")]),
                    "give `version_stage` or `version_id`, not both",
                    None,
                );
                Pin::Current
            }
            (Some(s), None) => {
                if s.is_empty() || s.len() > 256 || s.chars().any(char::is_whitespace) {
                    self.problem(
                        &at(base, &[key("version_stage")]),
                        "`version_stage` must be a stage label such as AWSPREVIOUS",
                        None,
                    );
                }
                if s == "AWSCURRENT" {
                    Pin::Current
                } else {
                    Pin::Stage(s.to_string())
                }
            }
            (None, Some(v)) => {
                if v.len() < 32
                    || v.len() > 64
                    || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    self.problem(&at(base, &[key("version_id")]), "`version_id` must be a Secrets Manager version id (32 to 64 characters, usually a UUID)", None);
                }
                Pin::VersionId(v.to_string())
            }
            (None, None) => Pin::Current,
        };
        EntrySource {
            secret: secret.to_string(),
            key: key_sel,
            pin,
        }
    }

    /// Two entries may not write the same path, or a file where another needs a directory,
    /// in any one environment.
    ///
    /// Indexed by path rather than compared pairwise: 500 entries would be 125,000 path
    /// comparisons per environment, most of `credfile validate`'s time.
    fn conflicts(&mut self, files: &[Entry], envs: &[Environment]) {
        for env in envs {
            let live: Vec<&Entry> = files.iter().filter(|f| applies(f, &env.name)).collect();
            // Entry positions by their exact path, and by every proper ancestor of their path.
            let mut exact: HashMap<&Path, Vec<usize>> = HashMap::new();
            let mut below: HashMap<&Path, Vec<usize>> = HashMap::new();
            for (n, f) in live.iter().enumerate() {
                exact.entry(&f.path).or_default().push(n);
                for dir in f.path.ancestors().skip(1) {
                    if !dir.as_os_str().is_empty() {
                        below.entry(dir).or_default().push(n);
                    }
                }
            }
            // (earlier, later): the same path, or one path an ancestor of the other.
            let mut clashes: BTreeSet<(usize, usize)> = BTreeSet::new();
            for (m, b) in live.iter().enumerate() {
                let same_or_above = b.path.ancestors().filter_map(|p| exact.get(p));
                for n in same_or_above.chain(below.get(b.path.as_path())).flatten() {
                    if *n < m {
                        clashes.insert((*n, m));
                    }
                }
            }
            for (n, m) in clashes {
                let (a, b) = (live[n], live[m]);
                self.problem(
                    &[key("files"), Seg::Index(b.index), key("path")],
                    format!(
                        "`{}` collides with `{}` in environment `{}`",
                        b.path.display(),
                        a.path.display(),
                        env.name
                    ),
                    Some("each file needs its own path; a file cannot also be a directory"),
                );
            }
        }
    }

    fn rel_path(&mut self, p: &[Seg], path: &str) -> Option<PathBuf> {
        let bad = |msg: &str| format!("path `{path}` {msg}");
        let message = if path.is_empty() {
            Some(bad("is empty"))
        } else if path.starts_with('/') {
            Some(bad("is absolute; paths are relative to `root`"))
        } else if path.contains('\0') {
            Some(bad("contains a NUL byte"))
        } else if path.len() > 4096 {
            Some(bad("is longer than 4096 bytes"))
        } else if path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            Some(bad(
                "must not contain empty, `.` or `..` components; it must stay inside `root`",
            ))
        } else if path.split('/').any(|c| c.len() > 255) {
            Some(bad("has a component longer than 255 bytes"))
        } else if path.split('/').count() > MAX_PATH_DEPTH {
            Some(bad(&format!(
                "is more than {MAX_PATH_DEPTH} directories deep"
            )))
        } else if path.split('/').any(|c| c.starts_with(".credfile")) {
            Some(bad("uses the reserved prefix `.credfile`"))
        } else {
            None
        };
        match message {
            Some(m) => {
                self.problem(p, m, None);
                None
            }
            None => Some(PathBuf::from(path)),
        }
    }

    fn mode(&mut self, p: &[Seg], mode: Option<&str>) -> Option<u32> {
        let m = mode?;
        let digits = m.strip_prefix("0o").unwrap_or(m);
        match u32::from_str_radix(digits, 8) {
            Ok(v) if v <= 0o777 && (3..=4).contains(&digits.len()) => Some(v),
            _ => {
                self.problem(p, format!("mode `{m}` is not an octal permission like \"0440\""), Some("write the mode as a quoted octal string of 3 or 4 digits, at most \"0777\" (no setuid, setgid or sticky bits)"));
                None
            }
        }
    }

    /// A directory mode: as [`Self::mode`], and never writable by group or others, since credfile
    /// itself refuses to write into such a directory.
    fn dir_mode(&mut self, p: &[Seg], mode: Option<&str>) -> Option<u32> {
        let m = self.mode(p, mode)?;
        if m & 0o022 != 0 {
            self.rule_problem(
                RULE_MODE_WRITABLE,
                p,
                format!("dir_mode `{:04o}` lets group or others write into the directories holding secrets", m),
                Some("drop the group and other write bits, e.g. \"0750\" or \"0710\""),
            );
            return None;
        }
        Some(m)
    }

    fn principal(&mut self, p: &[Seg], value: Option<&str>) -> Option<Principal> {
        let v = value?;
        if let Ok(id) = v.parse::<u32>() {
            return Some(Principal::Id(id));
        }
        let ok = !v.is_empty()
            && v.len() <= 64
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if ok {
            Some(Principal::Name(v.to_string()))
        } else {
            self.problem(
                p,
                format!("`{v}` is not a user or group name or numeric id"),
                None,
            );
            None
        }
    }

    fn region(&mut self, base: &[Seg], region: Option<&str>) -> Option<String> {
        let r = region?;
        if r.is_empty()
            || !r
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            self.problem(
                &at(base, &[key("region")]),
                format!("`{r}` is not an AWS region name like us-east-1"),
                None,
            );
        }
        Some(r.to_string())
    }

    fn root(&mut self, base: &[Seg], root: Option<&str>) -> Option<PathBuf> {
        let r = root?;
        let path = PathBuf::from(r);
        if !path.is_absolute() {
            self.problem(
                &at(base, &[key("root")]),
                format!("root `{r}` must be an absolute path"),
                Some("use an absolute path such as /run/credfile/APP, or pass --root DIR"),
            );
        } else if r.split('/').any(|c| c == "..") {
            self.problem(
                &at(base, &[key("root")]),
                format!("root `{r}` must not contain `..`"),
                None,
            );
        }
        Some(path)
    }
}

/// Settings after merging `defaults`; environments fall back to these.
struct Settings {
    region: Option<String>,
    root: Option<PathBuf>,
    owner: Option<Principal>,
    group: Option<Principal>,
    mode: Option<u32>,
    dir_mode: Option<u32>,
    layout: Option<Layout>,
    on_change: Option<Vec<String>>,
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Raw => "raw",
        Format::Dotenv => "dotenv",
        Format::Json => "json",
        Format::Template => "template",
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Secrets Manager names: 1-512 of `[A-Za-z0-9/_+=.@-]`; or a secret ARN.
fn check_secret_id(id: &str) -> Option<&'static str> {
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

fn is_role_arn(arn: &str) -> bool {
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
fn foreign_arn(id: &str, env: &Environment) -> Option<String> {
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
fn check_kms_key_arn(arn: &str) -> Option<&'static str> {
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

fn check_pointer(p: &str) -> Option<&'static str> {
    let bytes = p.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'~' && !matches!(bytes.get(i + 1), Some(b'0') | Some(b'1')) {
            return Some("`~` not followed by 0 or 1");
        }
    }
    None
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
