//! Fleets (issue 12): quota-aware fetching (`--fetch`), `apply --every` (rotation, SIGTERM, a
//! failed round), self-healing of every drift kind, and the identities a fleet node has (IRSA's
//! web identity, EKS Pod Identity's container credentials endpoint). Real binary, real SDK,
//! moto behind the project's fault-injecting proxy; the Pod Identity endpoint is a real HTTP
//! stand-in on 127.0.0.1.

use crate::support;
use crate::support::is_root;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Credfile, Output, Proxy, Seeder, canary_value, moto_endpoint, unique_prefix};

const WRITE: i32 = 6;
const DRIFT: i32 = 7;

/// A root, a manifest of `n` secrets (one file each, `f00`..), seeded through the real SDK.
struct Case {
    dir: tempfile::TempDir,
    proxy: Arc<Proxy>,
    prefix: String,
    seeder: Seeder,
    n: usize,
}

impl Case {
    fn new(name: &str, n: usize, layout: &str) -> Case {
        let c = Case {
            dir: tempfile::Builder::new()
                .prefix("credfile-fleet-")
                .tempdir()
                .unwrap(),
            proxy: Arc::new(Proxy::start(&moto_endpoint())),
            prefix: unique_prefix(name),
            seeder: Seeder::new(&moto_endpoint()),
            n,
        };
        let mut files = String::new();
        for i in 0..n {
            c.seeder.create_string(&c.name(i), &canary_value());
            files.push_str(&format!(
                "  - path: {}\n    secret: {}\n",
                file_name(i),
                c.name(i)
            ));
        }
        let text = format!(
            "version: 1\napp: fleet\ndefaults:\n  layout: {layout}\nenvironments:\n  test:\n    region: us-east-1\n    account: \"123456789012\"\n    root: {}\nfiles:\n{files}",
            c.root().display()
        );
        fs::write(c.dir.path().join("credfile.yaml"), text).unwrap();
        c
    }

