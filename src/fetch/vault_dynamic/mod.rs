//! Dynamic credentials (`vault_lease:`) and certificates (`vault_pki:`): Vault values that
//! carry a lifetime, so an apply decides from the state file's records whether to keep, renew
//! or replace them (docs/src/vault-dynamic.md).
//!
//! - A lease is renewed (`sys/leases/renew`) while it is renewable and the renewal grants more
//!   than a third of its TTL: the set keeps its files (their live bytes are what it renders to),
//!   no hook runs. Refused, expired, or capped by the role's maximum TTL: new credentials, and
//!   the old lease is retired, revoked once the hooks of the new set succeeded.
//! - Leases die with the token that created it: the environment keeps that token (the caller
//!   stores it in the root, `materialize::vault`), renews it every apply, and signs in anew,
//!   replacing every lease, when the token is gone or nears its maximum TTL.
//! - A certificate is issued again only when a third of its lifetime (or `renew_before`) is
//!   left, or the request changed.
//!
//! Each entry's values flow on as one JSON object (file name -> text), expanded like
//! `keys: all`.

pub mod records;

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use zeroize::Zeroizing;

use super::{Fetched, SecretValue};
use crate::manifest::vault_dynamic::PkiRequest;
use crate::manifest::{Plan, SecretRef, SourceKind};
use crate::vault::{Client, Token, VaultError};
use records::{CertRecord, KeptToken, LeasePlan, LeaseRecord, VaultRecords, renewal_suffices};

/// The live files of a set, by name (relative to the entry's directory).
pub type Live = Vec<(String, Zeroizing<Vec<u8>>)>;

/// What the stage is given.
pub struct Inputs<'a> {
    pub plan: &'a Plan,
    /// The state file's records (empty: none yet).
    pub old: VaultRecords,
    /// The token kept in the root by an earlier apply, if any.
    pub kept_token: Option<Zeroizing<String>>,
    /// The live files of the set at a directory, when all of them are credfile's.
    pub live: &'a dyn Fn(&Path) -> Option<Live>,
    /// Unix seconds.
    pub now: u64,
    /// `plan`: decide without changing anything in Vault (no renewal, no new credentials).
    pub dry_run: bool,
    /// `credfile run`: new leases under the run's own client (`pki`), no token kept; the
    /// caller revokes them when the command ends (docs/src/run.md).
    pub for_run: bool,
}

/// What the stage decided.
#[derive(Default)]
pub struct Decided {
    /// One JSON object per entry (file name -> text), expanded like `keys: all`.
    pub values: Vec<(SecretRef, Fetched)>,
    /// The records the state file holds once the set is written.
    pub records: VaultRecords,
    /// A new token to keep in the root (its leases back the set now).
    pub keep_token: Option<Zeroizing<String>>,
    /// The client of the token the leases belong to: revokes retired leases after the hooks.
    pub lease_client: Option<Client>,
    /// The replaced kept token: revoked (with its leases) after the hooks succeeded.
    pub old_token: Option<Client>,
}

