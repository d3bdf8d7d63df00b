//! The one seam around the AWS SDK: how configuration is loaded and how SDK errors become
//! plain, classified facts. Everything else sees `SdkConfig`, clients, and [`Failure`].
//!
//! Endpoints come only from the SDK's own settings (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER`, ...): the binary has no test-only switches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{AppName, BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::{Builder, ConnectorBuilder, tls};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
    BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The suffix every AWS call carries in its User-Agent, so CloudTrail shows which calls
/// credfile made (`userAgent` field).
pub const USER_AGENT: &str = concat!("credfile/", env!("CARGO_PKG_VERSION"));

/// How hard credfile tries against AWS: the same numbers for every call (STS, Secrets Manager,
/// the GitHub token endpoint), from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Time allowed for one attempt (a stalled response is abandoned and retried).
    pub attempt_timeout: Duration,
    /// Time allowed for one call, all attempts and backoff included.
    pub call_timeout: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            max_attempts: 3,
            attempt_timeout: Duration::from_secs(20),
            call_timeout: Duration::from_secs(60),
        }
    }
}

/// What every AWS call of a run shares, handed down as a value: how hard to try, and the
/// counters its clients add to (the report's `fetch.calls`). Cloning shares the counters.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub tuning: Tuning,
    counters: Arc<CallCounters>,
}

impl Context {
    pub fn new(tuning: Tuning) -> Context {
        Context {
            tuning,
            counters: Arc::default(),
        }
    }

    /// The calls made since the context was made or the last [`Context::take_calls`].
    pub fn calls(&self) -> Calls {
        self.counters.snapshot(false)
    }

    /// The calls made, with the counters reset to zero (`apply --every`: one count per round).
    pub fn take_calls(&self) -> Calls {
        self.counters.snapshot(true)
    }
}

/// Loads the SDK's default configuration with credfile's retries (standard mode: jittered
/// exponential backoff on throttling, 5xx and transient network errors), timeouts and
/// attribution. `default_credentials: false` skips the credential chain entirely (the identity
/// is a pipeline token), so nothing probes instance metadata.
pub async fn load_config(region: Option<&str>, default_credentials: bool, t: Tuning) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .app_name(
            AppName::new(concat!("credfile-", env!("CARGO_PKG_VERSION"))).expect("valid app name"),
        )
        .retry_config(retry_config(t.max_attempts))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5).min(t.attempt_timeout))
                .operation_attempt_timeout(t.attempt_timeout)
                .operation_timeout(t.call_timeout)
                .build(),
        );
    // An explicit region also keeps the SDK from probing instance metadata for one.
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    if !default_credentials {
        loader = loader.no_credentials();
    }
    loader.http_client(http_client()).load().await
}

/// The retry policy: standard mode (jittered exponential backoff), or the SDK's adaptive mode
/// (the same, plus a client-side rate limiter that slows down after throttling) when
/// `AWS_RETRY_MODE=adaptive`. An explicit retry config replaces the SDK's own reading of
/// `AWS_RETRY_MODE`, so credfile reads it here.
pub fn retry_config(max_attempts: u32) -> RetryConfig {
    retry_config_from(max_attempts, &|k| std::env::var(k).ok())
}

fn retry_config_from(max_attempts: u32, var: &dyn Fn(&str) -> Option<String>) -> RetryConfig {
    let adaptive = var("AWS_RETRY_MODE").is_some_and(|m| m.trim().eq_ignore_ascii_case("adaptive"));
    let base = if adaptive {
        RetryConfig::adaptive()
    } else {
        RetryConfig::standard()
    };
    base.with_max_attempts(max_attempts)
}

/// Whether AWS refused the call for its rate: these codes, or HTTP 429.
pub fn is_throttle(f: &Failure) -> bool {
    f.status == Some(429)
        || matches!(
            f.code.as_deref(),
            Some(
                "ThrottlingException"
                    | "Throttling"
                    | "TooManyRequestsException"
                    | "RequestLimitExceeded"
                    | "RequestThrottled"
                    | "RequestThrottledException"
                    | "SlowDown"
            )
        )
}

/// Whether repeating the call may help: the network, a timeout, an unreadable answer or a 5xx.
/// A refusal (not found, denied, a bad request) is not sent again.
fn is_transient(f: &Failure) -> bool {
    matches!(
        f.kind,
        FailureKind::Network | FailureKind::Timeout | FailureKind::Response
    ) || f.status.is_some_and(|s| s >= 500)
}

/// How long a throttled call waits before its next try: full jitter over a window that doubles
/// from 250 ms up to 5 s. The cap keeps a host that was throttled often from sleeping through
/// the moment the shared quota frees up (the SDK's standard mode waits up to 20 s).
pub fn throttle_wait(throttled_before: u32) -> Duration {
    let window = Duration::from_millis(250)
        .saturating_mul(1u32 << throttled_before.min(5))
        .min(Duration::from_secs(5));
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    window.mul_f64(f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX))
}

