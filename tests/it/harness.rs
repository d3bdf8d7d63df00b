//! Self-tests of the test harness in tests/it/support (moto, seeding, proxy,
//! runner, canaries). They do not depend on what the credfile binary does.

use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use aws_sdk_secretsmanager as sm;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_sts as sts;
use support::*;

fn sm_client(endpoint: &str, max_attempts: u32) -> sm::Client {
    let conf = sm::Config::builder()
        .behavior_version(sm::config::BehaviorVersion::latest())
        .region(sm::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(sm::config::Credentials::new(
            "testing", "testing", None, None, "harness",
        ))
        .retry_config(
            sm::config::retry::RetryConfig::standard()
                .with_max_attempts(max_attempts)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .build();
    sm::Client::from_conf(conf)
}

fn sts_client(endpoint: &str) -> sts::Client {
    let conf = sts::Config::builder()
        .behavior_version(sts::config::BehaviorVersion::latest())
        .region(sts::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(sts::config::Credentials::new(
            "testing", "testing", None, None, "harness",
        ))
        .retry_config(sts::config::retry::RetryConfig::standard().with_max_attempts(1))
        .build();
    sts::Client::from_conf(conf)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn moto_answers_and_seeder_round_trips() {
    let ep = moto_endpoint();
    assert!(ep.starts_with("http://127.0.0.1:"), "{ep}");
    let p = unique_prefix("seed round_trip");
    assert!(p.starts_with("t-seed-round-trip-"), "{p}");
    let seeder = Seeder::new(&ep);
    let name = format!("{p}/db");
    let v1 = canary_value();
    let (arn, ver1) = seeder.create_string(&name, &v1);
    assert!(
        arn.starts_with("arn:aws:secretsmanager:us-east-1:123456789012:secret:"),
        "{arn}"
    );
    assert_eq!(seeder.get_string(&name), v1);
    let v2 = canary_value();
    let ver2 = seeder.put_string(&name, &v2);
    assert_ne!(ver1, ver2);
    assert_eq!(seeder.get_string(&name), v2);
    // The old version is AWSPREVIOUS.
    let prev = seeder
        .block_on(
            seeder
                .client()
                .get_secret_value()
                .secret_id(&name)
                .version_stage("AWSPREVIOUS")
                .send(),
        )
        .unwrap();
    assert_eq!(prev.version_id(), Some(ver1.as_str()));
    assert_eq!(prev.secret_string(), Some(v1.as_str()));

    let bin_name = format!("{p}/tls");
    let (_, _) = seeder.create_binary(&bin_name, b"\x00\x01binary-canary-bytes\xff");
    seeder.delete(&bin_name);
    let err = seeder
        .block_on(
            seeder
                .client()
                .get_secret_value()
                .secret_id(&bin_name)
                .send(),
        )
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    // Registered automatically, JSON leaves included.
    let g = Canaries::global();
    assert!(g.find(v1.as_bytes()).is_some());
    assert!(g.find(v2.as_bytes()).is_some());
    let leaf = canary_value();
    seeder.create_json(
        &format!("{p}/json"),
        &serde_json::json!({"user": "ab", "password": leaf}),
    );
    assert!(g.find(leaf.as_bytes()).is_some());
}

#[test]
fn seeder_other_account_is_isolated() {
    let ep = moto_endpoint();
    let p = unique_prefix("accounts");
    let other = Seeder::in_account(&ep, "222222222222");
    assert_eq!(other.account(), "222222222222");
    let (arn, _) = other.create_string(&format!("{p}/x"), &canary_value());
    assert!(arn.contains(":222222222222:secret:"), "{arn}");
    let default = Seeder::new(&ep);
    let err = default
        .block_on(
            default
                .client()
                .get_secret_value()
                .secret_id(format!("{p}/x"))
                .send(),
        )
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    let eu = Seeder::with_options(&ep, None, "eu-west-1");
    let (arn, _) = eu.create_string(&format!("{p}/eu"), &canary_value());
    assert!(
        arn.starts_with("arn:aws:secretsmanager:eu-west-1:123456789012:"),
        "{arn}"
    );
}

#[test]
fn proxy_relays_and_counts_per_action() {
    let moto = moto_endpoint();
    let proxy = Proxy::start(&moto);
    let p = unique_prefix("relay");
    let seeder = Seeder::new(&proxy.endpoint());
    let value = canary_value();
    let (arn, version) = seeder.create_string(&format!("{p}/a"), &value);
    assert_eq!(proxy.count("CreateSecret"), 1);

    // Several requests on one client (hyper keeps the connection alive).
    let client = sm_client(&proxy.endpoint(), 1);
    let rt = rt();
    for _ in 0..3 {
        let out = rt
            .block_on(client.get_secret_value().secret_id(format!("{p}/a")).send())
            .unwrap();
        assert_eq!(out.secret_string(), Some(value.as_str()));
        assert_eq!(out.arn(), Some(arn.as_str()));
        assert_eq!(out.version_id(), Some(version.as_str()));
    }
    assert_eq!(proxy.count("GetSecretValue"), 3);
    let reqs = proxy.requests();
    assert_eq!(reqs.len(), 4);
    assert_eq!(reqs[0].0, "CreateSecret");
    let body: serde_json::Value = serde_json::from_str(&reqs[1].1).unwrap();
    assert_eq!(body["SecretId"], format!("{p}/a"));
    assert_eq!(proxy.requested_secret_ids(), vec![format!("{p}/a"); 3]);

    // moto's 404 comes through unchanged.
    let err = rt
        .block_on(
            client
                .get_secret_value()
                .secret_id(format!("{p}/missing"))
                .send(),
        )
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    proxy.reset_counts();
    assert_eq!(proxy.count("GetSecretValue"), 0);
    assert_eq!(proxy.total(), 0);
}

#[test]
fn proxy_keep_alive_with_raw_socket() {
    // moto routes by the SigV4 credential scope; the signature is not checked.
    const AUTH: &str = "Authorization: AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=00\r\n";
    let proxy = Proxy::start(&moto_endpoint());
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    for i in 0..3 {
        let body = format!("{{\"SecretId\":\"t-raw-missing-{i}\"}}");
        // The second request sends its body chunked, the third expects 100-continue.
        let req = match i {
            1 => format!(
                "POST / HTTP/1.1\r\nHost: x\r\n{AUTH}X-Amz-Target: secretsmanager.GetSecretValue\r\nContent-Type: application/x-amz-json-1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                body.len()
            ),
            2 => format!(
                "POST / HTTP/1.1\r\nHost: x\r\n{AUTH}X-Amz-Target: secretsmanager.GetSecretValue\r\nContent-Type: application/x-amz-json-1.1\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
            _ => format!(
                "POST / HTTP/1.1\r\nHost: x\r\n{AUTH}X-Amz-Target: secretsmanager.GetSecretValue\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        };
        s.write_all(req.as_bytes()).unwrap();
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        if status.starts_with("HTTP/1.1 100") {
            let mut blank = String::new();
            reader.read_line(&mut blank).unwrap();
            status.clear();
            reader.read_line(&mut status).unwrap();
        }
        // moto answers ResourceNotFoundException with HTTP 404.
        assert!(status.starts_with("HTTP/1.1 404"), "{status:?}");
        let mut len = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        assert!(String::from_utf8_lossy(&body).contains("ResourceNotFoundException"));
    }
    assert_eq!(proxy.count("GetSecretValue"), 3);
}

#[test]
fn proxy_deny_secret_get_and_batch() {
    let proxy = Proxy::start(&moto_endpoint());
    let p = unique_prefix("deny");
    let seeder = Seeder::new(&moto_endpoint());
    let (arn_a, _) = seeder.create_string(&format!("{p}/a"), &canary_value());
    let (_arn_b, _) = seeder.create_string(&format!("{p}/b"), &canary_value());
    proxy.deny_secret(&format!("{p}/a"));

    let client = sm_client(&proxy.endpoint(), 1);
    let rt = rt();
    for id in [format!("{p}/a"), arn_a.clone()] {
        let err = rt
            .block_on(client.get_secret_value().secret_id(&id).send())
            .unwrap_err();
        assert_eq!(err.code(), Some("AccessDeniedException"), "{id}");
        assert!(
            err.message()
                .unwrap()
                .contains("is not authorized to perform: secretsmanager:GetSecretValue")
        );
    }
    assert!(
        rt.block_on(client.get_secret_value().secret_id(format!("{p}/b")).send())
            .is_ok()
    );

    let out = rt
        .block_on(
            client
                .batch_get_secret_value()
                .secret_id_list(format!("{p}/a"))
                .secret_id_list(format!("{p}/b"))
                .secret_id_list(format!("{p}/missing"))
                .send(),
        )
        .unwrap();
    let names: Vec<_> = out
        .secret_values()
        .iter()
        .filter_map(|v| v.name())
        .collect();
    assert_eq!(names, vec![format!("{p}/b")]);
    let errors: Vec<_> = out
        .errors()
        .iter()
        .map(|e| {
            (
                e.secret_id().unwrap_or_default().to_string(),
                e.error_code().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        errors.contains(&(format!("{p}/a"), "AccessDeniedException".to_string())),
        "{errors:?}"
    );
    assert!(
        errors.contains(&(
            format!("{p}/missing"),
            "ResourceNotFoundException".to_string()
        )),
        "{errors:?}"
    );
    assert_eq!(proxy.count("BatchGetSecretValue"), 1);
    assert_eq!(proxy.count("GetSecretValue"), 3);

    // Requested by ARN: the error names the ARN as requested.
    let out = rt
        .block_on(
            client
                .batch_get_secret_value()
                .secret_id_list(&arn_a)
                .send(),
        )
        .unwrap();
    assert!(out.secret_values().is_empty());
    assert_eq!(out.errors()[0].secret_id(), Some(arn_a.as_str()));
}

#[test]
fn proxy_deny_action_and_fail_next() {
    let proxy = Proxy::start(&moto_endpoint());
    let p = unique_prefix("faults");
    let seeder = Seeder::new(&moto_endpoint());
    seeder.create_string(&format!("{p}/a"), &canary_value());
    let rt = rt();

    // Throttling twice, then success: the SDK retries through it.
    proxy.fail_next("GetSecretValue", 2, 400, "ThrottlingException");
    let client = sm_client(&proxy.endpoint(), 3);
    assert!(
        rt.block_on(client.get_secret_value().secret_id(format!("{p}/a")).send())
            .is_ok()
    );
    assert_eq!(proxy.count("GetSecretValue"), 3);

    // A 503 with max attempts 1 surfaces.
    proxy.fail_next("GetSecretValue", 1, 503, "ServiceUnavailable");
    let once = sm_client(&proxy.endpoint(), 1);
    let err = rt
        .block_on(once.get_secret_value().secret_id(format!("{p}/a")).send())
        .unwrap_err();
    assert_eq!(err.code(), Some("ServiceUnavailable"));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 503);

    proxy.deny_action("DescribeSecret");
    let err = rt
        .block_on(once.describe_secret().secret_id(format!("{p}/a")).send())
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);
    proxy.clear_rules();
    assert!(
        rt.block_on(once.describe_secret().secret_id(format!("{p}/a")).send())
            .is_ok()
    );

    proxy.delay("ListSecrets", Duration::from_millis(300));
    let t = std::time::Instant::now();
    assert!(
        rt.block_on(once.list_secrets().max_results(1).send())
            .is_ok()
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[test]
fn proxy_sts_errors_and_assume_role() {
    let proxy = Proxy::start(&moto_endpoint());
    let client = sts_client(&proxy.endpoint());
    let rt = rt();
    let role = "arn:aws:iam::222222222222:role/payments-deploy-production";
    proxy.sts_error("AssumeRole", "ExpiredTokenException", 400, 1);
    let err = rt
        .block_on(
            client
                .assume_role()
                .role_arn(role)
                .role_session_name("t")
                .send(),
        )
        .unwrap_err();
    assert_eq!(err.code(), Some("ExpiredTokenException"));
    let ok = rt
        .block_on(
            client
                .assume_role()
                .role_arn(role)
                .role_session_name("t")
                .send(),
        )
        .unwrap();
    assert!(
        ok.assumed_role_user()
            .unwrap()
            .arn()
            .contains("222222222222")
    );
    assert_eq!(proxy.count("AssumeRole"), 2);
    let (_, form) = &proxy.requests()[0];
    assert!(form.contains("Action=AssumeRole"), "{form}");

    proxy.deny_action("AssumeRole");
    let err = rt
        .block_on(
            client
                .assume_role()
                .role_arn(role)
                .role_session_name("t")
                .send(),
        )
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"));
    assert!(err.message().unwrap().contains(role));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 403);

    assert!(rt.block_on(client.get_caller_identity().send()).is_ok());
    assert_eq!(proxy.count("GetCallerIdentity"), 1);
}

#[test]
fn proxy_quota_throttles_counts_and_resets() {
    let proxy = Proxy::start(&moto_endpoint());
    let p = unique_prefix("quota");
    let seeder = Seeder::new(&moto_endpoint());
    seeder.create_string(&format!("{p}/a"), &canary_value());
    // One token and practically no refill: the first call passes, the second is throttled.
    proxy.quota("GetSecretValue", 0.001);
    proxy.quota("STS", 0.001);
    proxy.limit_upstream(1);
    let rt = rt();
    let client = sm_client(&proxy.endpoint(), 1);
    // The error code of one GetSecretValue, None when it succeeded.
    let get = || {
        rt.block_on(client.get_secret_value().secret_id(format!("{p}/a")).send())
            .err()
            .map(|e| e.code().unwrap_or("none").to_string())
    };
    assert_eq!(get(), None);
    assert_eq!(get().as_deref(), Some("ThrottlingException"));
    let sts = sts_client(&proxy.endpoint());
    assert!(rt.block_on(sts.get_caller_identity().send()).is_ok());
    let err = rt.block_on(sts.get_caller_identity().send()).unwrap_err();
    assert_eq!(err.code(), Some("Throttling"));
    // Other actions have no bucket; one upstream slot is released after each call.
    for _ in 0..3 {
        assert!(
            rt.block_on(client.list_secrets().max_results(1).send())
                .is_ok()
        );
    }

    let stats = proxy.stats();
    assert_eq!(
        stats["actions"]["GetSecretValue"]["forwarded"], 1,
        "{stats}"
    );
    assert_eq!(
        stats["actions"]["GetSecretValue"]["throttled"], 1,
        "{stats}"
    );
    assert_eq!(
        stats["actions"]["GetCallerIdentity"]["throttled"], 1,
        "{stats}"
    );
    assert_eq!(stats["actions"]["ListSecrets"]["forwarded"], 3, "{stats}");
    assert_eq!(stats["rates"]["STS"], 0.001, "{stats}");

    // What a benchmark script sees over HTTP; a reset refills the buckets.
    let http = |method: &str, path: &str| {
        let mut s = TcpStream::connect(proxy.addr()).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    assert_eq!(http("GET", "/credfile-proxy/stats"), proxy.stats());
    http("POST", "/credfile-proxy/reset");
    assert_eq!(proxy.stats()["actions"], serde_json::json!({}));
    assert_eq!(get(), None);
}

#[test]
fn proxy_stops_when_dropped() {
    let proxy = Proxy::start(&moto_endpoint());
    let addr = proxy.addr();
    drop(proxy);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());
}

#[test]
fn canary_check_names_index_not_value() {
    let c = Canaries::new();
    assert!(!c.add("short"), "values under 6 bytes are ignored");
    let secret = canary_value();
    assert!(c.add(&secret));
    assert!(!c.add(&secret), "no duplicates");
    assert_no_leak(&c, "nothing to see", "a clean string");
    let text = format!("error: bad value {secret} in file");
    let err = catch_unwind(AssertUnwindSafe(|| {
        assert_no_leak(&c, &text, "stderr of test")
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("canary #0") && msg.contains("stderr of test"),
        "{msg}"
    );
    assert!(!msg.contains(&secret));

    c.add_secret_binary(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]);
    assert!(c.find(b"3q2+7wAB").is_some(), "base64 form registered");
    assert!(format!("{c:?}").contains("registered"));
}

#[test]
fn runner_env_is_hermetic_and_output_checked() {
    let ep = moto_endpoint();
    let cf = Credfile::new(&ep).program("/usr/bin/env").env("EXTRA", "1");
    let out = cf.run(Vec::<&str>::new());
    out.assert_code(0);
    let mut keys: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "AWS_ACCESS_KEY_ID",
            "AWS_CONFIG_FILE",
            "AWS_EC2_METADATA_DISABLED",
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SHARED_CREDENTIALS_FILE",
            "EXTRA",
            "HOME",
            "PATH",
            "TMPDIR"
        ]
    );
    assert!(out.stdout.contains(&format!("AWS_ENDPOINT_URL={ep}\n")));
    assert!(
        out.stdout
            .contains(&format!("HOME={}\n", cf.home().display()))
    );
    // No profile of this machine can be read: the config files are empty.
    assert_eq!(cf.envs()["AWS_CONFIG_FILE"], "/dev/null");
    assert_eq!(cf.envs()["AWS_SHARED_CREDENTIALS_FILE"], "/dev/null");
    let out = cf
        .clone()
        .fail_fast()
        .env_remove("EXTRA")
        .run(Vec::<&str>::new());
    assert!(out.stdout.contains("AWS_MAX_ATTEMPTS=1\n") && !out.stdout.contains("EXTRA="));

    // cwd defaults to HOME; exit codes and signals.
    let sh = Credfile::new(&ep).program("/bin/sh");
    let out = sh.run(["-c", "pwd; echo err >&2; exit 7"]);
    assert_eq!(out.status_code, 7);
    assert_eq!(
        out.stdout.trim(),
        sh.home().canonicalize().unwrap().to_str().unwrap()
    );
    assert_eq!(out.stderr, "err\n");
    assert_eq!(sh.run(["-c", "kill -9 $$"]).status_code, 128 + 9);
    let out = sh.clone().stdin("from stdin").run(["-c", "cat"]);
    assert_eq!(out.stdout, "from stdin");

    // A canary printed by the program fails the run without showing it.
    let c = Canaries::new();
    let secret = canary_value();
    c.add(&secret);
    let leaky = sh.canaries(c);
    let err = catch_unwind(AssertUnwindSafe(|| {
        leaky.run(["-c", &format!("echo x >&2; echo {secret} >&2")])
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("stderr of `sh -c"), "{msg}");
    assert!(!msg.contains(&secret));
}

#[test]
fn runner_runs_the_credfile_binary() {
    let out = Credfile::new(&moto_endpoint()).run(["--help"]);
    // Whatever the binary does with --help, it ran and exited normally.
    assert!(out.status_code < 128, "killed by a signal: {out:?}");
}

#[test]
fn runner_times_out() {
    let sh = Credfile::new(&moto_endpoint())
        .program("/bin/sh")
        .timeout(Duration::from_millis(300));
    let err = catch_unwind(AssertUnwindSafe(|| sh.run(["-c", "sleep 5"]))).unwrap_err();
    assert!(
        err.downcast_ref::<String>()
            .unwrap()
            .contains("did not finish")
    );
}

#[test]
fn fs_helpers() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, "x").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o440)).unwrap();
    assert_eq!(mode_of(&f), 0o440);
    assert!(inode_of(&f) > 0);
    assert!(mtime_of(&f) > 1_600_000_000 * 1_000_000_000);
    let (uid, gid) = uid_gid(&f);
    assert_eq!(uid, nix::unistd::getuid().as_raw());
    assert_eq!(gid, nix::unistd::getgid().as_raw());
}