#[derive(Debug, thiserror::Error)]
pub enum DynamicError {
    #[error("{path}: {source}")]
    Vault {
        path: String,
        #[source]
        source: VaultError,
    },
    #[error("{path}: {reason}")]
    Response { path: String, reason: String },
    #[error(transparent)]
    SignIn(#[from] crate::identity::IdentityError),
}

impl DynamicError {
    pub fn hint(&self) -> String {
        match self {
            DynamicError::Vault { source, .. } => source.hint(),
            DynamicError::Response { .. } => {
                "nothing was written; check the path names a lease-issuing endpoint (`database/creds/ROLE`) or a pki role".into()
            }
            DynamicError::SignIn(e) => e.hint().unwrap_or_default(),
        }
    }
}

impl DynamicError {
    /// The fetch stage's error for a failed lease or certificate call (not a sign-in).
    pub fn into_fetch(self) -> super::FetchError {
        let (path, failure) = match &self {
            DynamicError::Vault { path, source } => (path.clone(), super::vault::failure(source)),
            DynamicError::Response { path, reason } => (
                path.clone(),
                crate::aws::Failure {
                    code: Some("VaultResponse".into()),
                    status: None,
                    message: format!("{reason}; {}", self.hint()),
                    kind: crate::aws::FailureKind::Response,
                },
            ),
            DynamicError::SignIn(e) => (
                String::new(),
                crate::aws::Failure {
                    code: Some("VaultSignIn".into()),
                    status: None,
                    message: e.to_string(),
                    kind: crate::aws::FailureKind::Request,
                },
            ),
        };
        let kind = if path.contains("/issue/") {
            SourceKind::VaultPki
        } else {
            SourceKind::VaultLease
        };
        super::FetchError {
            failures: vec![(
                SecretRef {
                    kind,
                    id: path,
                    pin: crate::manifest::Pin::Current,
                },
                failure,
            )],
            looked_up_in: None,
        }
    }
}

fn vault_err(path: &str) -> impl Fn(VaultError) -> DynamicError + '_ {
    move |source| DynamicError::Vault {
        path: path.to_string(),
        source,
    }
}

/// The entries of `plan` that are leases or certificates: (directory, reference).
fn entries(plan: &Plan) -> Vec<(PathBuf, SecretRef)> {
    plan.files
        .iter()
        .filter_map(|f| f.dynamic().map(|r| (f.path.clone(), r.clone())))
        .collect()
}

/// Decides every lease and certificate of `inputs.plan`. `pki`: the run's signed-in client
/// (certificates outlive its token); `aws`: the AWS identity, for a sign-in through AWS IAM;
/// `tuning`: for a new sign-in that keeps its token.
pub async fn decide(
    inputs: Inputs<'_>,
    pki: Option<&Client>,
    aws: Option<&crate::identity::Session>,
    tuning: crate::aws::Tuning,
) -> Result<Decided, DynamicError> {
    let entries = entries(inputs.plan);
    let mut out = Decided {
        records: VaultRecords {
            retired: inputs.old.retired.clone(),
            ..VaultRecords::default()
        },
        ..Decided::default()
    };
    let has_leases = entries
        .iter()
        .any(|(_, r)| r.kind == SourceKind::VaultLease);
    // The lease token: the kept one while it lives and is far from its maximum TTL, else a
    // new sign-in whose token is kept instead (the old one's leases all go with it).
    let mut fresh_token = false;
    if has_leases && inputs.for_run {
        out.lease_client = pki.cloned();
        fresh_token = true;
    } else if has_leases && !inputs.dry_run {
        let spec = inputs.plan.vault.as_ref();
        let kept = match (&inputs.kept_token, spec) {
            (Some(t), Some(spec)) => {
                let base = crate::identity::vault::client(spec, tuning)
                    .map_err(crate::identity::IdentityError::from)?;
                let client = base.with_token(&Token::supplied(SecretString::from(t.to_string())));
                match keep_token(&client).await {
                    true => Some(client),
                    false => {
                        out.old_token = Some(client);
                        None
                    }
                }
            }
            _ => None,
        };
        out.lease_client = match kept {
            Some(c) => Some(c),
            None => {
                let session = crate::identity::vault::sign_in(inputs.plan, tuning, aws).await?;
                // A token credfile obtained is kept with its leases; a token the user supplied
                // (`auth.method: token`) is theirs: used, never stored or revoked.
                if session.token.owned {
                    tracing::info!(accessor = %session.token.accessor, "signed in to Vault for leases: this token is kept with them");
                    out.keep_token = Some(Zeroizing::new(session.token.expose().to_string()));
                }
                fresh_token = true;
                Some(session.client)
            }
        };
    }
    for (dir, r) in entries {
        let live = (inputs.live)(&dir);
        match r.kind {
            SourceKind::VaultLease => {
                let old = inputs.old.lease(&dir).filter(|l| l.source == r.id).cloned();
                let (value, record) =
                    lease(&inputs, &out, &dir, &r, old.clone(), live, fresh_token).await?;
                if let Some(old) = old
                    && old.lease_id != record.lease_id
                {
                    out.records.retired.push(old);
                }
                out.records.leases.push(record);
                out.values.push((r, value));
            }
            _ => {
                let Some(req) = PkiRequest::decode(&r.id) else {
                    return Err(DynamicError::Response {
                        path: r.id.clone(),
                        reason: "not a certificate request (internal error)".into(),
                    });
                };
                let old = inputs.old.certificate(&dir).cloned();
                let keep = match (&old, live) {
                    (Some(c), Some(live))
                        if !c.due(inputs.now, &req.record(), req.renew_before) =>
                    {
                        Some((c.clone(), live))
                    }
                    _ => None,
                };
                let (value, record) = match keep {
                    Some((c, live)) => {
                        tracing::info!(path = %dir.display(), serial = %c.serial, "the certificate is not due: kept");
                        (json_value(&req.issue_path(), &c.serial, &live)?, c)
                    }
                    None if inputs.dry_run => (
                        placeholder(&req.issue_path(), &["cert.pem", "key.pem", "chain.pem"]),
                        cert_placeholder(&dir, &req, inputs.now),
                    ),
                    None => issue(pki, &dir, &req, inputs.now).await?,
                };
                out.records.certificates.push(record);
                out.values.push((r, value));
            }
        }
    }
    // A lease whose entry left the manifest is retired too.
    for old in &inputs.old.leases {
        if !out.records.leases.iter().any(|l| l.path == old.path)
            && !out
                .records
                .retired
                .iter()
                .any(|l| l.lease_id == old.lease_id)
        {
            out.records.retired.push(old.clone());
        }
    }
    Ok(out)
}