    fn name(&self, i: usize) -> String {
        format!("{}/s{i:02}", self.prefix)
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn credfile(&self) -> Credfile {
        Credfile::new(&self.proxy.endpoint())
            .cwd(self.dir.path())
            .canaries(self.seeder.canaries().clone())
    }

    fn run(&self, args: &[&str]) -> Output {
        self.credfile().run(args)
    }

    fn apply(&self) -> Output {
        self.run(&["apply", "--env", "test", "--output", "json"])
    }

    fn verify(&self) -> Output {
        self.run(&["verify", "--env", "test", "--output", "json"])
    }

    /// Every file holds its secret's current value.
    fn assert_complete(&self) {
        for i in 0..self.n {
            let want = self.seeder.get_string(&self.name(i));
            let got = fs::read(self.root().join(file_name(i))).unwrap_or_default();
            assert!(
                got == want.as_bytes(),
                "{} is not the current value",
                file_name(i)
            );
        }
    }
}

fn file_name(i: usize) -> String {
    format!("f{i:02}")
}

fn calls(report: &Value, kind: &str) -> (u64, u64) {
    let k = &report["fetch"]["calls"][kind];
    (
        k["calls"].as_u64().unwrap(),
        k["throttled"].as_u64().unwrap(),
    )
}

#[test]
fn throttled_batch_falls_back_to_get_secret_value() {
    let c = Case::new("throttled-batch", 25, "generation");
    c.proxy.fail_next(
        "BatchGetSecretValue",
        usize::MAX,
        400,
        "ThrottlingException",
    );
    let out = c.apply();
    out.assert_code(0);
    c.assert_complete();
    let report = out.json();
    assert_eq!(report["fetch"]["mode"], "auto");
    // 25 references: two chunks; the first throttled call moves everything to single gets.
    let (batch, batch_throttled) = calls(&report, "batch_get_secret_value");
    assert!(
        (1..=2).contains(&batch),
        "each chunk is tried at most once as a batch: {batch}"
    );
    assert_eq!(batch_throttled, batch, "every batch call was throttled");
    assert_eq!(calls(&report, "get_secret_value"), (25, 0));
    assert_eq!(c.proxy.count("BatchGetSecretValue") as u64, batch);
    assert_eq!(c.proxy.count("GetSecretValue"), 25);

    // The same quota in batch mode: the batch is retried as a batch and the host fails.
    let out = c.run(&[
        "apply",
        "--env",
        "test",
        "--fetch",
        "batch",
        "--max-attempts",
        "2",
    ]);
    out.assert_code(4);
    assert!(out.stderr.contains("ThrottlingException"), "{}", out.stderr);
    assert!(out.stderr.contains("--fetch auto"), "{}", out.stderr);

    // Single mode never batches.
    c.proxy.clear_rules();
    c.proxy.reset_counts();
    let out = c.run(&[
        "apply", "--env", "test", "--output", "json", "--fetch", "single",
    ]);
    out.assert_code(0);
    assert_eq!(c.proxy.count("BatchGetSecretValue"), 0);
    assert_eq!(calls(&out.json(), "get_secret_value"), (25, 0));
    assert_eq!(out.json()["fetch"]["mode"], "single");
}

#[test]
fn unthrottled_auto_batches_and_the_audit_line_counts_calls() {
    let c = Case::new("auto-batches", 25, "generation");
    let audit = c.dir.path().join("audit.jsonl");
    let out = c.run(&[
        "apply",
        "--env",
        "test",
        "--output",
        "json",
        "--audit-log",
        audit.to_str().unwrap(),
    ]);
    out.assert_code(0);
    let report = out.json();
    assert_eq!(calls(&report, "batch_get_secret_value"), (2, 0));
    assert_eq!(calls(&report, "get_secret_value"), (0, 0));
    let line: Value = serde_json::from_str(fs::read_to_string(&audit).unwrap().trim()).unwrap();
    assert_eq!(line["fetch"], report["fetch"]);
    support::validate_schema(&report);
    support::validate_audit_line(&line);
}

#[test]
fn adaptive_retry_mode_still_fetches_through_throttles() {
    let c = Case::new("adaptive", 3, "generation");
    c.proxy
        .fail_next("GetSecretValue", 2, 400, "ThrottlingException");
    let out = c.credfile().env("AWS_RETRY_MODE", "adaptive").run([
        "apply", "--env", "test", "--output", "json", "--fetch", "single",
    ]);
    out.assert_code(0);
    c.assert_complete();
    let (calls, throttled) = calls(&out.json(), "get_secret_value");
    assert_eq!((calls, throttled), (5, 2), "two throttled attempts retried");
}

#[test]
fn throttled_get_secret_value_waits_its_turn_beyond_max_attempts_until_the_call_timeout() {
    let c = Case::new("quota-wait", 2, "generation");
    // Six throttles on one host with --max-attempts 2: the quota is shared, the host's turn
    // comes, and throttles do not spend the attempt budget.
    c.proxy
        .fail_next("GetSecretValue", 6, 400, "ThrottlingException");
    let out = c.run(&[
        "apply",
        "--env",
        "test",
        "--output",
        "json",
        "--fetch",
        "single",
        "--max-attempts",
        "2",
    ]);
    out.assert_code(0);
    c.assert_complete();
    assert_eq!(calls(&out.json(), "get_secret_value"), (8, 6));

    // A quota that never frees up: the call gives up at --call-timeout, naming the secret and
    // leaving the set as it was.
    let before = fs::read(c.root().join(file_name(0))).unwrap();
    c.seeder.put_string(&c.name(0), &canary_value());
    c.proxy.clear_rules();
    c.proxy.reset_counts();
    c.proxy
        .fail_next("GetSecretValue", usize::MAX, 400, "ThrottlingException");
    let out = c.run(&[
        "apply",
        "--env",
        "test",
        "--fetch",
        "single",
        "--max-attempts",
        "1",
        "--call-timeout",
        "3",
    ]);
    out.assert_code(4);
    assert!(out.stderr.contains("ThrottlingException"), "{}", out.stderr);
    assert!(out.stderr.contains(&c.name(0)), "{}", out.stderr);
    // It waited for a turn and tried again beyond --max-attempts 1, and then stopped by itself
    // (the runner's timeout only catches a hang): counts, not times.
    assert!(
        c.proxy.count("GetSecretValue") >= 2,
        "{} calls",
        c.proxy.count("GetSecretValue")
    );
    assert_eq!(fs::read(c.root().join(file_name(0))).unwrap(), before);

    // Only throttles wait and only faults are sent again: a 5xx gets one more call, a refusal
    // none (two secrets: one call each, plus the one repeat).
    for (status, code, exit, calls) in [
        (503, "ServiceUnavailable", 0, 3),
        (400, "AccessDeniedException", 4, 2),
    ] {
        c.proxy.clear_rules();
        c.proxy.reset_counts();
        c.proxy.fail_next("GetSecretValue", 1, status, code);
        let out = c.run(&["apply", "--env", "test", "--fetch", "single"]);
        out.assert_code(exit);
        assert_eq!(c.proxy.count("GetSecretValue"), calls, "{code}");
    }
}

/// Polls `cond` every 50 ms for up to `limit`.
fn wait_for(limit: Duration, what: &str, cond: impl Fn() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_picks_up_rotation_survives_a_failed_round_and_stops_on_sigterm() {
    let c = Case::new("every", 3, "generation");
    let root = c.root();
    let proxy = c.proxy.clone();
    let endpoint = moto_endpoint();
    let secret0 = c.name(0);
    let file0 = root.join(file_name(0));
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let stopped: Arc<Mutex<Option<usize>>> = Arc::default();
    let canaries = c.seeder.canaries().clone();
    let (log2, stopped2) = (log.clone(), stopped.clone());
    let driver = Arc::new(Mutex::new(None));
    let driver2 = driver.clone();
    let out = c
        .credfile()
        .timeout(Duration::from_secs(90))
        .on_spawn(move |pid| {
            let (proxy, endpoint, secret0, file0) = (
                proxy.clone(),
                endpoint.clone(),
                secret0.clone(),
                file0.clone(),
            );
            let (log, stopped, canaries) = (log2.clone(), stopped2.clone(), canaries.clone());
            let handle = std::thread::spawn(move || {
                let seeder = Seeder::new(&endpoint).with_canaries(canaries);
                let read = || fs::read(&file0).unwrap_or_default();
                wait_for(Duration::from_secs(20), "the first round", || {
                    !read().is_empty()
                });
                // A rotation is picked up by a later round.
                let v2 = canary_value();
                seeder.put_string(&secret0, &v2);
                wait_for(Duration::from_secs(10), "the rotation", || {
                    read() == v2.as_bytes()
                });
                log.lock().unwrap().push("rotated".into());
                // Rounds fail while the secret is denied: the last good set stays.
                proxy.deny_secret(&secret0);
                let v3 = canary_value();
                seeder.put_string(&secret0, &v3);
                // Two rounds fetch while the secret is denied (counted at the proxy).
                let denied_from = proxy.count("BatchGetSecretValue");
                wait_for(Duration::from_secs(30), "two denied rounds", || {
                    proxy.count("BatchGetSecretValue") >= denied_from + 2
                });
                assert!(read() == v2.as_bytes(), "a failed round changed the set");
                proxy.clear_rules();
                wait_for(Duration::from_secs(10), "recovery", || {
                    read() == v3.as_bytes()
                });
                log.lock().unwrap().push("recovered".into());
                *stopped.lock().unwrap() = Some(proxy.count("BatchGetSecretValue"));
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            });
            *driver2.lock().unwrap() = Some(handle);
        })
        .run([
            "apply", "--env", "test", "--output", "json", "--every", "1s",
        ]);
    if let Some(h) = driver.lock().unwrap().take() {
        h.join().expect("the driver's assertions");
    }
    assert_eq!(*log.lock().unwrap(), ["rotated", "recovered"]);
    out.assert_code(0);
    // SIGTERM ends the loop: no round fetched after it (a count, not a time).
    assert_eq!(
        c.proxy.count("BatchGetSecretValue"),
        stopped.lock().unwrap().expect("SIGTERM sent"),
        "a round started after SIGTERM"
    );
    // One JSON report per round, each a complete object on its line, rounds numbered.
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert!(lines.len() >= 4, "{} rounds", lines.len());
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["round"], i as u64 + 1);
    }
    let failed: Vec<&Value> = lines.iter().filter(|l| l.get("error").is_some()).collect();
    assert!(!failed.is_empty(), "no failed round reported");
    assert!(failed.iter().all(|l| l["error"]["exit_code"] == 4));
    assert!(
        lines
            .iter()
            .any(|l| l["summary"]["updated"].as_u64() > Some(0)),
        "no round updated a file"
    );
    assert!(out.stderr.contains("round failed"), "{}", out.stderr);
    // The session is kept across rounds: the account guard's GetCallerIdentity runs when a
    // session is established, once at the start and once after each failed round (which drops
    // it), not once per round.
    assert_eq!(
        c.proxy.count("GetCallerIdentity"),
        1 + failed.len(),
        "{} rounds",
        lines.len()
    );
    c.assert_complete();
    c.verify().assert_code(0);
}

