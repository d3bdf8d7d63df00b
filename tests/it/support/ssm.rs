//! Seeding Parameter Store in moto through the real AWS SDK, with a blocking API. Every value
//! written is registered as a canary (see `canary.rs`).

use aws_sdk_ssm as ssm;
use aws_sdk_ssm::error::DisplayErrorContext;
use aws_sdk_ssm::types::ParameterType;

use super::canary::Canaries;

/// Writes parameters into moto's default account (123456789012), us-east-1, static keys.
pub struct ParamSeeder {
    rt: tokio::runtime::Runtime,
    client: ssm::Client,
    canaries: Canaries,
}

impl ParamSeeder {
    pub fn new(endpoint: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let creds =
            ssm::config::Credentials::new("testing", "testing", None, None, "credfile-test");
        let conf = ssm::Config::builder()
            .behavior_version(ssm::config::BehaviorVersion::latest())
            .region(ssm::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(creds)
            .build();
        ParamSeeder {
            rt,
            client: ssm::Client::from_conf(conf),
            canaries: Canaries::global(),
        }
    }

    /// PutParameter (overwriting); returns the new version number. A StringList value is
    /// registered as a canary whole and per item.
    pub fn put(&self, name: &str, value: &str, kind: &str) -> i64 {
        self.canaries.add(value);
        if kind == "StringList" {
            for item in value.split(',') {
                if item.len() >= 8 {
                    self.canaries.add(item);
                }
            }
        }
        let mut req = self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .overwrite(true)
            .r#type(ParameterType::from(kind));
        if kind == "SecureString" {
            req = req.key_id("alias/aws/ssm");
        }
        let out = self
            .rt
            .block_on(req.send())
            .unwrap_or_else(|e| panic!("PutParameter {name}: {}", DisplayErrorContext(&e)));
        out.version
    }

    /// LabelParameterVersion.
    pub fn label(&self, name: &str, version: i64, label: &str) {
        self.rt
            .block_on(
                self.client
                    .label_parameter_version()
                    .name(name)
                    .parameter_version(version)
                    .labels(label)
                    .send(),
            )
            .unwrap_or_else(|e| {
                panic!("LabelParameterVersion {name}: {}", DisplayErrorContext(&e))
            });
    }

    pub fn delete(&self, name: &str) {
        self.rt
            .block_on(self.client.delete_parameter().name(name).send())
            .unwrap_or_else(|e| panic!("DeleteParameter {name}: {}", DisplayErrorContext(&e)));
    }
}