/// `verify`: what the kept token says of itself (one `lookup-self`, nothing renewed).
pub async fn look_up_kept(
    plan: &Plan,
    token: &Zeroizing<String>,
    tuning: crate::aws::Tuning,
    now: u64,
) -> Result<KeptToken, DynamicError> {
    let Some(spec) = plan.vault.as_ref() else {
        return Ok(KeptToken::Lives {
            ends_at: None,
            why: "",
        });
    };
    let base = crate::identity::vault::client(spec, tuning)
        .map_err(crate::identity::IdentityError::from)?;
    let client = base.with_token(&Token::supplied(SecretString::from(token.to_string())));
    let path = "auth/token/lookup-self";
    match client.read(path).await {
        Ok(reply) => {
            let json = reply.json(path).map_err(vault_err(path))?;
            let data = json.get("data").cloned().unwrap_or_default();
            Ok(KeptToken::from_lookup(&data, now))
        }
        // Vault answers 403 for a token it no longer knows.
        Err(VaultError::Denied { .. }) => Ok(KeptToken::Gone),
        Err(e) => Err(vault_err(path)(e)),
    }
}

/// Whether the kept token may carry the leases on: it looks itself up, and a renewal grants
/// more than a third of the TTL it was created with. `false`: sign in anew.
async fn keep_token(client: &Client) -> bool {
    let path = "auth/token/lookup-self";
    let Ok(reply) = client.read(path).await else {
        tracing::info!(
            "the kept Vault token is gone (expired or revoked): signing in anew; its leases went with it"
        );
        return false;
    };
    let Ok(json) = reply.json(path) else {
        return false;
    };
    let data = json.get("data").cloned().unwrap_or_default();
    let creation = data
        .get("creation_ttl")
        .and_then(|t| t.as_u64())
        .unwrap_or(0);
    if creation == 0 {
        return true; // no expiry (a root or periodic-less token): nothing to renew
    }
    if !data
        .get("renewable")
        .and_then(|r| r.as_bool())
        .unwrap_or(false)
    {
        let ttl = data.get("ttl").and_then(|t| t.as_u64()).unwrap_or(0);
        return renewal_suffices(ttl, creation);
    }
    match client
        .renew_self(std::time::Duration::from_secs(creation))
        .await
    {
        Ok(granted) if renewal_suffices(granted.as_secs(), creation) => {
            tracing::info!(
                ttl = granted.as_secs(),
                "renewed the kept Vault token (it carries the leases)"
            );
            true
        }
        Ok(granted) => {
            tracing::info!(
                ttl = granted.as_secs(),
                "the kept Vault token nears its maximum TTL: signing in anew and replacing its leases"
            );
            false
        }
        Err(e) => {
            tracing::info!(error = %e, "cannot renew the kept Vault token: signing in anew");
            false
        }
    }
}

