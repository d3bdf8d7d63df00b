//! The Parameter Store seam: `parameter:` references and `parameters_path:` directories.
//!
//! Single parameters go through `GetParameters` in chunks of at most 10 (the API's limit) with
//! decryption, a selector (`name:3`, `name:label`) per name. `GetParameters` does not fail for a
//! missing name, version or label: it lists them in `InvalidParameters`, so every requested
//! reference must be matched in the answer, and the answer must carry the requested version
//! (never another one). Paths go through `GetParametersByPath`, recursive, every page (a page
//! may be empty and still have a next one).

use std::sync::Arc;

use aws_sdk_ssm::types::Parameter;
use secrecy::SecretString;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{Fetched, Outcome, SecretValue, Step, Tuned};
use crate::aws::{Failure, FailureKind};
use crate::manifest::{Pin, SecretRef, SourceKind};

type Client = Tuned<aws_sdk_ssm::Client>;

/// The API's maximum number of names per GetParameters call.
pub const BATCH_SIZE: usize = 10;
/// The API's maximum page size for GetParametersByPath.
const PAGE_SIZE: i32 = 10;
/// A path with more parameters than a set may hold is refused while it is listed.
pub const MAX_PATH_PARAMETERS: usize = crate::manifest::MAX_SET_FILES;

/// Starts the GetParameters calls for `refs` on `tasks`, each under `limit`.
pub fn spawn(
    tasks: &mut JoinSet<Step>,
    limit: &Arc<Semaphore>,
    client: &Client,
    refs: Vec<SecretRef>,
) {
    for chunk in chunks(refs) {
        let (client, limit) = (client.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_many_owned(super::AWS_CALL).await;
            (get_chunk(&client, chunk).await, Vec::new())
        });
    }
}

/// At most `attempts` attempts for one call (throttles aside: see
/// [`crate::aws::call_waiting_turn`]); Parameter Store's quota is the account's too.
fn retries(attempts: u32) -> aws_sdk_ssm::config::Builder {
    aws_sdk_ssm::config::Builder::default().retry_config(crate::aws::retry_config(attempts))
}

/// Chunks of at most [`BATCH_SIZE`], never two selectors of one name in a chunk: an answer
/// without `Selector` (some implementations omit it) could not tell them apart.
fn chunks(refs: Vec<SecretRef>) -> Vec<Vec<SecretRef>> {
    let mut out: Vec<Vec<SecretRef>> = Vec::new();
    for r in refs {
        match out
            .iter_mut()
            .find(|c| c.len() < BATCH_SIZE && !c.iter().any(|o| o.id == r.id))
        {
            Some(c) => c.push(r),
            None => out.push(vec![r]),
        }
    }
    out
}

/// The name as sent: `name`, `name:3` or `name:label`.
pub fn selector_name(r: &SecretRef) -> String {
    match &r.pin {
        Pin::ParamVersion(v) => format!("{}:{v}", r.id),
        Pin::ParamLabel(l) => format!("{}:{l}", r.id),
        _ => r.id.clone(),
    }
}

async fn get_chunk(client: &Client, chunk: Vec<SecretRef>) -> Outcome {
    let names: Vec<String> = chunk.iter().map(selector_name).collect();
    let sent = crate::aws::call_waiting_turn(client.tuning, |attempts| {
        client
            .get_parameters()
            .set_names(Some(names.clone()))
            .with_decryption(true)
            .customize()
            .config_override(retries(attempts))
            .send()
    })
    .await;
    let out = match sent {
        Ok(out) => out,
        Err(failure) => {
            return chunk
                .into_iter()
                .map(|r| (r, Err(failure.clone())))
                .collect();
        }
    };
    let mut found = out.parameters.unwrap_or_default();
    let invalid = out.invalid_parameters.unwrap_or_default();
    chunk
        .into_iter()
        .zip(names)
        .map(|(r, sent)| {
            if invalid.iter().any(|i| *i == sent || *i == r.id) {
                let what = match &r.pin {
                    Pin::ParamVersion(v) => format!("no version {v} of this parameter"),
                    Pin::ParamLabel(l) => format!("no version of this parameter has label `{l}`"),
                    _ => "no such parameter".to_string(),
                };
                let code = match &r.pin {
                    Pin::ParamVersion(_) | Pin::ParamLabel(_) => "ParameterVersionNotFound",
                    _ => "ParameterNotFound",
                };
                return (
                    r,
                    Err(Failure {
                        code: Some(code.into()),
                        status: None,
                        message: format!("{what} (listed in InvalidParameters)"),
                        kind: FailureKind::Service,
                    }),
                );
            }
            let Some(pos) = found.iter().position(|p| matches(&r, p)) else {
                return (
                    r,
                    Err(Failure {
                        code: None,
                        status: None,
                        message: "not returned by GetParameters with the requested version or label (no value and no error)".into(),
                        kind: FailureKind::Response,
                    }),
                );
            };
            let p = found.swap_remove(pos);
            let result = fetched(p);
            (r, result)
        })
        .collect()
}

