//! Vault's AWS IAM sign-in, client side (docs/src/vault.md, "aws"): an STS
//! `GetCallerIdentity` request signed with the host's or job's AWS credentials (SigV4, the
//! SDK's own signer), never sent to STS by credfile: Vault sends it and learns from STS's
//! answer who signed it. With `server_id`, the signed headers include
//! `X-Vault-AWS-IAM-Server-ID`, so the request cannot be replayed against another Vault.

use std::time::SystemTime;

use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

use super::Session;
use super::vault::{VaultAuthError, b64};

/// The request Vault forwards to STS.
const BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
/// Vault's default STS endpoint and the region it is signed for.
const GLOBAL_STS: &str = "https://sts.amazonaws.com/";
const GLOBAL_REGION: &str = "us-east-1";

/// The `auth/aws/login` body: the signed request's method, URL, body and headers (base64);
/// and the URL it is signed for (for messages).
pub async fn login_body(
    session: &Session,
    role: &str,
    server_id: Option<&str>,
) -> Result<(serde_json::Value, String), VaultAuthError> {
    let fail = |reason: String| VaultAuthError::AwsRequest { reason };
    let provider = session
        .config
        .credentials_provider()
        .ok_or_else(|| fail("no AWS credentials".into()))?;
    let creds = provider.provide_credentials().await.map_err(|e| {
        fail(format!(
            "no AWS credentials: {}",
            crate::aws::error_chain(&e)
        ))
    })?;
    // An endpoint override (a private STS endpoint, or a local emulator) is signed for the
    // session's region; otherwise Vault's default, the global endpoint in us-east-1.
    let (url, region) = match session.config.endpoint_url() {
        Some(endpoint) => (
            format!("{}/", endpoint.trim_end_matches('/')),
            session
                .config
                .region()
                .map_or(GLOBAL_REGION.to_string(), ToString::to_string),
        ),
        None => (GLOBAL_STS.to_string(), GLOBAL_REGION.to_string()),
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|_| fail(format!("`{url}` is not a URL")))?;
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .ok_or_else(|| fail(format!("`{url}` has no host")))?;
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), host),
        (
            "content-type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        ),
    ];
    if let Some(id) = server_id {
        headers.push(("x-vault-aws-iam-server-id".into(), id.to_string()));
    }
    let identity = creds.into();
    let params: aws_sigv4::http_request::SigningParams = v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name("sts")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| fail(format!("cannot sign: {e}")))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(BODY.as_bytes()),
    )
    .map_err(|e| fail(format!("cannot sign: {e}")))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| fail(format!("cannot sign: {e}")))?
        .into_parts();
    let mut request = http::Request::builder().method("POST").uri(&url);
    for (k, v) in &headers {
        request = request.header(k, v);
    }
    let mut request = request
        .body(())
        .map_err(|e| fail(format!("cannot build the request: {e}")))?;
    instructions.apply_to_request_http1x(&mut request);
    let mut map = serde_json::Map::new();
    for (name, value) in request.headers() {
        let value = value.to_str().unwrap_or_default().to_string();
        map.entry(name.as_str().to_string())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()))
            .as_array_mut()
            .expect("an array")
            .push(serde_json::Value::String(value));
    }
    let headers_json = serde_json::Value::Object(map).to_string();
    let body = serde_json::json!({
        "role": role,
        "iam_http_request_method": "POST",
        "iam_request_url": b64(url.as_bytes()),
        "iam_request_body": b64(BODY.as_bytes()),
        "iam_request_headers": b64(headers_json.as_bytes()),
    });
    Ok((body, url))
}