/// One lease entry: keep (renewed) or new credentials.
async fn lease(
    inputs: &Inputs<'_>,
    out: &Decided,
    dir: &Path,
    r: &SecretRef,
    old: Option<LeaseRecord>,
    live: Option<Live>,
    fresh_token: bool,
) -> Result<(Fetched, LeaseRecord), DynamicError> {
    if let (Some(rec), Some(live)) = (&old, &live)
        && !fresh_token
    {
        let plan = rec.plan(inputs.now);
        let kept = match (plan, inputs.dry_run, &out.lease_client) {
            (LeasePlan::Keep, _, _) | (LeasePlan::Renew, true, _) => Some(rec.clone()),
            (LeasePlan::Renew, false, Some(client)) => renew(client, rec, inputs.now).await,
            _ => None,
        };
        if let Some(rec) = kept {
            return Ok((json_value(&r.id, &rec.lease_id, live)?, rec));
        }
    }
    if inputs.dry_run {
        let names: Vec<&str> = live
            .as_ref()
            .map(|l| l.iter().map(|(n, _)| n.as_str()).collect())
            .unwrap_or_default();
        let rec = LeaseRecord {
            path: dir.to_path_buf(),
            source: r.id.clone(),
            lease_id: String::new(),
            issued_at: inputs.now,
            expires_at: inputs.now,
            ttl: 0,
            renewable: false,
        };
        return Ok((placeholder(&r.id, &names), rec));
    }
    let Some(client) = &out.lease_client else {
        return Err(DynamicError::Response {
            path: r.id.clone(),
            reason: "no Vault token for leases (internal error)".into(),
        });
    };
    let reply = client.read(&r.id).await.map_err(vault_err(&r.id))?;
    let json = reply.json(&r.id).map_err(vault_err(&r.id))?;
    let bad = |reason: &str| DynamicError::Response {
        path: r.id.clone(),
        reason: reason.into(),
    };
    let lease_id = json
        .get("lease_id")
        .and_then(|l| l.as_str())
        .filter(|l| !l.is_empty())
        .ok_or_else(|| bad("the answer has no lease (`vault_lease:` is for paths that issue credentials with a lease; a KV secret is `vault:`)"))?
        .to_string();
    let ttl = json
        .get("lease_duration")
        .and_then(|d| d.as_u64())
        .unwrap_or(0);
    let data = json
        .get("data")
        .filter(|d| d.is_object())
        .ok_or_else(|| bad("the answer has no data object"))?;
    let text = Zeroizing::new(data.to_string());
    drop(json);
    tracing::info!(path = %r.id, lease_id = %lease_id, ttl, "new dynamic credentials");
    let rec = LeaseRecord {
        path: dir.to_path_buf(),
        source: r.id.clone(),
        lease_id: lease_id.clone(),
        issued_at: inputs.now,
        expires_at: inputs.now + ttl,
        ttl,
        renewable: json_bool(&reply, &r.id, "renewable"),
    };
    Ok((fetched(&r.id, &lease_id, &text), rec))
}

fn json_bool(reply: &crate::vault::Reply, path: &str, key: &str) -> bool {
    reply
        .json(path)
        .ok()
        .and_then(|j| j.get(key).and_then(|b| b.as_bool()))
        .unwrap_or(false)
}

