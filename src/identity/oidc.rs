//! Pipeline OIDC tokens: GitHub Actions' token endpoint and GitLab's `id_tokens` variable.
//!
//! The token is a bearer credential for STS: it is held in a secret type, sent only to STS, and
//! never printed or written.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use secrecy::SecretString;

use super::IdentityError;

/// GitHub answers in well under a second; a hung endpoint must not hang the deploy.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);
/// A JWT is a few KiB; anything much larger is not a token response.
const MAX_BODY: usize = 64 * 1024;

/// Where a pipeline token comes from, for messages.
pub const GITHUB_VARS: [&str; 2] = [
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
];

/// Asks GitHub's token endpoint for a JWT with the given audience.
pub async fn github_token(
    url: &str,
    bearer: &str,
    audience: &str,
) -> Result<SecretString, IdentityError> {
    let full = format!(
        "{url}{}audience={}",
        if url.contains('?') { '&' } else { '?' },
        percent_encode(audience)
    );
    let uri: hyper::Uri = full.parse().map_err(|_| IdentityError::GithubToken {
        reason: "ACTIONS_ID_TOKEN_REQUEST_URL is not a valid URL".into(),
    })?;
    let loopback = matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if uri.scheme_str() != Some("https") && !loopback {
        return Err(IdentityError::GithubToken {
            reason: "ACTIONS_ID_TOKEN_REQUEST_URL is not https; refusing to send the request token in clear text".into(),
        });
    }
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| IdentityError::GithubToken {
            reason: format!("cannot load the system's CA certificates: {e}"),
        })?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let request = hyper::Request::get(uri)
        .header("authorization", format!("bearer {bearer}"))
        .header("accept", "application/json; api-version=2.0")
        .header(
            "user-agent",
            concat!("credfile/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::new())
        .map_err(|e| IdentityError::GithubToken {
            reason: format!("cannot build the request: {e}"),
        })?;
    let response = tokio::time::timeout(TOKEN_TIMEOUT, client.request(request))
        .await
        .map_err(|_| IdentityError::GithubToken {
            reason: format!("no answer within {}s", TOKEN_TIMEOUT.as_secs()),
        })?
        .map_err(|e| IdentityError::GithubToken {
            reason: format!("request failed: {e}"),
        })?;
    let status = response.status();
    let body = tokio::time::timeout(
        TOKEN_TIMEOUT,
        Limited::new(response.into_body(), MAX_BODY).collect(),
    )
    .await
    .map_err(|_| IdentityError::GithubToken {
        reason: "the response body did not arrive in time".into(),
    })?
    .map_err(|_| IdentityError::GithubToken {
        reason: "cannot read the response body (too large or cut off)".into(),
    })?
    .to_bytes();
    if !status.is_success() {
        // The body of an error is GitHub's message, never a token: show its start, sanitized.
        let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        let text = crate::terminal::sanitize(&text);
        return Err(IdentityError::GithubTokenStatus {
            status: status.as_u16(),
            body: text,
        });
    }
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        value: String,
    }
    let parsed: TokenResponse =
        serde_json::from_slice(&body).map_err(|_| IdentityError::GithubToken {
            reason: "the response is not JSON with a `value` field".into(),
        })?;
    if parsed.value.is_empty() {
        return Err(IdentityError::GithubToken {
            reason: "the response holds an empty token".into(),
        });
    }
    Ok(SecretString::from(parsed.value))
}

/// RFC 3986 unreserved characters pass; everything else is %-encoded.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The `id_tokens:` block a GitLab job needs, for the error message.
pub fn gitlab_snippet(var: &str, audience: &str) -> String {
    format!("id_tokens:\n      {var}:\n        aud: {audience}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_is_encoded() {
        assert_eq!(percent_encode("sts.amazonaws.com"), "sts.amazonaws.com");
        assert_eq!(percent_encode("https://x/y z"), "https%3A%2F%2Fx%2Fy%20z");
    }

    #[tokio::test]
    async fn plain_http_is_refused_off_loopback() {
        let err = github_token("http://token.example/x", "b", "a")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not https"), "{err}");
    }
}
