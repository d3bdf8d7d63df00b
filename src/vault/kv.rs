//! KV secrets: which version a mount is (its metadata, cached for the run) and reading a
//! secret, so users write `secret/orders/db` on either version, never `secret/data/...`
//! (docs/src/vault.md, "KV version 1 and 2").

use secrecy::SecretString;

use super::{Client, VaultError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvVersion {
    V1,
    V2,
}

/// A secrets engine mount, from `sys/internal/ui/mounts/<path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// With its trailing slash: `secret/`.
    pub path: String,
    /// The engine's type: `kv`, `database`, `pki`, ...
    pub kind: String,
    /// For a KV mount, its version.
    pub kv: Option<KvVersion>,
}

/// One KV secret version, as read.
pub struct KvSecret {
    pub mount: String,
    pub kv: KvVersion,
    /// The version read (KV v2); `None` on KV v1.
    pub version: Option<u64>,
    /// The secret's key/value object as JSON text.
    pub data: SecretString,
}

/// The API path of a KV secret: `secret/data/orders/db` on v2, the path itself on v1.
pub fn api_path(mount: &str, kv: KvVersion, path: &str) -> String {
    match kv {
        KvVersion::V1 => path.to_string(),
        KvVersion::V2 => {
            let rest = path.strip_prefix(mount).unwrap_or(path);
            format!("{mount}data/{rest}")
        }
    }
}

impl Client {
    /// The mount `path` is on, from Vault's metadata; looked up once per mount and run.
    pub async fn mount(&self, path: &str) -> Result<Mount, VaultError> {
        if let Some(m) = self.cached_mount_of(path) {
            return Ok(m);
        }
        // Parallel reads on one mount ask once: the others wait here and find it cached.
        let first = path.split('/').next().unwrap_or(path);
        let mut failed = self.inner.mount_lookups.lock().await;
        if let Some(m) = self.cached_mount_of(path) {
            return Ok(m);
        }
        // A lookup that already waited out the call timeout (a sealed or unreachable Vault)
        // is not waited out again for each path on that mount.
        if let Some(e) = failed.get(first) {
            return Err(e.clone());
        }
        let result = self.look_up_mount(path, first).await;
        if let Err(e) = &result
            && matches!(
                e,
                VaultError::Throttled { .. }
                    | VaultError::Network { .. }
                    | VaultError::Timeout { .. }
            )
        {
            failed.insert(first.to_string(), e.clone());
        }
        result
    }

    async fn look_up_mount(&self, path: &str, first: &str) -> Result<Mount, VaultError> {
        let lookup = format!("sys/internal/ui/mounts/{}", path.trim_start_matches('/'));
        let reply = match self.read(&lookup).await {
            Ok(reply) => reply,
            Err(VaultError::Denied { errors, .. }) => {
                return Err(VaultError::Denied {
                    path: path.to_string(),
                    mount: Some(format!("{first}/")),
                    capability: "read",
                    errors,
                });
            }
            Err(VaultError::NotFound { .. }) | Err(VaultError::Status { status: 400, .. }) => {
                return Err(VaultError::NotFound {
                    path: path.to_string(),
                    mount: None,
                    version: None,
                });
            }
            Err(e) => return Err(e),
        };
        let json = reply.json(&lookup)?;
        let data = json.get("data").unwrap_or(&serde_json::Value::Null);
        let mount_path = data
            .get("path")
            .and_then(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .ok_or_else(|| VaultError::Response {
                path: lookup.clone(),
                reason: "no mount path in the answer".into(),
            })?
            .to_string();
        let kind = data
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_string();
        let kv = match kind.as_str() {
            "kv" | "generic" => Some(
                match data.pointer("/options/version").and_then(|v| v.as_str()) {
                    Some("2") => KvVersion::V2,
                    _ => KvVersion::V1,
                },
            ),
            _ => None,
        };
        let mount = Mount {
            path: mount_path,
            kind,
            kv,
        };
        tracing::debug!(mount = %mount.path, kind = %mount.kind, kv = ?mount.kv, "Vault mount");
        self.remember_mount(mount.clone());
        Ok(mount)
    }

    /// Reads KV secret `path` (`MOUNT/PATH`), at `version` (KV v2 only) or the latest.
    pub async fn kv_read(&self, path: &str, version: Option<u64>) -> Result<KvSecret, VaultError> {
        let mount = self.mount(path).await?;
        let Some(kv) = mount.kv else {
            return Err(VaultError::NotKv {
                path: path.to_string(),
                mount: mount.path,
                kind: mount.kind,
            });
        };
        if let (KvVersion::V1, Some(version)) = (kv, version) {
            return Err(VaultError::VersionOnKv1 {
                path: path.to_string(),
                mount: mount.path,
                version,
            });
        }
        let api = api_path(&mount.path, kv, path);
        let target = match version {
            Some(v) => format!("{api}?version={v}"),
            None => api.clone(),
        };
        let not_found = || VaultError::NotFound {
            path: api.clone(),
            mount: Some(mount.path.clone()),
            version,
        };
        let reply = match self.read(&target).await {
            Ok(r) => r,
            Err(VaultError::NotFound { .. }) => return Err(not_found()),
            Err(VaultError::Denied { errors, .. }) => {
                return Err(VaultError::Denied {
                    path: api,
                    mount: Some(mount.path),
                    capability: "read",
                    errors,
                });
            }
            Err(e) => return Err(e),
        };
        let json = reply.json(&api)?;
        let (data, read_version) = match kv {
            KvVersion::V1 => (json.get("data"), None),
            KvVersion::V2 => (
                json.pointer("/data/data"),
                json.pointer("/data/metadata/version")
                    .and_then(|v| v.as_u64()),
            ),
        };
        let data = match data {
            Some(d @ serde_json::Value::Object(_)) => d,
            // KV v2 answers a deleted or destroyed version with null data.
            _ => return Err(not_found()),
        };
        Ok(KvSecret {
            mount: mount.path,
            kv,
            version: read_version.or(version),
            data: SecretString::from(data.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths() {
        assert_eq!(
            api_path("secret/", KvVersion::V2, "secret/orders/db"),
            "secret/data/orders/db"
        );
        assert_eq!(
            api_path("team/kv/", KvVersion::V2, "team/kv/a/b"),
            "team/kv/data/a/b"
        );
        assert_eq!(api_path("kv1/", KvVersion::V1, "kv1/x"), "kv1/x");
    }
}