/// Renews a lease; the record with its new expiry when the renewal suffices, `None` when the
/// credentials must be replaced (refused, or capped by the maximum TTL).
async fn renew(client: &Client, rec: &LeaseRecord, now: u64) -> Option<LeaseRecord> {
    let body = serde_json::json!({ "lease_id": rec.lease_id, "increment": rec.ttl });
    match client.write("sys/leases/renew", &body).await {
        Ok(reply) => {
            let granted = reply
                .json("sys/leases/renew")
                .ok()
                .and_then(|j| j.get("lease_duration").and_then(|d| d.as_u64()))
                .unwrap_or(0);
            if renewal_suffices(granted, rec.ttl) {
                tracing::info!(lease_id = %rec.lease_id, ttl = granted, "renewed the lease: the credentials stay");
                Some(LeaseRecord {
                    expires_at: now + granted,
                    ..rec.clone()
                })
            } else {
                tracing::info!(lease_id = %rec.lease_id, ttl = granted, "the lease nears its maximum TTL: new credentials");
                None
            }
        }
        Err(e) => {
            tracing::info!(lease_id = %rec.lease_id, error = %e, "the lease cannot be renewed: new credentials");
            None
        }
    }
}

/// Issues a certificate: its files and its record.
async fn issue(
    client: Option<&Client>,
    dir: &Path,
    req: &PkiRequest,
    now: u64,
) -> Result<(Fetched, CertRecord), DynamicError> {
    let path = req.issue_path();
    let Some(client) = client else {
        return Err(DynamicError::Response {
            path,
            reason: "no Vault sign-in was made (internal error)".into(),
        });
    };
    let mut body = serde_json::json!({ "common_name": req.common_name, "format": "pem" });
    if !req.alt_names.is_empty() {
        body["alt_names"] = req.alt_names.join(",").into();
    }
    if !req.ip_sans.is_empty() {
        body["ip_sans"] = req.ip_sans.join(",").into();
    }
    if let Some(ttl) = req.ttl {
        body["ttl"] = format!("{ttl}s").into();
    }
    let reply = client.write(&path, &body).await.map_err(vault_err(&path))?;
    let json = reply.json(&path).map_err(vault_err(&path))?;
    let data = json.get("data").cloned().unwrap_or_default();
    let s = |k: &str| {
        data.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let (cert, key, serial) = (
        s("certificate"),
        Zeroizing::new(s("private_key")),
        s("serial_number"),
    );
    if cert.is_empty() || key.is_empty() || serial.is_empty() {
        return Err(DynamicError::Response {
            path,
            reason: "the answer has no certificate, private key or serial number".into(),
        });
    }
    let chain: Vec<String> = match data.get("ca_chain").and_then(|c| c.as_array()) {
        Some(list) if !list.is_empty() => list
            .iter()
            .filter_map(|c| c.as_str().map(|c| c.trim().to_string()))
            .collect(),
        _ => vec![s("issuing_ca")],
    };
    let expires_at = match data.get("expiration") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(t)) => t.parse().ok(),
        _ => None,
    }
    .unwrap_or(now);
    drop(data);
    drop(json);
    let object = serde_json::json!({
        "cert.pem": format!("{cert}\n"),
        "key.pem": format!("{}\n", key.as_str()),
        "chain.pem": format!("{}\n", chain.join("\n")),
    });
    let text = Zeroizing::new(object.to_string());
    drop(object);
    tracing::info!(path = %path, serial = %serial, expires_at, "issued a certificate");
    let rec = CertRecord {
        path: dir.to_path_buf(),
        source: path.clone(),
        serial: serial.clone(),
        issued_at: now,
        expires_at,
        request: req.record(),
    };
    Ok((fetched(&path, &serial, &text), rec))
}

fn cert_placeholder(dir: &Path, req: &PkiRequest, now: u64) -> CertRecord {
    CertRecord {
        path: dir.to_path_buf(),
        source: req.issue_path(),
        serial: String::new(),
        issued_at: now,
        expires_at: now,
        request: req.record(),
    }
}

/// The value of a set that keeps its files: their live bytes as one JSON object.
fn json_value(path: &str, version: &str, live: &Live) -> Result<Fetched, DynamicError> {
    let mut map = serde_json::Map::new();
    for (name, bytes) in live {
        let text = std::str::from_utf8(bytes).map_err(|_| DynamicError::Response {
            path: path.to_string(),
            reason: format!("the live file `{name}` is not text"),
        })?;
        map.insert(name.clone(), serde_json::Value::String(text.to_string()));
    }
    let object = serde_json::Value::Object(map);
    let text = Zeroizing::new(object.to_string());
    // serde_json's own copy of the values is dropped here; the Zeroizing text carries on.
    drop(object);
    Ok(fetched(path, version, &text))
}

