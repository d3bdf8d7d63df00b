//! Validation of one `files:` entry: its content, sources, template and hooks.

use super::*;

impl Validator<'_> {
    pub(super) fn entry(&mut self, i: usize, f: &raw::File, envs: &[Environment]) -> Option<Entry> {
        let base = [key("files"), Seg::Index(i)];
        let before = self.problems.len();
        let path = self.rel_path(&at(&base, &[key("path")]), &f.path);
        if let Some(list) = &f.environments {
            for (j, name) in list.iter().enumerate() {
                if !envs.iter().any(|e| e.name == *name) {
                    let hint = crate::manifest::error::did_you_mean(
                        name,
                        envs.iter().map(|e| e.name.as_str()),
                    );
                    self.problem(
                        &at(&base, &[key("environments"), Seg::Index(j)]),
                        format!("no environment `{name}` in `environments:`"),
                        hint.as_deref(),
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
        if let Some(lint) = &f.lint {
            for (j, allow) in lint.allow.iter().enumerate() {
                let aat = at(&base, &[key("lint"), key("allow"), Seg::Index(j)]);
                if !super::rules::RULES.iter().any(|r| r.id == allow.rule)
                    || allow.rule == "manifest-invalid"
                {
                    self.problem(
                        &at(&aat, &[key("rule")]),
                        format!("`lint.allow`: no lint rule `{}` can be suppressed", allow.rule),
                        Some("name a rule id from `credfile lint` output, such as mode-other-read or env-shared-secret"),
                    );
                }
                if allow.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
                    self.problem(
                        &aat,
                        format!("`lint.allow` of rule `{}` has no `reason`", allow.rule),
                        Some("every suppression says why the finding is accepted: `{ rule: ..., reason: \"...\" }`; reviewers and SARIF consumers see it"),
                    );
                }
            }
        }
        if f.dialect.is_some() && f.format != Format::Dotenv {
            self.problem(
                &at(&base, &[key("dialect")]),
                "`dialect` needs `format: dotenv`",
                Some("`dialect:` names the program that reads a dotenv file: common, python-dotenv, dotenvy, node, docker, shell or systemd"),
            );
        }
        let on_change = self
            .argv(&at(&base, &[key("on_change")]), f.on_change.as_ref())
            .unwrap_or_default();
        let content = match f.format {
            _ if f.vault_lease.is_some() || f.vault_pki.is_some() => {
                self.dynamic(&base, f, &applicable)
            }
            Format::Raw => {
                if f.values.is_some() {
                    self.problem(
                        &at(&base, &[key("values")]),
                        "`values` needs `format: dotenv`, `json` or `template`",
                        None,
                    );
                }
                let fields = Fields::of_file(f);
                let prefix = f.secret.as_deref().is_some_and(|s| s.contains('*'));
                if f.keys.is_some() || f.parameters_path.is_some() || prefix {
                    self.expansion(&base, f, &fields, &applicable)
                } else if !fields.any() {
                    self.problem(&base, format!("file `{}` has no source", f.path), Some("a raw file takes `secret:`, `parameter:`, `vault:`, `ci_variable:` or `ci_variable_file:` (and optionally `key:`); several values need `format: dotenv` or `json` with `values:`"));
                    None
                } else {
                    self.source(&base, &fields, &applicable).map(|mut source| {
                        source.sensitive = f.sensitive.unwrap_or(true);
                        EntryContent::Raw {
                            source,
                            encoding: f.encoding,
                        }
                    })
                }
            }
            format => {
                for (k, name) in [
                    ("secret", f.secret.is_some()),
                    ("parameter", f.parameter.is_some()),
                    ("ci_variable", f.ci_variable.is_some()),
                    ("ci_variable_file", f.ci_variable_file.is_some()),
                    ("vault", f.vault.is_some()),
                    ("key", f.key.is_some()),
                    ("version_stage", f.version_stage.is_some()),
                    ("version_id", f.version_id.is_some()),
                    ("version", f.version.is_some()),
                    ("label", f.label.is_some()),
                    ("encoding", f.encoding.is_some()),
                    ("keys", f.keys.is_some()),
                    ("parameters_path", f.parameters_path.is_some()),
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
                    let fields = Fields::of_value(v, f.allow_cross_account);
                    if !fields.any() {
                        self.problem(&vbase, format!("value `{name}` has no source"), Some("each value takes `secret:`, `parameter:`, `vault:`, `ci_variable:` or `ci_variable_file:`"));
                        continue;
                    }
                    if let Some(mut source) = self.source(&vbase, &fields, &applicable) {
                        source.sensitive = v.sensitive.or(f.sensitive).unwrap_or(true);
                        out.push((name.clone(), source));
                    }
                }
                if format == Format::Template {
                    self.template(&base, f, out)
                } else {
                    Some(EntryContent::Map {
                        format,
                        dialect: f.dialect.unwrap_or_default(),
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
                match self.files.read_text(&path) {
                    Ok(text) => ("template_file", path.display().to_string(), text),
                    Err(refused) => {
                        self.problem(
                            &at(base, &[key("template_file")]),
                            refused.message,
                            Some(refused.hint),
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
        if let Err(problem) = crate::manifest::template::check(&name, &source, &names) {
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
    pub(super) fn argv(&mut self, p: &[Seg], argv: Option<&Vec<String>>) -> Option<Vec<String>> {
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
        // `["/path/reload.sh orders"]`: no shell splits it, so the hook could never start, and
        // the failure would only show after the files changed in production.
        let program = &argv[0];
        if program.contains(char::is_whitespace) && !std::path::Path::new(program).exists() {
            let words: Vec<String> = program
                .split_whitespace()
                .chain(argv[1..].iter().map(String::as_str))
                .map(|w| format!("{w:?}"))
                .collect();
            let hint = format!(
                "hooks run without a shell: write each word as its own list item, e.g. on_change: [{}]",
                words.join(", ")
            );
            self.problem(
                p,
                format!(
                    "`on_change` program {program:?} contains whitespace and is not an existing path"
                ),
                Some(hint.as_str()),
            );
            return None;
        }
        Some(argv.clone())
    }

    /// One reference: exactly one of the four source keys, with the selectors that source takes.
    fn source(
        &mut self,
        base: &[Seg],
        fields: &Fields,
        envs: &[&Environment],
    ) -> Option<EntrySource> {
        let given: Vec<(SourceKind, &'static str, &str)> = [
            (SourceKind::Secret, "secret", fields.secret),
            (SourceKind::Parameter, "parameter", fields.parameter),
            (SourceKind::CiVariable, "ci_variable", fields.ci_variable),
            (
                SourceKind::CiVariableFile,
                "ci_variable_file",
                fields.ci_variable_file,
            ),
            (SourceKind::Vault, "vault", fields.vault),
        ]
        .into_iter()
        .filter_map(|(kind, k, v)| v.map(|v| (kind, k, v)))
        .collect();
        let (kind, kind_key, secret) = match given.as_slice() {
            [one] => *one,
            [_, (_, second, _), ..] => {
                let names: Vec<String> = given.iter().map(|(_, k, _)| format!("`{k}`")).collect();
                self.problem(
                    &at(base, &[key(second)]),
                    format!("give one source, not {}", names.join(" and ")),
                    None,
                );
                return None;
            }
            [] => return None,
        };
        let secret_at = at(base, &[key(kind_key)]);
        let selectors = [
            (
                "version_stage",
                fields.version_stage.is_some(),
                SourceKind::Secret,
            ),
            (
                "version_id",
                fields.version_id.is_some(),
                SourceKind::Secret,
            ),
            ("version", fields.version.is_some(), SourceKind::Parameter),
            ("label", fields.label.is_some(), SourceKind::Parameter),
        ];
        for (k, present, owner) in selectors {
            let vault_version = k == "version" && kind == SourceKind::Vault;
            if present && owner != kind && !vault_version {
                self.problem(
                    &at(base, &[key(k)]),
                    format!(
                        "`{k}` belongs to `{}:`, not `{kind_key}:`",
                        if owner == SourceKind::Secret {
                            "secret"
                        } else {
                            "parameter"
                        }
                    ),
                    None,
                );
            }
        }
        for env in envs {
            match substitute(secret, &env.vars) {
                Ok(id) => {
                    let invalid = match kind {
                        SourceKind::Secret if id.contains('*') => Some(
                            "a prefix (`*` at the end) is a directory entry of its own: `path: DIR` with `secret: PREFIX*`, without `key`, `format` or `values`",
                        ),
                        SourceKind::Secret => check_secret_id(&id),
                        SourceKind::SecretPrefix => check_secret_prefix(&id),
                        SourceKind::Parameter => check_parameter_name(&id),
                        SourceKind::ParameterPath => check_parameter_path(&id),
                        SourceKind::Vault => crate::manifest::vault::check_path(&id),
                        // Their own entries (validate::dynamic), never a `Fields` key.
                        SourceKind::VaultLease | SourceKind::VaultPki => None,
                        SourceKind::CiVariable | SourceKind::CiVariableFile => {
                            if !is_ident(&id) {
                                Some(
                                    "a CI variable name is letters, digits and `_`, not starting with a digit",
                                )
                            } else if crate::manifest::HOOK_ENV.contains(&id.as_str())
                                || id.starts_with("CREDFILE_")
                                || id.starts_with("AWS_")
                            {
                                // Hooks inherit the allow-listed variables; the others configure
                                // credfile and the SDK, and are not secrets.
                                Some(
                                    "the name is one hooks inherit or one that configures credfile or AWS (PATH, HOME, CREDFILE_*, AWS_*, ...); choose a name of its own",
                                )
                            } else {
                                None
                            }
                        }
                    };
                    if let Some(msg) = invalid {
                        // Not quoted: an invalid reference may be a value pasted by mistake.
                        self.problem(
                            &secret_at,
                            format!(
                                "the {} reference (environment `{}`) is not valid: {msg}",
                                kind.noun(),
                                env.name
                            ),
                            Some(match kind {
                                SourceKind::Secret => "`secret:` takes a Secrets Manager name or ARN, never a value",
                                SourceKind::Parameter => "`parameter:` takes a Parameter Store name (`/app/db/url` or `name`) or ARN, never a value",
                                SourceKind::Vault => "`vault:` takes a KV secret's path, MOUNT/PATH (e.g. secret/orders/db, without `data/`), never a value",
                                _ => "`ci_variable:` and `ci_variable_file:` take the name of an environment variable, never a value",
                            }),
                        );
                    } else if kind.needs_aws()
                        && !fields.cross_account
                        && let Some(msg) = foreign_arn(&id, env)
                    {
                        self.problem(
                            &secret_at,
                            format!("{} `{id}` (environment `{}`): {msg}", kind.noun(), env.name),
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
        let (key_sel, stage, version) = (fields.key, fields.version_stage, fields.version_id);
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
        if kind == SourceKind::Vault {
            for env in envs.iter().filter(|e| e.vault.is_none()) {
                self.problem(
                    &secret_at,
                    format!(
                        "environment `{}` reads a Vault secret but has no `vault:` block",
                        env.name
                    ),
                    Some("add `vault: { address: https://..., auth: {...} }` under the environment or `defaults`, or limit the file with `environments:`"),
                );
            }
        }
        let pin = match (kind, fields.version, fields.label) {
            (SourceKind::Vault, Some(v), _) => {
                if v == 0 {
                    self.problem(
                        &at(base, &[key("version")]),
                        "`version` is a KV v2 version number, 1 or more",
                        None,
                    );
                }
                Pin::KvVersion(v)
            }
            (SourceKind::Parameter, Some(_), Some(_)) => {
                self.problem(
                    &at(base, &[key("label")]),
                    "give `version` or `label`, not both",
                    None,
                );
                pin
            }
            (SourceKind::Parameter, Some(v), None) => {
                if v == 0 {
                    self.problem(
                        &at(base, &[key("version")]),
                        "`version` is a parameter version number, 1 or more",
                        None,
                    );
                }
                Pin::ParamVersion(v)
            }
            (SourceKind::Parameter, None, Some(l)) => {
                if let Some(msg) = check_parameter_label(l) {
                    self.problem(
                        &at(base, &[key("label")]),
                        format!("label `{l}`: {msg}"),
                        None,
                    );
                }
                Pin::ParamLabel(l.to_string())
            }
            _ => pin,
        };
        Some(EntrySource {
            kind,
            secret: secret.to_string(),
            key: key_sel,
            pin,
            sensitive: true,
        })
    }

    /// `keys: all` on a secret, `parameters_path:` or `secret: PREFIX*`: a directory of files,
    /// one per key, parameter or secret, known only once the values are fetched.
    fn expansion(
        &mut self,
        base: &[Seg],
        f: &raw::File,
        fields: &Fields,
        envs: &[&Environment],
    ) -> Option<EntryContent> {
        for (k, present) in [
            ("key", f.key.is_some()),
            ("encoding", f.encoding.is_some()),
            ("version", f.version.is_some() && f.vault.is_none()),
            ("label", f.label.is_some()),
        ] {
            if present {
                self.problem(
                    &at(base, &[key(k)]),
                    format!("`{k}` cannot be combined with `keys: all`, `parameters_path:` or a secret prefix"),
                    Some("each key, parameter or secret becomes its own file, written as it is stored"),
                );
            }
        }
        if let Some(path) = &f.parameters_path {
            if f.keys.is_some() || fields.any() {
                self.problem(
                    &at(base, &[key("parameters_path")]),
                    "`parameters_path:` is the entry's only source (no `secret:`, `parameter:`, `keys:`)",
                    None,
                );
                return None;
            }
            for env in envs {
                match substitute(path, &env.vars) {
                    Ok(p) => {
                        if let Some(msg) = check_parameter_path(&p) {
                            self.problem(
                                &at(base, &[key("parameters_path")]),
                                format!(
                                    "parameters_path `{p}` (environment `{}`): {msg}",
                                    env.name
                                ),
                                Some("a path starts and ends with `/`, e.g. /orders/prod/config/"),
                            );
                        }
                    }
                    Err(SubstError::Unclosed) => {
                        self.problem(
                            &at(base, &[key("parameters_path")]),
                            format!("`{path}`: `${{` without a closing `}}`"),
                            None,
                        );
                        break;
                    }
                    Err(SubstError::Undefined(var)) => {
                        self.rule_problem(RULE_VAR_UNKNOWN, &at(base, &[key("parameters_path")]), format!("`${{{var}}}` is not defined in environment `{}`", env.name), Some(&format!("add `{var}` under `environments.{}.vars`, or limit the file with `environments:`", env.name)));
                    }
                }
            }
            return Some(EntryContent::Expand {
                source: EntrySource {
                    kind: SourceKind::ParameterPath,
                    secret: path.clone(),
                    key: None,
                    pin: Pin::Current,
                    sensitive: f.sensitive.unwrap_or(true),
                },
            });
        }
        if let Some(prefix) = fields.secret.filter(|s| s.contains('*')) {
            return self.secret_prefix(base, f, fields, envs, prefix);
        }
        if fields.secret.is_none() == fields.vault.is_none()
            || fields.parameter.is_some()
            || fields.ci_variable.is_some()
            || fields.ci_variable_file.is_some()
        {
            self.problem(
                &at(base, &[key("keys")]),
                "`keys: all` needs `secret:` (a Secrets Manager secret holding a JSON object) or `vault:` (a KV secret)",
                None,
            );
            return None;
        }
        let mut source = self.source(base, fields, envs)?;
        source.sensitive = f.sensitive.unwrap_or(true);
        Some(EntryContent::Expand { source })
    }
}

impl Validator<'_> {
    /// `secret: orders/staging/*`: one file per secret whose name starts with the prefix, named
    /// by the rest of its name; the entry's only source, each secret read at AWSCURRENT.
    fn secret_prefix(
        &mut self,
        base: &[Seg],
        f: &raw::File,
        fields: &Fields,
        envs: &[&Environment],
        prefix: &str,
    ) -> Option<EntryContent> {
        let sat = at(base, &[key("secret")]);
        for (k, present) in [
            ("keys", f.keys.is_some()),
            ("version_stage", f.version_stage.is_some()),
            ("version_id", f.version_id.is_some()),
            ("parameter", fields.parameter.is_some()),
            ("ci_variable", fields.ci_variable.is_some()),
            ("ci_variable_file", fields.ci_variable_file.is_some()),
        ] {
            if present {
                self.problem(
                    &at(base, &[key(k)]),
                    format!("`{k}` cannot be combined with a secret prefix (`secret: PREFIX*`)"),
                    Some("a prefix is the entry's only source; each secret under it is read at AWSCURRENT and becomes its own file"),
                );
            }
        }
        for env in envs {
            match substitute(prefix, &env.vars) {
                Ok(p) => {
                    if let Some(msg) = check_secret_prefix(&p) {
                        // Not quoted: an invalid reference may be a value pasted by mistake.
                        self.problem(
                            &sat,
                            format!("the secret prefix (environment `{}`) is not valid: {msg}", env.name),
                            Some("a prefix is the beginning of secret names and one `*` at the end, e.g. orders/staging/*"),
                        );
                    }
                }
                Err(SubstError::Unclosed) => {
                    self.problem(
                        &sat,
                        format!("`{prefix}`: `${{` without a closing `}}`"),
                        None,
                    );
                    break;
                }
                Err(SubstError::Undefined(var)) => {
                    self.rule_problem(RULE_VAR_UNKNOWN, &sat, format!("`${{{var}}}` is not defined in environment `{}`", env.name), Some(&format!("add `{var}` under `environments.{}.vars`, or limit the file with `environments:`", env.name)));
                }
            }
        }
        Some(EntryContent::Expand {
            source: EntrySource {
                kind: SourceKind::SecretPrefix,
                secret: prefix.to_string(),
                key: None,
                pin: Pin::Current,
                sensitive: f.sensitive.unwrap_or(true),
            },
        })
    }
}

/// The source keys of an entry or of a `values:` item.
struct Fields<'a> {
    secret: Option<&'a str>,
    parameter: Option<&'a str>,
    ci_variable: Option<&'a str>,
    ci_variable_file: Option<&'a str>,
    vault: Option<&'a str>,
    key: Option<&'a str>,
    version_stage: Option<&'a str>,
    version_id: Option<&'a str>,
    version: Option<u64>,
    label: Option<&'a str>,
    cross_account: bool,
}

impl<'a> Fields<'a> {
    fn of_file(f: &'a raw::File) -> Fields<'a> {
        Fields {
            secret: f.secret.as_deref(),
            parameter: f.parameter.as_deref(),
            ci_variable: f.ci_variable.as_deref(),
            ci_variable_file: f.ci_variable_file.as_deref(),
            vault: f.vault.as_deref(),
            key: f.key.as_deref(),
            version_stage: f.version_stage.as_deref(),
            version_id: f.version_id.as_deref(),
            version: f.version,
            label: f.label.as_deref(),
            cross_account: f.allow_cross_account,
        }
    }

    fn of_value(v: &'a raw::Value, cross_account: bool) -> Fields<'a> {
        Fields {
            secret: v.secret.as_deref(),
            parameter: v.parameter.as_deref(),
            ci_variable: v.ci_variable.as_deref(),
            ci_variable_file: v.ci_variable_file.as_deref(),
            vault: v.vault.as_deref(),
            key: v.key.as_deref(),
            version_stage: v.version_stage.as_deref(),
            version_id: v.version_id.as_deref(),
            version: v.version,
            label: v.label.as_deref(),
            cross_account: v.allow_cross_account || cross_account,
        }
    }

    fn any(&self) -> bool {
        self.secret.is_some()
            || self.parameter.is_some()
            || self.ci_variable.is_some()
            || self.ci_variable_file.is_some()
            || self.vault.is_some()
    }
}
