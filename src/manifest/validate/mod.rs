//! Stage two: raw serde structs -> validated types, every problem reported with its position.

mod delivery;
mod dynamic;
mod entry;
mod vault;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::checks::*;
use super::raw::{self, Seg};
use super::resolve::applies;
use super::*;

/// Validates parsed YAML; `file` names the manifest in messages, `text` gives positions.
pub(super) fn validate(
    file: &Path,
    text: &str,
    raw: raw::Manifest,
    files: &dyn Files,
) -> Result<Manifest, Vec<Diagnostic>> {
    let mut v = Validator {
        text,
        files,
        dir: file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
        problems: Vec::new(),
        entry_lines: None,
    };
    let literals = literals(file, text, &raw);
    let manifest = v.manifest(file, raw);
    for d in literals {
        if v.problems.len() < MAX_DIAGNOSTICS {
            v.problems.push(d);
        }
    }
    if v.problems.is_empty() {
        Ok(manifest)
    } else {
        v.problems.sort_by_key(|d| (d.line, d.column));
        Err(v.problems)
    }
}

/// `literal-value` (the same check as `credfile lint`): every line, comments included, is an
/// error unless a suppression accepts it with a reason ([`super::suppress`]: the
/// entry's `lint.allow`, or a `# credfile: allow literal-value reason: ...` line). A manifest
/// is in version control and read in every pull request: a pasted secret there is leaked
/// whatever environment it was meant for. A line allowance that allows nothing is an error
/// too.
fn literals(file: &Path, text: &str, raw: &raw::Manifest) -> Vec<Diagnostic> {
    use super::suppress;
    let rule = super::rules::rule(RULE_LITERAL_VALUE);
    let allowed = suppress::suppressions(file, text, raw);
    let mut out: Vec<Diagnostic> = suppress::line_allowances(file, text)
        .1
        .into_iter()
        .map(|b| Diagnostic {
            line: b.line,
            column: b.column,
            message: b.message,
            hint: Some("write `# credfile: allow literal-value reason: WHY` on the line, or alone on the line above it".into()),
            rule: None,
        })
        .collect();
    for (i, line) in text.lines().enumerate() {
        for c in super::literal::literal_candidates(line) {
            if allowed
                .iter()
                .any(|a| a.covers(file, RULE_LITERAL_VALUE, i + 1, c.column))
            {
                continue;
            }
            out.push(Diagnostic {
                line: i + 1,
                column: c.column,
                message: super::literal::message(&c),
                hint: Some(rule.help.to_string()),
                rule: Some(RULE_LITERAL_VALUE),
            });
        }
    }
    out
}

struct Validator<'a> {
    text: &'a str,
    /// How template files are read (plainly, or under sudo's rules).
    files: &'a dyn Files,
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
    /// The line of the key at `path` when `set` (one parse each: only for the few
    /// environment-level keys that need it, never per entry), else 0.
    fn line_if(&self, set: bool, path: &[Seg]) -> usize {
        if set {
            raw::locate(self.text, path).0
        } else {
            0
        }
    }

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
            owner_line: self.line_if(d.owner.is_some(), &at(&dpath, &[key("owner")])),
            group_line: self.line_if(d.group.is_some(), &at(&dpath, &[key("group")])),
            mode: self.mode(&at(&dpath, &[key("mode")]), d.mode.as_deref()),
            dir_mode: self.dir_mode(&at(&dpath, &[key("dir_mode")]), d.dir_mode.as_deref()),
            layout: d.layout,
            on_change: self.argv(&at(&dpath, &[key("on_change")]), d.on_change.as_ref()),
            vault: d.vault.clone(),
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
        self.credential_names(&files, &environments);
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
            owner_line: match e.owner {
                Some(_) => self.line_if(true, &at(&base, &[key("owner")])),
                None => d.owner_line,
            },
            group_line: match e.group {
                Some(_) => self.line_if(true, &at(&base, &[key("group")])),
                None => d.group_line,
            },
            mode: self
                .mode(&at(&base, &[key("mode")]), e.mode.as_deref())
                .or(d.mode)
                .unwrap_or(DEFAULT_MODE),
            dir_mode: self
                .dir_mode(&at(&base, &[key("dir_mode")]), e.dir_mode.as_deref())
                .or(d.dir_mode)
                .unwrap_or(DEFAULT_DIR_MODE),
            layout: e.layout.or(d.layout).unwrap_or_default(),
            delivery: self.delivery(&base, e),
            on_change: self
                .argv(&at(&base, &[key("on_change")]), e.on_change.as_ref())
                .or_else(|| d.on_change.clone())
                .unwrap_or_default(),
            account,
            identity,
            require_memory_fs: e.require_memory_fs,
            kms_keys,
            run_as: self.run_as(&at(&base, &[key("run_as")]), e.run_as.as_deref()),
            run_as_line: self.line_if(e.run_as.is_some(), &at(&base, &[key("run_as")])),
            vault: self.vault(&base, e.vault.as_ref(), d.vault.as_ref()),
            vars,
        }
    }

    /// `run_as`: a numeric uid, or a user name as `useradd` takes one (a letter or `_` first,
    /// then letters, digits, `_`, `.` and `-`, at most 32): nothing a shell or a path could
    /// read differently. Whether the user exists is checked by `credfile run` on the host.
    fn run_as(&mut self, p: &[Seg], value: Option<&str>) -> Option<Principal> {
        let v = value?;
        if let Some(id) = v
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| v.parse::<u32>().ok())
            .flatten()
        {
            return Some(Principal::Id(id));
        }
        let mut bytes = v.bytes();
        let ok = v.len() <= 32
            && bytes
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if ok {
            return Some(Principal::Name(v.to_string()));
        }
        self.problem(
            p,
            format!("`run_as` `{v}` is not a user name or numeric uid"),
            Some("give the user `credfile run` starts the command as when it runs as root, by name (`app`, `deploy_1`) or uid (`1001`)"),
        );
        None
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
        let bad = |msg: &str| format!("path `{}` {msg}", crate::terminal::Escaped(path));
        let message = if path.is_empty() {
            Some(bad("is empty"))
        } else if path.starts_with('/') {
            Some(bad("is absolute; paths are relative to `root`"))
        } else if path.contains('\0') {
            Some(bad("contains a NUL byte"))
        } else if path.contains(crate::terminal::is_unsafe) {
            // Shown in reports, logs and CI pages, where it would forge a line or hide itself.
            Some(bad(
                "contains a control or Unicode format character (newline, bidi override, zero-width); rename it",
            ))
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
    owner_line: usize,
    group_line: usize,
    mode: Option<u32>,
    dir_mode: Option<u32>,
    layout: Option<Layout>,
    on_change: Option<Vec<String>>,
    /// `defaults.vault`, merged key by key under each environment's.
    vault: Option<raw::Vault>,
}