/// `plan` for a set that would change: its files with empty content (never written).
fn placeholder(path: &str, names: &[&str]) -> Fetched {
    let object: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .map(|n| (n.to_string(), serde_json::Value::String(String::new())))
        .collect();
    fetched(
        path,
        "",
        &Zeroizing::new(serde_json::Value::Object(object).to_string()),
    )
}

fn fetched(path: &str, version: &str, text: &Zeroizing<String>) -> Fetched {
    Fetched {
        arn: format!("vault:{path}"),
        name: path.to_string(),
        version_id: version.to_string(),
        value: SecretValue::Text(SecretString::from(text.as_str().to_string())),
    }
}

/// After the hooks of the new set: revokes the retired leases and the replaced token (which
/// takes its own leases with it). `hooks_ok`: every hook succeeded and none is owed; otherwise
/// the retired leases stay recorded for a later apply or `clean`. The records to keep.
pub async fn finish(decided: &Decided, hooks_ok: bool) -> VaultRecords {
    let mut records = decided.records.clone();
    if !hooks_ok {
        return records;
    }
    if let Some(old) = &decided.old_token {
        match old.revoke_self().await {
            Ok(()) => tracing::info!("revoked the replaced Vault token and its leases"),
            Err(e) => {
                tracing::debug!(error = %e, "the replaced Vault token could not be revoked (it may be gone already)")
            }
        }
    }
    let mut left = Vec::new();
    for rec in std::mem::take(&mut records.retired) {
        let revoked = match &decided.lease_client {
            Some(client) => revoke(client, &rec.lease_id).await,
            None => false,
        };
        if !revoked {
            left.push(rec);
        }
    }
    records.retired = left;
    records
}

/// `sys/leases/revoke`; a lease that is gone already counts as revoked.
pub async fn revoke(client: &Client, lease_id: &str) -> bool {
    let body = serde_json::json!({ "lease_id": lease_id });
    match client.write("sys/leases/revoke", &body).await {
        Ok(_) => {
            tracing::info!(lease_id, "revoked the lease");
            true
        }
        Err(VaultError::NotFound { .. }) => true,
        Err(e) if e.status() == Some(400) => true,
        Err(e) => {
            tracing::warn!(lease_id, error = %e, "cannot revoke the lease; it ends with its TTL or at the next clean");
            false
        }
    }
}

/// `clean`: revokes every recorded lease and the kept token (which takes its leases with it).
/// What could not be revoked, for the message.
pub async fn revoke_all(
    records: &VaultRecords,
    kept_token: Option<Zeroizing<String>>,
    plan: &Plan,
    aws: Option<&crate::identity::Session>,
    tuning: crate::aws::Tuning,
) -> Vec<String> {
    let mut left = Vec::new();
    let client = match (kept_token, plan.vault.as_ref()) {
        (Some(t), Some(spec)) => crate::identity::vault::client(spec, tuning)
            .ok()
            .map(|base| {
                base.with_token(&Token::supplied(SecretString::from(t.as_str().to_string())))
            }),
        _ => None,
    };
    let client = match client {
        Some(c) => Some(c),
        None if !records.leases.is_empty() || !records.retired.is_empty() => {
            crate::identity::vault::sign_in(plan, tuning, aws)
                .await
                .ok()
                .map(|s| s.client)
        }
        None => None,
    };
    for rec in records.leases.iter().chain(&records.retired) {
        let done = match &client {
            Some(c) => revoke(c, &rec.lease_id).await,
            None => false,
        };
        if !done {
            left.push(rec.lease_id.clone());
        }
    }
    if let Some(c) = &client
        && let Err(e) = c.revoke_self().await
    {
        tracing::debug!(error = %e, "the kept Vault token could not be revoked");
    }
    left
}
