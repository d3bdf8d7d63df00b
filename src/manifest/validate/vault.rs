//! Validation of the `vault:` block (an environment's, merged over the defaults') and of
//! `vault:` references (docs/src/vault.md).

use super::*;
use crate::manifest::raw::VaultMethod;
use crate::manifest::vault::{check_address, check_name};

/// Lint rule of a plain-http Vault address off this host; validation refuses it too.
const RULE_VAULT_PLAIN_HTTP: &str = "vault-plain-http";

impl Validator<'_> {
    /// The environment's Vault settings: its own `vault:` keys over the defaults'. `None`
    /// when neither has a block.
    pub(super) fn vault(
        &mut self,
        base: &[Seg],
        own: Option<&raw::Vault>,
        defaults: Option<&raw::Vault>,
    ) -> Option<VaultSpec> {
        if own.is_none() && defaults.is_none() {
            return None;
        }
        let empty = raw::Vault::default();
        let (e, d) = (own.unwrap_or(&empty), defaults.unwrap_or(&empty));
        let vat = if own.is_some() {
            at(base, &[key("vault")])
        } else {
            vec![key("defaults"), key("vault")]
        };
        let from = |own_set: bool| {
            if own_set {
                at(base, &[key("vault")])
            } else {
                vec![key("defaults"), key("vault")]
            }
        };
        let line = raw::locate(self.text, &vat).0;
        let address = e.address.as_ref().or(d.address.as_ref());
        let Some(address) = address else {
            self.problem(
                &vat,
                "`vault:` needs `address`",
                Some("address: https://vault.example.com:8200 (under the environment or `defaults.vault`)"),
            );
            return None;
        };
        let aat = at(&from(e.address.is_some()), &[key("address")]);
        if let Some(why) = check_address(address) {
            let message = format!(
                "vault address `{}` {why}",
                crate::terminal::Escaped(address)
            );
            if crate::manifest::vault::plain_http_off_host(address) {
                self.rule_problem(
                    RULE_VAULT_PLAIN_HTTP,
                    &aat,
                    message,
                    Some("use https:// with Vault's certificate (`ca_file:` for a private CA)"),
                );
            } else {
                self.problem(&aat, message, None);
            }
        }
        let namespace = e.namespace.as_ref().or(d.namespace.as_ref()).cloned();
        if let Some(ns) = &namespace
            && !check_name(ns.trim_end_matches('/'), true)
        {
            self.problem(
                &at(&from(e.namespace.is_some()), &[key("namespace")]),
                "`namespace` must be letters, digits and -_.@ with `/` between levels",
                None,
            );
        }
        let ca_file = e
            .ca_file
            .as_ref()
            .or(d.ca_file.as_ref())
            .map(|f| self.dir.join(f));
        let auth = match (&e.auth, &d.auth) {
            (Some(a), _) => self.vault_auth(&at(base, &[key("vault"), key("auth")]), a),
            (None, Some(a)) => self.vault_auth(&[key("defaults"), key("vault"), key("auth")], a),
            (None, None) => self.vault_auth(&vat, &raw::VaultAuth::default()),
        };
        Some(VaultSpec {
            address: address.trim_end_matches('/').to_string(),
            namespace,
            ca_file,
            auth,
            line,
        })
    }

    fn vault_auth(&mut self, p: &[Seg], a: &raw::VaultAuth) -> VaultAuthSpec {
        let method = a.method;
        // Which keys each method takes; `None` (jwt in CI, token by hand) takes jwt's.
        let takes: &[&str] = match method {
            None | Some(VaultMethod::Jwt) => &["mount", "role", "audience", "token_env"],
            Some(VaultMethod::Kubernetes) => &["mount", "role", "token_file"],
            Some(VaultMethod::Aws) => &["mount", "role", "server_id"],
            Some(VaultMethod::Approle) => &[
                "mount",
                "role_id",
                "role_id_file",
                "secret_id_env",
                "secret_id_file",
                "wrapped",
            ],
            Some(VaultMethod::Token) => &[],
        };
        let given = [
            ("mount", a.mount.is_some()),
            ("role", a.role.is_some()),
            ("audience", a.audience.is_some()),
            ("token_env", a.token_env.is_some()),
            ("token_file", a.token_file.is_some()),
            ("server_id", a.server_id.is_some()),
            ("role_id", a.role_id.is_some()),
            ("role_id_file", a.role_id_file.is_some()),
            ("secret_id_env", a.secret_id_env.is_some()),
            ("secret_id_file", a.secret_id_file.is_some()),
            ("wrapped", a.wrapped),
        ];
        let name = method.map_or("jwt (the default)", VaultMethod::name);
        for (k, present) in given {
            if present && !takes.contains(&k) {
                self.problem(
                    &at(p, &[key(k)]),
                    format!("`{k}` does not apply to `method: {name}`"),
                    Some(match method {
                        None | Some(VaultMethod::Jwt) => "jwt takes mount, role, audience (GitHub) and token_env (GitLab)",
                        Some(VaultMethod::Kubernetes) => "kubernetes takes mount, role and token_file",
                        Some(VaultMethod::Aws) => "aws takes mount, role and server_id",
                        Some(VaultMethod::Approle) => "approle takes mount, role_id or role_id_file, secret_id_env or secret_id_file, and wrapped",
                        Some(VaultMethod::Token) => "token reads VAULT_TOKEN or ~/.vault-token and takes no other key",
                    }),
                );
            }
        }
        let needs_role = matches!(
            method,
            Some(VaultMethod::Jwt | VaultMethod::Kubernetes | VaultMethod::Aws)
        );
        if needs_role && a.role.is_none() {
            self.problem(
                p,
                format!("`method: {name}` needs `role`: the Vault role to sign in as"),
                None,
            );
        }
        if let Some(role) = &a.role
            && !check_name(role, false)
        {
            self.problem(
                &at(p, &[key("role")]),
                "`role` must be letters, digits and -_.@",
                None,
            );
        }
        if let Some(mount) = &a.mount
            && !check_name(mount, true)
        {
            self.problem(
                &at(p, &[key("mount")]),
                "`mount` is the auth method's path (e.g. jwt or github-jwt), letters, digits and -_.@/",
                None,
            );
        }
        for (k, v) in [
            ("token_env", &a.token_env),
            ("secret_id_env", &a.secret_id_env),
        ] {
            if let Some(v) = v
                && !is_ident(v)
            {
                self.problem(
                    &at(p, &[key(k)]),
                    format!("`{k}` is the name of an environment variable (letters, digits and `_`), never a value"),
                    None,
                );
            }
        }
        if method == Some(VaultMethod::Approle) {
            match (&a.role_id, &a.role_id_file) {
                (Some(_), Some(_)) => self.problem(
                    &at(p, &[key("role_id_file")]),
                    "give `role_id` or `role_id_file`, not both",
                    None,
                ),
                (None, None) => self.problem(
                    p,
                    "`method: approle` needs `role_id` or `role_id_file`",
                    None,
                ),
                _ => {}
            }
            if a.secret_id_env.is_some() && a.secret_id_file.is_some() {
                self.problem(
                    &at(p, &[key("secret_id_file")]),
                    "give `secret_id_env` or `secret_id_file`, not both",
                    None,
                );
            }
            if a.wrapped && a.secret_id_env.is_none() && a.secret_id_file.is_none() {
                self.problem(
                    &at(p, &[key("wrapped")]),
                    "`wrapped: true` needs `secret_id_env` or `secret_id_file` (the wrapping token)",
                    None,
                );
            }
        }
        if let Some(aud) = &a.audience
            && aud.is_empty()
        {
            self.problem(&at(p, &[key("audience")]), "`audience` is empty", None);
        }
        if let Some(id) = &a.server_id
            && (id.is_empty() || id.contains(|c: char| c.is_control()))
        {
            self.problem(
                &at(p, &[key("server_id")]),
                "`server_id` must be a host name such as vault.example.com",
                None,
            );
        }
        let file = |f: &Option<String>| f.as_ref().map(|f| self.dir.join(f));
        VaultAuthSpec {
            method,
            mount: a.mount.clone(),
            role: a.role.clone(),
            audience: a
                .audience
                .clone()
                .unwrap_or_else(|| DEFAULT_VAULT_AUDIENCE.to_string()),
            token_env: a
                .token_env
                .clone()
                .unwrap_or_else(|| DEFAULT_VAULT_TOKEN_ENV.to_string()),
            token_file: file(&a.token_file)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_K8S_TOKEN_FILE)),
            server_id: a.server_id.clone(),
            role_id: a.role_id.clone(),
            role_id_file: file(&a.role_id_file),
            secret_id_env: a.secret_id_env.clone(),
            secret_id_file: file(&a.secret_id_file),
            wrapped: a.wrapped,
        }
    }
}