#[test]
fn sigterm_during_a_slow_fetch_exits_at_once_and_leaves_the_set() {
    let c = Case::new("every-slow", 2, "generation");
    c.apply().assert_code(0);
    let before = support::snapshot(c.root());
    // Held far beyond the runner's timeout: a run that waited for the answer would be killed
    // there and fail; one that exits on SIGINT mid-fetch passes. Order, not time.
    c.proxy
        .delay("BatchGetSecretValue", Duration::from_secs(600));
    c.proxy.reset_counts();
    let proxy = c.proxy.clone();
    let out = c
        .credfile()
        .timeout(Duration::from_secs(60))
        .on_spawn(move |pid| {
            let proxy = proxy.clone();
            std::thread::spawn(move || {
                // The fetch is in flight (held at the proxy) when the signal comes.
                wait_for(Duration::from_secs(30), "the held fetch", || {
                    proxy.count("BatchGetSecretValue") >= 1
                });
                let _ = std::process::Command::new("kill")
                    .args(["-INT", &pid.to_string()])
                    .status();
            });
        })
        .run(["apply", "--env", "test", "--every", "5m"]);
    out.assert_code(0);
    c.proxy.clear_rules();
    assert_eq!(support::snapshot(c.root()), before, "the set changed");
}

#[test]
fn plan_refuses_every() {
    let c = Case::new("plan-every", 1, "generation");
    let out = c.run(&["plan", "--env", "test", "--every", "1m"]);
    out.assert_code(2);
    assert!(out.stderr.contains("--every"), "{}", out.stderr);
}

