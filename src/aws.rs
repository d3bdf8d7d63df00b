//! The one seam around the AWS SDK: how configuration is loaded and how SDK errors become
//! plain, classified facts. Everything else sees `SdkConfig`, clients, and [`Failure`].
//!
//! Endpoints come only from the SDK's own settings (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER`, ...): the binary has no test-only switches.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{AppName, BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;

/// Loads the SDK's default configuration (credential chain, profile, retries from
/// `AWS_MAX_ATTEMPTS` / `AWS_RETRY_MODE`) with credfile's timeouts and attribution.
pub async fn load_config(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .app_name(
            AppName::new(concat!("credfile-", env!("CARGO_PKG_VERSION"))).expect("valid app name"),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(20))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        );
    // An explicit region also keeps the SDK from probing instance metadata for one.
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    loader.load().await
}

/// What went wrong with one AWS call, without the SDK's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The AWS error code (`AccessDeniedException`, `ResourceNotFoundException`, ...), when the
    /// service answered with one.
    pub code: Option<String>,
    pub message: String,
    pub kind: FailureKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The service answered with an error.
    Service,
    /// No answer in time.
    Timeout,
    /// The request never got an answer: DNS, connection, TLS.
    Network,
    /// A response that could not be understood.
    Response,
    /// The request could not be built (credentials, endpoint, region).
    Request,
}

impl Failure {
    pub fn from_sdk<E, R>(err: &SdkError<E, R>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let kind = match err {
            SdkError::ServiceError(_) => FailureKind::Service,
            SdkError::TimeoutError(_) => FailureKind::Timeout,
            SdkError::DispatchFailure(d) if d.is_timeout() => FailureKind::Timeout,
            SdkError::DispatchFailure(_) => FailureKind::Network,
            SdkError::ResponseError(_) => FailureKind::Response,
            _ => FailureKind::Request,
        };
        let (code, message) = match err.as_service_error() {
            Some(service) => (
                service.code().map(str::to_string),
                service.message().unwrap_or("no message").to_string(),
            ),
            None => (None, DisplayErrorContext(err).to_string()),
        };
        Failure {
            code,
            message,
            kind,
        }
    }

    pub fn is_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.code, self.kind) {
            (Some(code), _) => write!(f, "{code}: {}", self.message),
            (None, FailureKind::Timeout) => write!(f, "timed out: {}", self.message),
            (None, FailureKind::Network) => write!(f, "cannot reach AWS: {}", self.message),
            (None, _) => f.write_str(&self.message),
        }
    }
}