/// Whether `p` answers `r`: the same name (or ARN), and the requested version or label.
fn matches(r: &SecretRef, p: &Parameter) -> bool {
    let same = p.name.as_deref() == Some(r.id.as_str()) || p.arn.as_deref() == Some(r.id.as_str());
    if !same {
        return false;
    }
    // AWS echoes the selector; where it does, it must be the one requested.
    let selector_ok = |want: &str| p.selector.as_deref().is_none_or(|s| s == want);
    match &r.pin {
        Pin::ParamVersion(v) => i64::try_from(*v).is_ok_and(|v| p.version == v),
        Pin::ParamLabel(l) => selector_ok(&format!(":{l}")),
        _ => p.selector.is_none(),
    }
}

fn fetched(p: Parameter) -> Result<Fetched, Failure> {
    let Some(value) = p.value else {
        return Err(Failure {
            code: None,
            status: None,
            message: "the parameter has no value in the answer".into(),
            kind: FailureKind::Response,
        });
    };
    Ok(Fetched {
        arn: p.arn.unwrap_or_default(),
        name: p.name.unwrap_or_default(),
        version_id: p.version.to_string(),
        value: SecretValue::Text(SecretString::from(value)),
    })
}

/// The children of one path, each under its own `parameter:` reference (latest version).
pub type PathOutcome = (SecretRef, Result<Vec<(SecretRef, Fetched)>, Failure>);

/// Starts one task per path; each pages through GetParametersByPath, one page under `limit`.
pub fn spawn_paths(
    limit: &Arc<Semaphore>,
    client: &Client,
    refs: Vec<SecretRef>,
) -> JoinSet<PathOutcome> {
    let mut tasks = JoinSet::new();
    for r in refs {
        let (client, limit) = (client.clone(), limit.clone());
        tasks.spawn(async move {
            let result = list_path(&client, &limit, &r.id).await;
            (r, result)
        });
    }
    tasks
}

async fn list_path(
    client: &Client,
    limit: &Semaphore,
    path: &str,
) -> Result<Vec<(SecretRef, Fetched)>, Failure> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = {
            let _permit = limit.acquire_many(super::AWS_CALL).await;
            let token = token.take();
            crate::aws::call_waiting_turn(client.tuning, |attempts| {
                client
                    .get_parameters_by_path()
                    .path(path)
                    .recursive(true)
                    .with_decryption(true)
                    .max_results(PAGE_SIZE)
                    .set_next_token(token.clone())
                    .customize()
                    .config_override(retries(attempts))
                    .send()
            })
            .await?
        };
        for p in page.parameters.unwrap_or_default() {
            let f = fetched(p)?;
            let r = SecretRef {
                kind: SourceKind::Parameter,
                id: f.name.clone(),
                pin: Pin::Current,
            };
            out.push((r, f));
        }
        if out.len() > MAX_PATH_PARAMETERS {
            return Err(Failure {
                code: None,
                status: None,
                message: format!("more than {MAX_PATH_PARAMETERS} parameters below the path"),
                kind: FailureKind::Response,
            });
        }
        match page.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, pin: Pin) -> SecretRef {
        SecretRef {
            kind: SourceKind::Parameter,
            id: id.into(),
            pin,
        }
    }

    #[test]
    fn chunks_hold_ten_and_one_selector_per_name() {
        let refs: Vec<SecretRef> = (0..25)
            .map(|i| p(&format!("/a/{i}"), Pin::Current))
            .collect();
        let sizes: Vec<usize> = chunks(refs).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 10, 5]);
        let same = vec![
            p("/a", Pin::Current),
            p("/a", Pin::ParamVersion(1)),
            p("/b", Pin::Current),
        ];
        let c = chunks(same);
        assert_eq!(c.len(), 2);
        assert!(
            c.iter()
                .all(|c| c.iter().filter(|r| r.id == "/a").count() == 1)
        );
    }

    #[test]
    fn selectors_as_sent() {
        assert_eq!(selector_name(&p("/a", Pin::ParamVersion(3))), "/a:3");
        assert_eq!(
            selector_name(&p("/a", Pin::ParamLabel("blue".into()))),
            "/a:blue"
        );
        assert_eq!(selector_name(&p("/a", Pin::Current)), "/a");
    }

    #[test]
    fn an_answer_for_another_version_does_not_match() {
        let param = |version, selector: Option<&str>| {
            Parameter::builder()
                .name("/a")
                .version(version)
                .set_selector(selector.map(str::to_string))
                .build()
        };
        assert!(matches(&p("/a", Pin::ParamVersion(2)), &param(2, None)));
        assert!(!matches(&p("/a", Pin::ParamVersion(2)), &param(3, None)));
        assert!(matches(
            &p("/a", Pin::ParamLabel("x".into())),
            &param(3, Some(":x"))
        ));
        assert!(!matches(
            &p("/a", Pin::ParamLabel("x".into())),
            &param(3, Some(":y"))
        ));
        assert!(!matches(&p("/b", Pin::Current), &param(1, None)));
    }
}