/// Applies, damages the set with `damage`, checks verify reports `kind`, applies again and
/// checks everything is back.
fn heal(c: &Case, kind: &str, damage: impl FnOnce(&Path)) {
    c.apply().assert_code(0);
    damage(&c.root());
    let out = c.verify();
    out.assert_code(DRIFT);
    let kinds: Vec<String> = out.json()["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.iter().any(|k| k == kind), "{kind} not in {kinds:?}");
    let out = c.apply();
    out.assert_code(0);
    c.assert_complete();
    let out = c.verify();
    assert_eq!(out.status_code, 0, "not healed ({kind}): {}", out.stdout);
}

fn live(root: &Path, name: &str) -> PathBuf {
    // The real file behind the stable link (generation layout), or the file itself.
    fs::canonicalize(root.join(name)).unwrap()
}

#[test]
fn apply_repairs_every_drift_kind_in_the_generation_layout() {
    let c = Case::new("heal-generation", 3, "generation");
    heal(&c, "content", |r| {
        fs::write(live(r, "f00"), b"tampered").unwrap()
    });
    heal(&c, "mode", |r| {
        fs::set_permissions(live(r, "f00"), fs::Permissions::from_mode(0o644)).unwrap()
    });
    heal(&c, "missing", |r| fs::remove_file(r.join("f01")).unwrap());
    heal(&c, "missing", |r| fs::remove_file(live(r, "f02")).unwrap());
    heal(&c, "type", |r| {
        let f = live(r, "f00");
        fs::remove_file(&f).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &f).unwrap();
    });
    heal(&c, "type", |r| {
        fs::remove_file(r.join("f01")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", r.join("f01")).unwrap();
    });
    if is_root() {
        heal(&c, "owner", |r| {
            nix::unistd::chown(&live(r, "f00"), Some(65534.into()), None).unwrap()
        });
        heal(&c, "group", |r| {
            nix::unistd::chown(&live(r, "f01"), None, Some(65534.into())).unwrap()
        });
    }
    // A file credfile did not create, at a stable name: still refused, and left alone.
    fs::remove_file(c.root().join("f02")).unwrap();
    fs::write(c.root().join("f02"), b"someone else's").unwrap();
    let out = c.apply();
    out.assert_code(WRITE);
    assert!(out.stderr.contains("did not create"), "{}", out.stderr);
    assert_eq!(fs::read(c.root().join("f02")).unwrap(), b"someone else's");
}

#[test]
fn apply_repairs_every_drift_kind_in_the_files_layout() {
    let c = Case::new("heal-files", 3, "files");
    heal(&c, "content", |r| {
        fs::write(r.join("f00"), b"tampered").unwrap()
    });
    heal(&c, "mode", |r| {
        fs::set_permissions(r.join("f00"), fs::Permissions::from_mode(0o644)).unwrap()
    });
    heal(&c, "missing", |r| fs::remove_file(r.join("f01")).unwrap());
    heal(&c, "type", |r| {
        fs::remove_file(r.join("f02")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", r.join("f02")).unwrap();
    });
    if is_root() {
        heal(&c, "owner", |r| {
            nix::unistd::chown(&r.join("f00"), Some(65534.into()), None).unwrap()
        });
        heal(&c, "group", |r| {
            nix::unistd::chown(&r.join("f01"), None, Some(65534.into())).unwrap()
        });
        // A foreign file where credfile's was (not the inode it published): refused.
        fs::remove_file(c.root().join("f02")).unwrap();
        fs::write(c.root().join("f02"), b"someone else's").unwrap();
        nix::unistd::chown(&c.root().join("f02"), Some(65534.into()), None).unwrap();
        let out = c.apply();
        out.assert_code(WRITE);
        assert!(out.stderr.contains("uid 65534"), "{}", out.stderr);
        assert_eq!(fs::read(c.root().join("f02")).unwrap(), b"someone else's");
    }
}

/// Files layout, a path never written by credfile, owned by someone else: refused from the start.
#[test]
fn a_foreign_file_is_still_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let c = Case::new("foreign", 1, "files");
    fs::create_dir_all(c.root()).unwrap();
    fs::write(c.root().join("f00"), b"theirs").unwrap();
    nix::unistd::chown(&c.root().join("f00"), Some(65534.into()), None).unwrap();
    let out = c.apply();
    out.assert_code(WRITE);
    assert!(out.stderr.contains("uid 65534"), "{}", out.stderr);
    assert_eq!(fs::read(c.root().join("f00")).unwrap(), b"theirs");
}

#[test]
fn irsa_web_identity_writes_the_files() {
    let c = Case::new("irsa", 2, "generation");
    let token = c.dir.path().join("token");
    fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln").unwrap();
    // The pod's environment as EKS sets it for IRSA: no keys, a role and a token file.
    let pod = || {
        c.credfile()
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/fleet-irsa")
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().unwrap())
            .env("AWS_ROLE_SESSION_NAME", "pod-a")
    };
    let out = pod().run(["apply", "--env", "test"]);
    out.assert_code(0);
    c.assert_complete();
    assert_eq!(c.proxy.count("AssumeRoleWithWebIdentity"), 1);

    // A fleet starting at once meets STS's account quota: a throttled exchange waits its turn
    // beyond --max-attempts (the SDK's provider gives up after one attempt each time).
    fs::remove_dir_all(c.root()).unwrap();
    c.proxy.reset_counts();
    c.proxy
        .sts_error("AssumeRoleWithWebIdentity", "Throttling", 400, 3);
    let out = pod().run(["apply", "--env", "test", "--max-attempts", "1"]);
    out.assert_code(0);
    c.assert_complete();
    assert_eq!(c.proxy.count("AssumeRoleWithWebIdentity"), 4);
}

