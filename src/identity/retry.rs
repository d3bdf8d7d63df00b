//! Retries for identity calls (STS, the GitHub token endpoint, the default chain): transient
//! faults within `--max-attempts`, throttles (the account's shared STS quota) until
//! `--call-timeout`, both from the run's [`aws::Tuning`] like every other AWS call.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use secrecy::SecretString;

use super::IdentityError;
use crate::aws::{self, Failure, FailureKind};

/// Backoff for identity calls (STS, the token endpoint); the attempt count and the total time
/// come from the run's [`aws::Tuning`], like every other AWS call.
const BASE_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Whether an identity call may succeed if repeated: IdP hiccups, throttling, 5xx, the network.
/// Token, trust and permission errors never do.
fn transient(f: &Failure) -> bool {
    let code_says = matches!(
        f.code.as_deref(),
        Some(
            "IDPCommunicationError"
                | "Throttling"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "ServiceUnavailable"
                | "InternalFailure"
                | "InternalError"
        )
    );
    code_says
        || f.status.is_some_and(|s| s >= 500 || s == 429)
        || matches!(f.kind, FailureKind::Network | FailureKind::Timeout)
}

/// Full-jitter exponential backoff: a random delay in [0, min(cap, base * 2^attempt)].
fn backoff(attempt: u32) -> Duration {
    let ceiling = BASE_DELAY
        .saturating_mul(1 << attempt.min(10))
        .min(MAX_DELAY);
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    ceiling.mul_f64(f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX))
}

/// The default chain's credentials. Its web-identity and SSO providers call STS with the SDK's
/// retries; a throttled exchange that outlasts them is tried again, as in [`retry`], until the
/// call timeout. The chain's error is opaque, so the throttle is recognised by its message.
pub(super) async fn chain_credentials(
    provider: &SharedCredentialsProvider,
    tuning: aws::Tuning,
) -> Result<Credentials, IdentityError> {
    let started = Instant::now();
    let call_timeout = tuning.call_timeout;
    let mut throttled = 0;
    loop {
        let reason = match provider.provide_credentials().await {
            Ok(creds) => return Ok(creds),
            Err(e) => aws::error_chain(&e),
        };
        let left = call_timeout.saturating_sub(started.elapsed());
        let throttle = ["Throttling", "TooManyRequests", "Rate exceeded"]
            .iter()
            .any(|t| reason.contains(t));
        if !throttle || left.is_zero() {
            return Err(IdentityError::NoCredentials { reason });
        }
        tracing::debug!(
            throttled,
            "the credential chain was throttled; waiting for a turn"
        );
        tokio::time::sleep(aws::throttle_wait(throttled).min(left)).await;
        throttled += 1;
    }
}

pub(super) async fn retry<T, F, Fut>(
    tuning: aws::Tuning,
    what: &str,
    mut call: F,
) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let started = Instant::now();
    let attempts = tuning.max_attempts;
    let mut attempt = 0;
    let mut throttled = 0;
    loop {
        attempt += 1;
        match call().await {
            Ok(v) => return Ok(v),
            // STS's quota is the account's: wait for a turn until the call timeout, without
            // spending attempts (a matrix build or a fleet exchanges tokens at once).
            Err(f) if aws::is_throttle(&f) => {
                let left = tuning.call_timeout.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(f);
                }
                attempt -= 1;
                throttled += 1;
                tracing::debug!(call = what, throttled, "throttled; waiting for a turn");
                tokio::time::sleep(aws::throttle_wait(throttled - 1).min(left)).await;
            }
            Err(f) if transient(&f) && attempt < attempts => {
                let delay = backoff(attempt);
                if started.elapsed() + delay > tuning.call_timeout {
                    return Err(f);
                }
                tracing::warn!(call = what, attempt, error = %f, "transient failure; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(f) => return Err(f),
        }
    }
}

pub(super) async fn retry_token<F, Fut>(
    tuning: aws::Tuning,
    mut call: F,
) -> Result<SecretString, IdentityError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<SecretString, IdentityError>>,
{
    let attempts = tuning.max_attempts;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Err(IdentityError::GithubTokenStatus { status, .. })
                if status >= 500 && attempt < attempts => {}
            Err(IdentityError::GithubToken { .. }) if attempt < attempts => {}
            other => return other,
        }
        tokio::time::sleep(backoff(attempt)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_classified() {
        let f = |code: Option<&str>, status: Option<u16>| Failure {
            code: code.map(str::to_string),
            status,
            message: String::new(),
            kind: FailureKind::Service,
        };
        assert!(transient(&f(Some("IDPCommunicationError"), Some(400))));
        assert!(transient(&f(None, Some(503))));
        assert!(transient(&f(Some("Throttling"), Some(400))));
        assert!(!transient(&f(Some("InvalidIdentityToken"), Some(400))));
        assert!(!transient(&f(Some("AccessDenied"), Some(403))));
        assert!(!transient(&f(Some("ExpiredTokenException"), Some(400))));
    }

    #[test]
    fn backoff_is_bounded() {
        for attempt in 1..20 {
            assert!(backoff(attempt) <= MAX_DELAY);
        }
    }
}
