//! Seeding secrets into moto through the real AWS SDK, with a blocking API.
//! Every value written is registered as a canary (see `canary.rs`).

use std::future::Future;
use std::time::Duration;

use aws_sdk_secretsmanager as sm;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_sts as sts;

use super::canary::Canaries;

/// moto's account for the static `testing` keys.
pub const DEFAULT_ACCOUNT: &str = "123456789012";
pub const DEFAULT_REGION: &str = "us-east-1";

/// Writes secrets into one account+region of moto. Blocking: call from plain
/// `#[test]` functions, not from inside a tokio runtime.
pub struct Seeder {
    rt: tokio::runtime::Runtime,
    client: sm::Client,
    canaries: Canaries,
    account: String,
}

impl Seeder {
    /// Default account (123456789012), us-east-1, static `testing` keys.
    pub fn new(endpoint: &str) -> Self {
        Self::with_options(endpoint, None, DEFAULT_REGION)
    }

    /// Another account's isolated store: STS AssumeRole into
    /// `arn:aws:iam::<account>:role/seed` first. us-east-1.
    pub fn in_account(endpoint: &str, account: &str) -> Self {
        Self::with_options(endpoint, Some(account), DEFAULT_REGION)
    }

    /// Full control: `account` None = default account with static keys.
    pub fn with_options(endpoint: &str, account: Option<&str>, region: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let static_creds =
            sm::config::Credentials::new("testing", "testing", None, None, "credfile-test");
        let (creds, account) = match account {
            None => (static_creds, DEFAULT_ACCOUNT.to_string()),
            Some(acct) => {
                let sts_conf = sts::Config::builder()
                    .behavior_version(sts::config::BehaviorVersion::latest())
                    .region(sts::config::Region::new(region.to_string()))
                    .endpoint_url(endpoint)
                    .credentials_provider(static_creds)
                    .timeout_config(timeouts())
                    .build();
                let sts_client = sts::Client::from_conf(sts_conf);
                let role_arn = format!("arn:aws:iam::{acct}:role/seed");
                let out = rt
                    .block_on(
                        sts_client
                            .assume_role()
                            .role_arn(&role_arn)
                            .role_session_name("seed")
                            .send(),
                    )
                    .unwrap_or_else(|e| {
                        panic!("seed AssumeRole {role_arn}: {}", DisplayErrorContext(&e))
                    });
                let c = out
                    .credentials()
                    .expect("AssumeRole returned no credentials");
                (
                    sm::config::Credentials::new(
                        c.access_key_id(),
                        c.secret_access_key(),
                        Some(c.session_token().to_string()),
                        None,
                        "credfile-test-assumed",
                    ),
                    acct.to_string(),
                )
            }
        };
        let conf = sm::Config::builder()
            .behavior_version(sm::config::BehaviorVersion::latest())
            .region(sm::config::Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .credentials_provider(creds)
            .timeout_config(timeouts())
            .build();
        Seeder {
            rt,
            client: sm::Client::from_conf(conf),
            canaries: Canaries::global(),
            account,
        }
    }

    /// Register seeded values into `canaries` instead of the global registry.
    pub fn with_canaries(mut self, canaries: Canaries) -> Self {
        self.canaries = canaries;
        self
    }

    pub fn canaries(&self) -> &Canaries {
        &self.canaries
    }
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The underlying SDK client, for calls the helpers do not cover.
    pub fn client(&self) -> &sm::Client {
        &self.client
    }

    /// Run an SDK future to completion on this seeder's runtime.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// CreateSecret with a SecretString. Returns `(arn, version_id)`.
    pub fn create_string(&self, name: &str, value: &str) -> (String, String) {
        self.canaries.add_secret_string(value);
        let out = self
            .block_on(
                self.client
                    .create_secret()
                    .name(name)
                    .secret_string(value)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("CreateSecret {name}: {}", DisplayErrorContext(&e)));
        (
            out.arn().expect("CreateSecret: no ARN").to_string(),
            out.version_id()
                .expect("CreateSecret: no VersionId")
                .to_string(),
        )
    }

    /// CreateSecret with a JSON SecretString (`value.to_string()`).
    pub fn create_json(&self, name: &str, value: &serde_json::Value) -> (String, String) {
        self.create_string(name, &value.to_string())
    }

    /// CreateSecret with a SecretBinary. Returns `(arn, version_id)`.
    pub fn create_binary(&self, name: &str, value: &[u8]) -> (String, String) {
        self.canaries.add_secret_binary(value);
        let out = self
            .block_on(
                self.client
                    .create_secret()
                    .name(name)
                    .secret_binary(Blob::new(value))
                    .send(),
            )
            .unwrap_or_else(|e| panic!("CreateSecret(binary) {name}: {}", DisplayErrorContext(&e)));
        (
            out.arn().expect("CreateSecret: no ARN").to_string(),
            out.version_id()
                .expect("CreateSecret: no VersionId")
                .to_string(),
        )
    }

    /// PutSecretValue with a SecretString: the new version becomes AWSCURRENT,
    /// the previous one AWSPREVIOUS. Returns the new version id.
    pub fn put_string(&self, name: &str, value: &str) -> String {
        self.canaries.add_secret_string(value);
        let out = self
            .block_on(
                self.client
                    .put_secret_value()
                    .secret_id(name)
                    .secret_string(value)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("PutSecretValue {name}: {}", DisplayErrorContext(&e)));
        out.version_id()
            .expect("PutSecretValue: no VersionId")
            .to_string()
    }

    /// DeleteSecret, immediately (no recovery window).
    pub fn delete(&self, name: &str) {
        self.block_on(
            self.client
                .delete_secret()
                .secret_id(name)
                .force_delete_without_recovery(true)
                .send(),
        )
        .unwrap_or_else(|e| panic!("DeleteSecret {name}: {}", DisplayErrorContext(&e)));
    }

    /// GetSecretValue (AWSCURRENT) as a string, for comparing with written files.
    pub fn get_string(&self, name: &str) -> String {
        let out = self
            .block_on(self.client.get_secret_value().secret_id(name).send())
            .unwrap_or_else(|e| panic!("GetSecretValue {name}: {}", DisplayErrorContext(&e)));
        out.secret_string()
            .expect("secret has no SecretString")
            .to_string()
    }
}

fn timeouts() -> sm::config::timeout::TimeoutConfig {
    sm::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(30))
        .build()
}
