//! AWS-shaped answers: the JSON (Secrets Manager) and XML (STS) error bodies the SDK parses,
//! and the secret ids, forms and batch bodies the rules match on.

use serde_json::{Value, json};

use super::Protocol;
use super::http::Response;

/// The principal named in injected AccessDenied messages.
pub(super) const DENY_PRINCIPAL: &str = "arn:aws:sts::123456789012:assumed-role/x";

pub(super) fn error_response(
    protocol: Protocol,
    status: u16,
    code: &str,
    message: &str,
    request_id: String,
) -> Response {
    match protocol {
        Protocol::Vault => Response::new(
            status,
            "application/json",
            json!({ "errors": [message] }).to_string().into_bytes(),
            Vec::new(),
            request_id,
        ),
        Protocol::Query => {
            let kind = if status >= 500 { "Receiver" } else { "Sender" };
            let body = format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
                xml_escape(code),
                xml_escape(message),
                xml_escape(&request_id)
            );
            Response::new(
                status,
                "text/xml",
                body.into_bytes(),
                Vec::new(),
                request_id,
            )
        }
        _ => {
            let body = json!({ "__type": code, "Message": message }).to_string();
            Response::new(
                status,
                "application/x-amz-json-1.1",
                body.into_bytes(),
                vec![("X-Amzn-ErrorType".to_string(), code.to_string())],
                request_id,
            )
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Secret name from a name or an ARN (`arn:...:secret:NAME-AbCdEf` -> `NAME`).
fn secret_name(id: &str) -> &str {
    if id.starts_with("arn:")
        && let Some((_, rest)) = id.split_once(":secret:")
    {
        if let Some((name, suffix)) = rest.rsplit_once('-')
            && suffix.len() == 6
            && suffix.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return name;
        }
        return rest;
    }
    id
}

pub(super) fn same_secret(a: &str, b: &str) -> bool {
    a == b || secret_name(a) == secret_name(b)
}

pub(super) fn secret_id_list(body: &Value) -> Vec<String> {
    body.get("SecretIdList")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Move denied entries from SecretValues to Errors. None if the body is not
/// the expected JSON object or nothing matched.
pub(super) fn rewrite_batch_response(
    body: &[u8],
    requested: &[String],
    denied: &[(String, String)],
) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object_mut()?;
    let values = obj.get_mut("SecretValues")?.as_array_mut()?;
    let mut new_errors = Vec::new();
    values.retain(|entry| {
        let name = entry.get("Name").and_then(Value::as_str).unwrap_or("");
        let arn = entry.get("ARN").and_then(Value::as_str).unwrap_or("");
        let hit = |id: &str| same_secret(id, name) || (!arn.is_empty() && same_secret(id, arn));
        let Some((deny, code)) = denied.iter().find(|(d, _)| hit(d)) else {
            return true;
        };
        let as_requested = requested.iter().find(|r| hit(r)).unwrap_or(deny).clone();
        let message = if code == "AccessDeniedException" {
            format!(
                "User: {DENY_PRINCIPAL} is not authorized to perform: secretsmanager:GetSecretValue on resource: {as_requested}"
            )
        } else {
            format!("{code} injected by the credfile test proxy for this secret")
        };
        new_errors.push(json!({
            "SecretId": as_requested,
            "ErrorCode": code,
            "Message": message,
        }));
        false
    });
    if new_errors.is_empty() {
        return None;
    }
    let errors = obj
        .entry("Errors")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !errors.is_array() {
        *errors = Value::Array(Vec::new());
    }
    errors.as_array_mut()?.extend(new_errors);
    serde_json::to_vec(&v).ok()
}

/// Value of `key` in an application/x-www-form-urlencoded string.
pub(super) fn form_value(form: &str, key: &str) -> Option<String> {
    form.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (url_decode(k) == key).then(|| url_decode(v))
    })
}

fn url_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