/// EKS Pod Identity's agent, as the SDK sees it: `GET AWS_CONTAINER_CREDENTIALS_FULL_URI` with
/// `Authorization: <the token file's content>`, answered with the credentials JSON.
struct ContainerCredentials {
    port: u16,
    good: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

impl ContainerCredentials {
    fn start(token: &str) -> ContainerCredentials {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (good, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (g, r, token) = (good.clone(), refused.clone(), token.to_string());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut auth = None;
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("authorization")
                    {
                        auth = Some(v.trim().to_string());
                    }
                }
                let ok =
                    first.starts_with("GET /v1/credentials ") && auth.as_deref() == Some(&token);
                let (status, body) = if ok {
                    g.fetch_add(1, Ordering::SeqCst);
                    let expires =
                        support_rfc3339(std::time::SystemTime::now() + Duration::from_secs(3600));
                    (
                        "200 OK",
                        format!(
                            "{{\"AccessKeyId\":\"ASIAPODIDENTITY0001\",\"SecretAccessKey\":\"pod-secret\",\"Token\":\"pod-session\",\"AccountId\":\"123456789012\",\"Expiration\":\"{expires}\"}}"
                        ),
                    )
                } else {
                    r.fetch_add(1, Ordering::SeqCst);
                    (
                        "401 Unauthorized",
                        "{\"Code\":\"AccessDeniedException\",\"Message\":\"bad token\"}".into(),
                    )
                };
                let mut s = stream;
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.flush();
                let mut rest = Vec::new();
                let _ = s.set_read_timeout(Some(Duration::from_millis(10)));
                let _ = s.read_to_end(&mut rest);
            }
        });
        ContainerCredentials {
            port,
            good,
            refused,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1/credentials", self.port)
    }
}