/// One call that waits its turn when throttled: `send(n)` sends the request with at most `n`
/// attempts (the SDK's retries). A throttle is the account's shared quota, not a fault of this
/// host: the call is tried again after [`throttle_wait`] until `--call-timeout` has passed,
/// without spending `--max-attempts` (a host that gives up after a few throttles fails although
/// its turn would have come). A transient fault gets the rest of the attempt budget through the
/// SDK's retries; a refusal fails at once.
pub async fn call_waiting_turn<T, E, F, Fut>(tuning: Tuning, mut send: F) -> Result<T, Failure>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let deadline = tokio::time::Instant::now() + tuning.call_timeout;
    let mut throttled = 0u32;
    loop {
        let failure = match send(1).await {
            Ok(out) => return Ok(out),
            Err(e) => Failure::from_sdk(&e),
        };
        if !is_throttle(&failure) {
            if tuning.max_attempts <= 1 || !is_transient(&failure) {
                return Err(failure);
            }
            return send(tuning.max_attempts - 1)
                .await
                .map_err(|e| Failure::from_sdk(&e));
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(failure);
        }
        // The last wait ends at the deadline, for one more try.
        tokio::time::sleep(throttle_wait(throttled).min(left)).await;
        throttled += 1;
        tracing::debug!(throttled, "throttled; waiting for a turn");
    }
}

/// AWS calls made by this process, by kind, counted at each attempt (a retry is a call: it
/// spends the account's quota too), and how many of them were throttled.
#[derive(Debug, Default)]
pub struct CallCounters {
    batch: [AtomicU64; 2],
    single: [AtomicU64; 2],
    list_secrets: [AtomicU64; 2],
    parameters: [AtomicU64; 2],
    parameters_by_path: [AtomicU64; 2],
    sts: [AtomicU64; 2],
}

/// A snapshot of [`CallCounters`]: `(calls, throttled)` per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    pub batch: (u64, u64),
    pub single: (u64, u64),
    pub list_secrets: (u64, u64),
    pub parameters: (u64, u64),
    pub parameters_by_path: (u64, u64),
    pub sts: (u64, u64),
}

impl CallCounters {
    /// `(calls, throttled)` per kind; `reset`: and start again from zero.
    fn snapshot(&self, reset: bool) -> Calls {
        let read = |c: &[AtomicU64; 2]| {
            let one = |a: &AtomicU64| {
                if reset {
                    a.swap(0, Ordering::Relaxed)
                } else {
                    a.load(Ordering::Relaxed)
                }
            };
            (one(&c[0]), one(&c[1]))
        };
        Calls {
            batch: read(&self.batch),
            single: read(&self.single),
            list_secrets: read(&self.list_secrets),
            parameters: read(&self.parameters),
            parameters_by_path: read(&self.parameters_by_path),
            sts: read(&self.sts),
        }
    }
}

/// Counts every attempt of credfile's own clients into the run's [`CallCounters`].
#[derive(Debug)]
struct CallCounter(Arc<CallCounters>);

