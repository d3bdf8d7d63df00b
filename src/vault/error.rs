//! What can go wrong talking to Vault, with the data a message needs: the path, the mount,
//! the HTTP status and what to grant or fix (docs/src/vault.md, "Errors").

/// A failed Vault call. Vault's own `errors` strings are included, sanitized: they name
/// paths and reasons, never values.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VaultError {
    #[error("Vault settings: {reason}")]
    Config { reason: String },
    #[error("Vault at {address} could not be reached: {reason}")]
    Network { address: String, reason: String },
    #[error("Vault did not answer `{path}` within {seconds}s")]
    Timeout { path: String, seconds: u64 },
    #[error(
        "permission denied (HTTP 403) on `{path}`{}{}",
        mount_text(mount),
        errors_text(errors)
    )]
    Denied {
        path: String,
        mount: Option<String>,
        /// The policy capability the call needs (`read`, `update`, ...).
        capability: &'static str,
        errors: Vec<String>,
    },
    #[error("nothing at `{path}` (HTTP 404){}{}", mount_text(mount), version.map(|v| format!(", version {v}")).unwrap_or_default())]
    NotFound {
        path: String,
        mount: Option<String>,
        version: Option<u64>,
    },
    #[error("{}", throttled_text(path, *status, errors, *seconds))]
    Throttled {
        path: String,
        status: u16,
        /// Vault's `errors` of the last answer (`Vault is sealed`, the quota's name).
        errors: Vec<String>,
        /// How long credfile waited its turn (the call timeout).
        seconds: u64,
    },
    #[error("Vault answered HTTP {status} on `{path}`{}", errors_text(errors))]
    Status {
        path: String,
        status: u16,
        errors: Vec<String>,
    },
    #[error("Vault's answer on `{path}` is unreadable: {reason}")]
    Response { path: String, reason: String },
    #[error("`{path}` is on mount `{mount}` of type `{kind}`, not a KV secrets engine")]
    NotKv {
        path: String,
        mount: String,
        kind: String,
    },
    #[error(
        "`{path}` pins `version: {version}`, but mount `{mount}` is KV version 1, which keeps no versions"
    )]
    VersionOnKv1 {
        path: String,
        mount: String,
        version: u64,
    },
    #[error(
        "Vault sign-in ({method}, `{mount}`) refused: HTTP {status}{}",
        errors_text(errors)
    )]
    Login {
        method: &'static str,
        mount: String,
        status: u16,
        errors: Vec<String>,
    },
}

fn mount_text(mount: &Option<String>) -> String {
    mount
        .as_ref()
        .map(|m| format!(" (mount `{m}`)"))
        .unwrap_or_default()
}

fn throttled_text(path: &str, status: u16, errors: &[String], seconds: u64) -> String {
    let what = if status == 429 {
        "kept refusing"
    } else {
        "kept failing"
    };
    let why = if status == 429 {
        " (its rate limit)"
    } else {
        ""
    };
    format!(
        "Vault {what} `{path}`{why}: HTTP {status}{} for {seconds}s, until the call timeout",
        errors_text(errors)
    )
}

fn errors_text(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(": {}", errors.join("; "))
    }
}

impl VaultError {
    /// A stable short code for JSON output and for the fetch stage's grouping.
    pub fn code(&self) -> &'static str {
        match self {
            VaultError::Config { .. } => "VaultConfig",
            VaultError::Network { .. } => "VaultNetwork",
            VaultError::Timeout { .. } => "VaultTimeout",
            VaultError::Denied { .. } => "VaultPermissionDenied",
            VaultError::NotFound { .. } => "VaultNotFound",
            VaultError::Throttled { .. } => "VaultThrottled",
            VaultError::Status { .. } => "VaultStatus",
            VaultError::Response { .. } => "VaultResponse",
            VaultError::NotKv { .. } => "VaultNotKv",
            VaultError::VersionOnKv1 { .. } => "VaultVersionOnKv1",
            VaultError::Login { .. } => "VaultLogin",
        }
    }

    /// The HTTP status, when Vault answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            VaultError::Denied { .. } => Some(403),
            VaultError::NotFound { .. } => Some(404),
            VaultError::Throttled { status, .. }
            | VaultError::Status { status, .. }
            | VaultError::Login { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            VaultError::Config { .. } => "fix the environment's `vault:` block (docs/src/vault.md)".into(),
            VaultError::Network { .. } => "check `vault.address` (scheme, host and port), the network path to Vault, and `vault.ca_file` when Vault's certificate is from a private CA".into(),
            VaultError::Timeout { .. } => "check the network path to Vault, then retry (see --call-timeout)".into(),
            VaultError::Denied { path, capability, .. } => format!(
                "the token's policies need `{capability}` on `{path}`: path \"{path}\" {{ capabilities = [\"{capability}\"] }} (`credfile policy --vault --env ENV` prints the whole policy)"
            ),
            VaultError::NotFound { mount, version, .. } => {
                let mut h = "check the path (written as MOUNT/PATH, e.g. secret/orders/db, without `data/`)".to_string();
                if mount.is_none() {
                    h.push_str(" and that a secrets engine is mounted at its first component");
                }
                if version.is_some() {
                    h.push_str(", and that the pinned version exists and was not destroyed");
                }
                h
            }
            VaultError::Throttled { status: 429, .. } => "a Vault rate-limit quota: stagger deploys across hosts (--jitter), raise the quota, or allow more time with --call-timeout".into(),
            VaultError::Throttled { .. } => "Vault is failing (sealed, a standby without forwarding, or overloaded): check `vault status` (`bao status`) and the server's log, then retry; --call-timeout sets how long credfile waits".into(),
            VaultError::Status { status, .. } if *status >= 500 => "Vault failed (sealed, standby without forwarding, or overloaded); retry later".into(),
            VaultError::Status { .. } | VaultError::Response { .. } => "check `vault.address` points at Vault's API (it answers /v1/sys/health)".into(),
            VaultError::NotKv { .. } => "`vault:` reads KV secrets (version 1 or 2); check the mount".into(),
            VaultError::VersionOnKv1 { .. } => "drop `version:`, or move the secret to a KV version 2 mount".into(),
            VaultError::Login { method, mount, .. } => format!(
                "check that the `{method}` auth method is enabled at `{mount}` and that its role accepts this identity (`credfile policy --vault-role ...` prints a JWT role)"
            ),
        }
    }

    /// Whether the call may succeed if repeated later in the same run.
    pub(super) fn transient(&self) -> bool {
        matches!(
            self,
            VaultError::Network { .. } | VaultError::Timeout { .. } | VaultError::Response { .. }
        ) || matches!(self, VaultError::Status { status, .. } if *status >= 500)
    }
}