/// RFC 3339 UTC, as the credentials endpoint writes `Expiration`.
fn support_rfc3339(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn pod_identity_container_credentials_write_the_files() {
    let c = Case::new("pod-identity", 2, "generation");
    let token = "pod-identity-token-0123456789";
    let endpoint = ContainerCredentials::start(token);
    let token_file = c.dir.path().join("eks-pod-identity-token");
    let run = |content: &str| {
        fs::write(&token_file, content).unwrap();
        c.credfile()
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url())
            .env(
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                token_file.to_str().unwrap(),
            )
            .env("AWS_MAX_ATTEMPTS", "1")
            .run(["apply", "--env", "test"])
    };
    // The stand-in checks the token: a wrong one gets no credentials and nothing is written.
    let out = run("not-the-token");
    out.assert_code(3);
    assert!(endpoint.refused.load(Ordering::SeqCst) > 0);
    assert!(!c.root().join("f00").exists());
    let out = run(token);
    out.assert_code(0);
    c.assert_complete();
    assert!(endpoint.good.load(Ordering::SeqCst) >= 1);
    assert_eq!(c.proxy.count("AssumeRoleWithWebIdentity"), 0);
}

#[test]
fn auto_keeps_the_attempt_budget_for_batch_faults_that_are_not_throttling() {
    let c = Case::new("auto-5xx", 3, "generation");
    c.proxy
        .fail_next("BatchGetSecretValue", usize::MAX, 503, "ServiceUnavailable");
    let out = c.run(&["apply", "--env", "test", "--max-attempts", "2"]);
    out.assert_code(4);
    assert_eq!(
        c.proxy.count("BatchGetSecretValue"),
        2,
        "exactly --max-attempts"
    );
    assert_eq!(c.proxy.count("GetSecretValue"), 0, "a 5xx is not the quota");
}