impl CallCounter {
    fn slot<'a>(&'a self, cfg: &ConfigBag) -> Option<&'a [AtomicU64; 2]> {
        let meta = cfg.load::<Metadata>()?;
        let c = &self.0;
        Some(match (meta.service(), meta.name()) {
            (_, "BatchGetSecretValue") => &c.batch,
            (_, "GetSecretValue") => &c.single,
            (_, "ListSecrets") => &c.list_secrets,
            (_, "GetParameters") => &c.parameters,
            (_, "GetParametersByPath") => &c.parameters_by_path,
            (service, _) if service.eq_ignore_ascii_case("sts") => &c.sts,
            _ => return None,
        })
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CredfileCallCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(slot) = self.slot(cfg) {
            slot[0].fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response();
        let status = response.status().as_u16();
        if status < 400 {
            return Ok(());
        }
        // An error answer only (a success body holds secret values): the JSON protocols name
        // the error in a header or `__type`, STS's XML in `<Code>`.
        let header = response
            .headers()
            .get("x-amzn-errortype")
            .unwrap_or_default();
        let body = response.body().bytes().unwrap_or_default();
        let named = |code: &str| {
            header.starts_with(code) || body.windows(code.len()).any(|w| w == code.as_bytes())
        };
        let throttled = status == 429
            || named("Throttling")
            || named("TooManyRequestsException")
            || named("RequestLimitExceeded");
        if throttled && let Some(slot) = self.slot(cfg) {
            slot[1].fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// The run's one HTTP client: one connection pool and one TLS configuration for STS, Secrets
/// Manager and the credential providers. Without it aws-config leaves the shared config's
/// client unset and every service client builds its own default one (its own pool, and its own
/// trust store, parsed again). This is the SDK's default client, built once: hyper 1 + rustls
/// with aws-lc, the system's root certificates, proxies from `HTTPS_PROXY` / `NO_PROXY`, made
/// the way aws-smithy-runtime's `default_https_client` makes it (same builder call).
fn http_client() -> SharedHttpClient {
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// The endpoint (scheme, host and port) each service's last request went to, by service
/// ([`service_key`]): a request that never got an answer (connection refused, DNS) carries no
/// URL in the SDK's error, and "cannot reach AWS" without the address sends people looking at
/// AWS when `AWS_ENDPOINT_URL` points at a stopped local mirror.
static ENDPOINTS: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

/// `Secrets Manager` (the SDK's metadata) and `aws_sdk_secretsmanager` (its crate) alike
/// become `secretsmanager`.
fn service_key(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// `scheme://host:port` of a URI: no user information (it could be a password), path or
/// query (noise in an error).
fn endpoint_of(uri: &str) -> String {
    let start = uri.find("://").map_or(0, |i| i + 3);
    let end = uri[start..]
        .find(['/', '?', '#'])
        .map_or(uri.len(), |i| start + i);
    let host = uri[start..end].rsplit('@').next().unwrap_or_default();
    format!("{}{host}", &uri[..start])
}

/// The endpoint the last request of the service that answers with error type `E` went to.
fn endpoint_tried<E>() -> Option<String> {
    let crate_name = std::any::type_name::<E>().split("::").next()?;
    let service = service_key(crate_name.strip_prefix("aws_sdk_")?);
    ENDPOINTS.lock().ok()?.as_ref()?.get(&service).cloned()
}

/// What to check when an endpoint cannot be reached: the override, when one is set (the
/// endpoint is then not AWS's), else the region and the network.
pub fn endpoint_advice() -> String {
    let overrides: Vec<String> = std::env::vars()
        .filter(|(k, v)| k.starts_with("AWS_ENDPOINT_URL") && !v.is_empty())
        .map(|(k, v)| format!("{k}={}", crate::terminal::Escaped(&endpoint_of(&v))))
        .collect();
    if overrides.is_empty() {
        "check the environment's region, DNS and the network path (a proxy in HTTPS_PROXY), then retry".into()
    } else {
        format!(
            "the endpoint comes from {}: check that the service there is running, or unset it to use AWS",
            overrides.join(", ")
        )
    }
}

/// Records where each request goes, for [`endpoint_tried`].
#[derive(Debug)]
struct EndpointRecorder;

impl Intercept for EndpointRecorder {
    fn name(&self) -> &'static str {
        "CredfileEndpointRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let (Some(meta), Ok(mut map)) = (cfg.load::<Metadata>(), ENDPOINTS.lock()) {
            map.get_or_insert_with(HashMap::new).insert(
                service_key(meta.service()),
                endpoint_of(context.request().uri()),
            );
        }
        Ok(())
    }
}

/// A Secrets Manager client for this configuration, with credfile's User-Agent.
pub fn secrets_client(config: &SdkConfig, aws: &Context) -> aws_sdk_secretsmanager::Client {
    let conf = aws_sdk_secretsmanager::config::Builder::from(config)
        .interceptor(EndpointRecorder)
        .interceptor(UserAgentSuffix)
        .interceptor(CallCounter(aws.counters.clone()))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

/// A Parameter Store client with credfile's User-Agent and retries.
pub fn ssm_client(config: &SdkConfig, aws: &Context) -> aws_sdk_ssm::Client {
    let conf = aws_sdk_ssm::config::Builder::from(config)
        .interceptor(EndpointRecorder)
        .interceptor(UserAgentSuffix)
        .interceptor(CallCounter(aws.counters.clone()))
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
}

/// An STS client with credfile's User-Agent. Its own retries are off: identity calls retry in
/// `identity::retry`, which also knows STS's `IDPCommunicationError`.
pub fn sts_client(config: &SdkConfig, aws: &Context) -> aws_sdk_sts::Client {
    let conf = aws_sdk_sts::config::Builder::from(config)
        .retry_config(RetryConfig::disabled())
        .interceptor(EndpointRecorder)
        .interceptor(UserAgentSuffix)
        .interceptor(CallCounter(aws.counters.clone()))
        .build();
    aws_sdk_sts::Client::from_conf(conf)
}

/// Appends [`USER_AGENT`] to the SDK's User-Agent header, after the SDK has set it.
#[derive(Debug)]
struct UserAgentSuffix;

impl Intercept for UserAgentSuffix {
    fn name(&self) -> &'static str {
        "CredfileUserAgent"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = context.request_mut().headers_mut();
        let ua = match headers.get("user-agent") {
            Some(existing) => format!("{existing} {USER_AGENT}"),
            None => USER_AGENT.to_string(),
        };
        headers.insert("user-agent", ua);
        Ok(())
    }
}

/// What went wrong with one AWS call, without the SDK's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The AWS error code (`AccessDeniedException`, `ResourceNotFoundException`, ...), when the
    /// service answered with one.
    pub code: Option<String>,
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
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
    pub fn from_sdk<E>(err: &SdkError<E, HttpResponse>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let kind = match err {
            SdkError::ServiceError(_) => FailureKind::Service,
            SdkError::TimeoutError(_) => FailureKind::Timeout,
            SdkError::DispatchFailure(d) if d.is_timeout() => FailureKind::Timeout,
            SdkError::DispatchFailure(_) => FailureKind::Network,
            SdkError::ResponseError(_) => FailureKind::Response,
            _ => FailureKind::Request,
        };
        let (code, message, kind) = match err.as_service_error() {
            Some(service) if service.code().is_some() => (
                service.code().map(str::to_string),
                service.message().unwrap_or("no message").to_string(),
                kind,
            ),
            // An answer the SDK could not parse as a result or as an AWS error.
            Some(_) => (
                None,
                format!("unreadable response: {}", error_chain(err)),
                FailureKind::Response,
            ),
            // No answer: say where the request went (the SDK's error does not).
            None => match endpoint_tried::<E>() {
                Some(url) if matches!(kind, FailureKind::Network | FailureKind::Timeout) => {
                    (None, format!("{url}: {}", error_chain(err)), kind)
                }
                _ => (None, error_chain(err), kind),
            },
        };
        let status = err.raw_response().map(|r| r.status().as_u16());
        Failure {
            code,
            status,
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
        // The code and message are the service's (or a proxy's) text: escaped, on one line.
        let message = crate::terminal::Escaped(&self.message);
        match (&self.code, self.kind) {
            (Some(code), _) => write!(f, "{}: {message}", crate::terminal::Escaped(code)),
            (None, FailureKind::Timeout) => write!(f, "timed out: {message}"),
            (None, FailureKind::Network) => write!(f, "cannot reach AWS: {message}"),
            (None, _) => write!(f, "{message}"),
        }
    }
}

/// An error and its sources joined with ": ", each said once. The SDK's own display helper also
/// appends a Debug dump, which is noise in a deploy log.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_waits_spread_within_a_window_that_doubles_to_five_seconds() {
        for (n, window) in [
            (0, 250),
            (1, 500),
            (2, 1000),
            (4, 4000),
            (5, 5000),
            (30, 5000),
        ] {
            let waits: Vec<Duration> = (0..200).map(|_| throttle_wait(n)).collect();
            let window = Duration::from_millis(window);
            assert!(waits.iter().all(|w| *w <= window), "{n}: {waits:?}");
            assert!(
                waits.iter().any(|w| *w < window / 2) && waits.iter().any(|w| *w > window / 2),
                "{n}: spread over the window"
            );
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[tokio::test]
    async fn clients_share_the_config_http_client() {
        let aws = Context::default();
        let config = load_config(Some("us-east-1"), false, aws.tuning).await;
        assert!(
            config.http_client().is_some(),
            "without a client in the shared config, each service client builds its own"
        );
        assert!(
            secrets_client(&config, &aws)
                .config()
                .http_client()
                .is_some()
        );
        assert!(sts_client(&config, &aws).config().http_client().is_some());
    }

    #[test]
    fn adaptive_retry_mode_is_kept() {
        use aws_smithy_types::retry::RetryMode;
        let adaptive =
            retry_config_from(4, &|k| (k == "AWS_RETRY_MODE").then(|| "adaptive".into()));
        assert_eq!(adaptive.mode(), RetryMode::Adaptive);
        assert_eq!(adaptive.max_attempts(), 4);
        let standard = retry_config_from(2, &|_| None);
        assert_eq!(standard.mode(), RetryMode::Standard);
        assert_eq!(standard.max_attempts(), 2);
    }

    #[test]
    fn endpoints_are_named_by_service_without_path_or_query() {
        assert_eq!(
            endpoint_of("http://127.0.0.1:4566/?Action=AssumeRole"),
            "http://127.0.0.1:4566"
        );
        assert_eq!(
            endpoint_of("https://secretsmanager.us-east-1.amazonaws.com/"),
            "https://secretsmanager.us-east-1.amazonaws.com"
        );
        assert_eq!(endpoint_of("http://u:p@mirror:80/x"), "http://mirror:80");
        assert_eq!(
            service_key("Secrets Manager"),
            service_key("secretsmanager")
        );
        assert_eq!(service_key("STS"), "sts");
    }

    #[test]
    fn error_chain_joins_sources_once() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&e), "outer: inner");
    }
}
