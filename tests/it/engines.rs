//! Fleet engines (issue 12): the examples in pipeline-examples/{ansible,ssm,kubernetes,systemd}
//! driven by the real tools. Ansible runs the collection's playbook over a real sshd against three
//! inventory hosts; the SSM document goes through moto's CreateDocument and SendCommand and its
//! script runs with bash against moto; the Kubernetes manifests go through kubernetes-validate
//! --strict; the systemd units through systemd-analyze. Every check is shown to be able to fail.

use crate::support;
use crate::support::is_root;

#[path = "engines/sshd.rs"]
mod sshd;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Canaries, Credfile, Seeder, assert_no_leak, moto_endpoint, test_python};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> PathBuf {
    repo().join("pipeline-examples")
}

/// A tool installed into the test venv by scripts/test.sh (next to its python).
fn venv_tool(name: &str) -> PathBuf {
    let path = test_python().with_file_name(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test.sh (credfile_ensure_fleet_tools installs it)",
        path.display()
    );
    path
}

/// A program from Debian's packages, looked up in PATH.
fn system_tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is missing: run scripts/test.sh (it installs it from Debian)")
        })
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs a lint or validation tool (no secret involved) and returns its exit code and output.
fn run(cmd: &mut Command) -> Ran {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(d).expect("yaml");
            serde_json::to_value(v).expect("yaml as json")
        })
        .collect()
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("temp dir");
    set_mode(dir.path(), 0o755);
    dir
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

// ---------------------------------------------------------------------------------------------
// systemd

/// A root directory for `systemd-analyze --root`: the distribution's units (sysinit.target and
/// friends, which every service depends on), the example units in /etc/systemd/system, and,
/// when `binary` is true, the real credfile binary at the path ExecStart= names.
fn systemd_root(binary: bool, service_text: Option<&str>) -> tempfile::TempDir {
    let root = tempdir("credfile-systemd-");
    let r = root.path();
    std::fs::create_dir_all(r.join("usr/lib/systemd")).unwrap();
    let cp = run(Command::new("cp")
        .arg("-a")
        .arg("/usr/lib/systemd/system")
        .arg(r.join("usr/lib/systemd/")));
    assert_eq!(cp.code, 0, "copy the system units: {}", cp.stderr);
    std::os::unix::fs::symlink("usr/lib", r.join("lib")).unwrap();
    let units = r.join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    let src = examples().join("systemd");
    let service = service_text
        .map(str::to_string)
        .unwrap_or_else(|| std::fs::read_to_string(src.join("credfile-refresh@.service")).unwrap());
    std::fs::write(units.join("credfile-refresh@.service"), service).unwrap();
    std::fs::copy(
        src.join("credfile-refresh@.timer"),
        units.join("credfile-refresh@.timer"),
    )
    .unwrap();
    if binary {
        std::fs::create_dir_all(r.join("usr/local/bin")).unwrap();
        let dest = r.join("usr/local/bin/credfile");
        let bin = env!("CARGO_BIN_EXE_credfile");
        if std::fs::hard_link(bin, &dest).is_err() {
            std::fs::copy(bin, &dest).expect("copy the credfile binary");
        }
    }
    root
}

fn analyze_verify(root: &Path) -> Ran {
    run(Command::new(system_tool("systemd-analyze"))
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args([
            "credfile-refresh@staging.service",
            "credfile-refresh@staging.timer",
        ]))
}

#[test]
fn systemd_units_verify_and_pass_the_offline_security_review() {
    let unit_dir = examples().join("systemd");
    let service = std::fs::read_to_string(unit_dir.join("credfile-refresh@.service")).unwrap();
    let timer = std::fs::read_to_string(unit_dir.join("credfile-refresh@.timer")).unwrap();
    for want in [
        "Type=oneshot",
        "ProtectSystem=strict",
        "ReadWritePaths=/run/credfile",
        "RuntimeDirectory=credfile",
        "RuntimeDirectoryPreserve=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE",
    ] {
        assert!(service.lines().any(|l| l == want), "service lacks {want}");
    }
    for want in [
        "OnBootSec=",
        "OnUnitActiveSec=",
        "RandomizedDelaySec=",
        "Persistent=true",
    ] {
        assert!(
            timer.lines().any(|l| l.starts_with(want)),
            "timer lacks {want}"
        );
    }
    // The role installs the same units (a copy, so the collection stands alone).
    let role_files =
        examples().join("ansible/ansible_collections/credfile/deploy/roles/credfile/files");
    for name in ["credfile-refresh@.service", "credfile-refresh@.timer"] {
        assert_eq!(
            std::fs::read(role_files.join(name)).unwrap(),
            std::fs::read(unit_dir.join(name)).unwrap(),
            "the role's {name} differs from pipeline-examples/systemd/{name}"
        );
    }

    // verify: clean (no warning at all: an unknown key is only a warning with exit 0).
    let root = systemd_root(true, None);
    let ok = analyze_verify(root.path());
    assert_eq!(
        ok.code, 0,
        "systemd-analyze verify: {}{}",
        ok.stdout, ok.stderr
    );
    assert_eq!(ok.stderr.trim(), "", "systemd-analyze verify warned");

    // It can fail: without the binary, and with an unknown key (a warning we treat as failure).
    let no_bin = analyze_verify(systemd_root(false, None).path());
    assert_ne!(no_bin.code, 0, "verify passed without the ExecStart binary");
    assert!(
        no_bin.stderr.contains("/usr/local/bin/credfile"),
        "{}",
        no_bin.stderr
    );
    let typo = service.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes");
    let bad = analyze_verify(systemd_root(true, Some(&typo)).path());
    assert!(
        bad.stderr.contains("Unknown key"),
        "a misspelled key went unnoticed: {}",
        bad.stderr
    );

    // security: the exposure score systemd computes offline, at most 3.0 ("OK").
    let sec = run(Command::new(system_tool("systemd-analyze"))
        .args(["security", "--offline=true", "--threshold=30"])
        .arg(format!("--root={}", root.path().display()))
        .arg("credfile-refresh@staging.service"));
    assert_eq!(
        sec.code, 0,
        "systemd-analyze security: {}{}",
        sec.stdout, sec.stderr
    );
    let score: f64 = sec
        .stdout
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for credfile-refresh@staging.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{}", sec.stdout));
    assert!(score <= 3.0, "exposure {score} > 3.0:\n{}", sec.stdout);
    // The same check fails for an unhardened unit: the threshold is real.
    let bare = "[Service]\nType=oneshot\nExecStart=/usr/local/bin/credfile apply --env %i\n";
    let weak = run(Command::new(system_tool("systemd-analyze"))
        .args(["security", "--offline=true", "--threshold=30"])
        .arg(format!(
            "--root={}",
            systemd_root(true, Some(bare)).path().display()
        ))
        .arg("credfile-refresh@staging.service"));
    assert_ne!(
        weak.code, 0,
        "an unhardened unit passed the threshold:\n{}",
        weak.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

/// The Kubernetes versions kubernetes-validate ships schemas for (1.25 to 1.37 in 1.37.0).
fn shipped_kubernetes_versions() -> Vec<(u32, u32)> {
    let python = test_python();
    let out = run(Command::new(&python).args([
        "-c",
        "import kubernetes_validate.utils as u; print('\\n'.join(u.all_versions()))",
    ]));
    assert_eq!(out.code, 0, "kubernetes-validate versions: {}", out.stderr);
    let mut versions: Vec<(u32, u32)> = out
        .stdout
        .lines()
        .filter_map(|v| {
            let mut it = v.trim().trim_start_matches('v').split('.');
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect();
    versions.sort();
    versions.dedup();
    assert!(
        versions.len() >= 5,
        "too few schema versions: {}",
        out.stdout
    );
    versions
}

fn k8s_validate(version: (u32, u32), files: &[PathBuf]) -> Ran {
    run(Command::new(venv_tool("kubernetes-validate"))
        .args(["--strict", "--quiet", "-k"])
        .arg(format!("{}.{}.0", version.0, version.1))
        .args(files))
}

#[test]
fn kubernetes_manifests_validate_strictly_and_lock_the_pod_down() {
    let dir = examples().join("kubernetes");
    let common = ["serviceaccount.yaml", "configmap.yaml"].map(|f| dir.join(f));
    let init = dir.join("deployment-init.yaml");
    let sidecar = dir.join("deployment-sidecar.yaml");
    let versions = shipped_kubernetes_versions();
    for &v in &versions {
        let mut files = common.to_vec();
        files.push(init.clone());
        // Native sidecars (restartPolicy on an init container) are on by default from 1.29.
        if v >= (1, 29) {
            files.push(sidecar.clone());
        }
        let r = k8s_validate(v, &files);
        assert_eq!(
            r.code, 0,
            "kubernetes {}.{}: {}{}",
            v.0, v.1, r.stdout, r.stderr
        );
    }
    // --strict is strict: a misspelled field fails.
    let tmp = tempdir("credfile-k8s-");
    let typo = tmp.path().join("typo.yaml");
    std::fs::write(
        &typo,
        std::fs::read_to_string(&init)
            .unwrap()
            .replace("readOnlyRootFilesystem", "readOnlyRootFileSystem"),
    )
    .unwrap();
    let last = *versions.last().unwrap();
    assert_ne!(
        k8s_validate(last, &[typo]).code,
        0,
        "a misspelled field passed --strict"
    );

    // The security invariants, on both variants.
    for (path, sidecar_variant) in [(&init, false), (&sidecar, true)] {
        let doc = &yaml_docs(path)[0];
        let name = path.display();
        let pod = &doc["spec"]["template"]["spec"];
        let psc = &pod["securityContext"];
        assert_eq!(psc["runAsNonRoot"], true, "{name}");
        assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
        let (uid, gid) = (psc["runAsUser"].clone(), psc["runAsGroup"].clone());
        assert!(uid.as_u64().is_some_and(|u| u > 0), "{name}: runAsUser");
        let inits = pod["initContainers"].as_array().expect("initContainers");
        let apps = pod["containers"].as_array().expect("containers");
        assert_eq!(inits.len(), 1, "{name}");
        let credfile = &inits[0];
        for c in inits.iter().chain(apps) {
            let sc = &c["securityContext"];
            let who = format!("{name}: container {}", c["name"]);
            assert_eq!(sc["runAsNonRoot"], true, "{who}");
            assert_eq!(sc["runAsUser"], uid, "{who}: not the app's uid");
            assert_eq!(sc["runAsGroup"], gid, "{who}: not the app's gid");
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{who}");
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{who}");
            assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{who}");
            assert!(sc["capabilities"].get("add").is_none(), "{who}");
            assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{who}");
        }
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "secrets")
            .expect("secrets volume");
        assert_eq!(
            volume["emptyDir"]["medium"], "Memory",
            "{name}: not memory-backed"
        );
        let mount = |c: &Value| {
            c["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == "secrets")
                .cloned()
                .expect("secrets mount")
        };
        for app in apps {
            assert_eq!(
                mount(app)["readOnly"],
                true,
                "{name}: the app may write the secrets"
            );
            assert!(
                mount(app).get("subPath").is_none(),
                "{name}: subPath never sees a rotation"
            );
        }
        assert_ne!(
            mount(credfile)["readOnly"],
            true,
            "{name}: credfile cannot write"
        );
        let args: Vec<String> = credfile["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert_eq!(args[0], "apply", "{name}");
        if sidecar_variant {
            assert_eq!(
                credfile["restartPolicy"], "Always",
                "{name}: not a native sidecar"
            );
            assert!(args.iter().any(|a| a == "--every"), "{name}: no --every");
            assert!(
                credfile["startupProbe"].is_object(),
                "{name}: the app would start before the files"
            );
        } else {
            assert!(credfile.get("restartPolicy").is_none(), "{name}");
        }
        // Identity comes from the SDK's default chain, never from keys in the pod spec.
        let text = std::fs::read_to_string(path).unwrap();
        assert!(!text.contains("AWS_ACCESS_KEY_ID") && !text.contains("AWS_SECRET_ACCESS_KEY"));
    }

    // The ConfigMap's manifest is a valid credfile manifest (offline).
    let cm = &yaml_docs(&dir.join("configmap.yaml"))[0];
    let manifest = tmp.path().join("credfile.yaml");
    std::fs::write(&manifest, cm["data"]["credfile.yaml"].as_str().unwrap()).unwrap();
    let out = Credfile::new("http://127.0.0.1:9").run([
        "validate".as_ref(),
        "--env".as_ref(),
        "production".as_ref(),
        "--manifest".as_ref(),
        manifest.as_os_str(),
    ]);
    out.assert_code(0);
}

// ---------------------------------------------------------------------------------------------
// SSM

/// Seeds `n` secrets under `prefix` and writes a manifest (environment `fleet`, default account)
/// reading them into `db/password` (a JSON key) and `app.env` (dotenv). Returns the manifest path
/// and the expected file contents.
fn fleet_manifest(
    seeder: &Seeder,
    dir: &Path,
    prefix: &str,
) -> (PathBuf, BTreeMap<&'static str, String>) {
    let password = support::canary_value();
    let api_key = support::canary_value();
    seeder.create_json(
        &format!("{prefix}/db"),
        &json!({ "username": "fleet-db-user", "password": password }),
    );
    seeder.create_string(&format!("{prefix}/api-key"), &api_key);
    let manifest = dir.join("credfile.yaml");
    std::fs::write(
        &manifest,
        format!(
            "version: 1\napp: fleet\ndefaults:\n  region: us-east-1\n  root: /run/credfile/fleet\n  mode: \"0400\"\n\
             environments:\n  fleet:\n    account: \"{account}\"\n    vars: {{ prefix: {prefix} }}\n\
             files:\n  - path: db/password\n    secret: ${{prefix}}/db\n    key: password\n\
             \x20 - path: app.env\n    format: dotenv\n    values:\n      API_KEY: {{ secret: \"${{prefix}}/api-key\" }}\n",
            account = seeder.account()
        ),
    )
    .unwrap();
    set_mode(&manifest, 0o644);
    let expected = BTreeMap::from([
        ("db/password", password),
        ("app.env", format!("API_KEY='{api_key}'\n")),
    ]);
    (manifest, expected)
}

fn assert_files(root: &Path, expected: &BTreeMap<&'static str, String>) {
    for (path, want) in expected {
        let got = std::fs::read(root.join(path))
            .unwrap_or_else(|e| panic!("{}/{path}: {e}", root.display()));
        assert!(
            got == want.as_bytes(),
            "{}/{path} does not hold the seeded value",
            root.display()
        );
    }
}

/// boto3 against moto: CreateDocument with the example, SendCommand with send-command.json's
/// targets, rate controls and parameters, and botocore's own input validation of both JSON files
/// (moto has no CreateAssociation). Prints one JSON object.
const SSM_CHECK: &str = r#"
import json, sys, boto3, botocore.session
from botocore.validate import ParamValidator
endpoint, doc_path, send_path, assoc_path, name = sys.argv[1:6]
ssm = boto3.client("ssm", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
created = ssm.create_document(Content=open(doc_path).read(), Name=name,
                              DocumentType="Command", DocumentFormat="YAML")
desc = ssm.describe_document(Name=name)["Document"]
send = json.load(open(send_path))
send["DocumentName"] = name
sent = ssm.send_command(**send)["Command"]
model = botocore.session.get_session().get_service_model("ssm")
errors = {}
for path, op in [(send_path, "SendCommand"), (assoc_path, "CreateAssociation")]:
    report = ParamValidator().validate(json.load(open(path)), model.operation_model(op).input_shape)
    errors[op] = report.generate_report() if report.has_errors() else ""
bad = ParamValidator().validate({"Name": name, "MaxConcurrency": 10},
                                model.operation_model("CreateAssociation").input_shape)
print(json.dumps({
    "status": created["DocumentDescription"]["Status"],
    "schema": desc["SchemaVersion"],
    "parameters": sorted(p["Name"] for p in desc["Parameters"]),
    "targets": sent["Targets"], "max_concurrency": sent["MaxConcurrency"],
    "max_errors": sent["MaxErrors"], "sent_parameters": sent["Parameters"],
    "errors": errors, "bad_caught": bad.has_errors(),
}))
"#;

#[test]
fn ssm_document_is_accepted_by_moto_and_its_script_applies() {
    let endpoint = moto_endpoint();
    let dir = examples().join("ssm");
    let doc_path = dir.join("credfile-Apply.yaml");
    let doc = &yaml_docs(&doc_path)[0];
    assert_eq!(doc["schemaVersion"], "2.2");
    let params = &doc["parameters"];
    assert_eq!(
        params["Command"]["allowedValues"],
        json!(["apply", "plan", "verify"])
    );
    let env_pattern = params["Environment"]["allowedPattern"]
        .as_str()
        .expect("allowedPattern");
    assert!(
        env_pattern.starts_with('^') && env_pattern.ends_with('$'),
        "unanchored pattern"
    );
    assert!(params["ManifestPath"]["allowedPattern"].is_string());
    let step = &doc["mainSteps"][0];
    assert_eq!(step["action"], "aws:runShellScript");

    // moto's CreateDocument and SendCommand (by tag, with rate controls) accept it.
    let name = format!("credfile-Apply-{}", support::random_hex(4));
    let check = run(Command::new(test_python())
        .args(["-c", SSM_CHECK, &endpoint])
        .arg(&doc_path)
        .arg(dir.join("send-command.json"))
        .arg(dir.join("association.json"))
        .arg(&name)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"));
    assert_eq!(
        check.code, 0,
        "boto3 against moto: {}{}",
        check.stdout, check.stderr
    );
    let r: Value = serde_json::from_str(check.stdout.trim()).expect("ssm check output");
    assert_eq!(r["status"], "Active");
    assert_eq!(r["schema"], "2.2");
    assert_eq!(
        r["parameters"],
        json!([
            "BinaryPath",
            "Command",
            "Environment",
            "Jitter",
            "ManifestPath"
        ])
    );
    assert_eq!(r["targets"][0]["Key"], "tag:credfile-env");
    assert_eq!(r["max_concurrency"], "10%");
    assert_eq!(r["max_errors"], "1");
    assert_eq!(r["sent_parameters"]["Command"], json!(["apply"]));
    assert_eq!(
        r["errors"],
        json!({"SendCommand": "", "CreateAssociation": ""})
    );
    assert_eq!(
        r["bad_caught"], true,
        "botocore's validation accepts anything"
    );

    // The script: shellcheck clean, then run with bash and the SSM_* variables, against moto.
    let lines: Vec<&str> = step["inputs"]["runCommand"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().expect("a runCommand line is not a string"))
        .collect();
    let tmp = tempdir("credfile-ssm-");
    let script = tmp.path().join("run.sh");
    std::fs::write(&script, lines.join("\n") + "\n").unwrap();
    let sc = run(Command::new(system_tool("shellcheck"))
        .args(["-s", "bash"])
        .arg(&script));
    assert_eq!(sc.code, 0, "shellcheck: {}", sc.stdout);
    let broken = tmp.path().join("broken.sh");
    std::fs::write(
        &broken,
        lines.join("\n").replace("\"${args[@]}\"", "${args[@]}"),
    )
    .unwrap();
    assert_ne!(
        run(Command::new(system_tool("shellcheck"))
            .args(["-s", "bash"])
            .arg(&broken))
        .code,
        0,
        "shellcheck passed an unquoted array"
    );

    let seeder = Seeder::new(&endpoint);
    let prefix = support::unique_prefix("ssm");
    let (manifest, expected) = fleet_manifest(&seeder, tmp.path(), &prefix);
    let root = tmp.path().join("root");
    let bash = |command: &str| {
        Credfile::new(&endpoint)
            .program("/bin/bash")
            .env("SSM_Environment", "fleet")
            .env("SSM_Command", command)
            .env("SSM_ManifestPath", manifest.to_str().unwrap())
            .env("SSM_BinaryPath", env!("CARGO_BIN_EXE_credfile"))
            .env("SSM_Jitter", "0")
            .env("CREDFILE_ROOT", root.to_str().unwrap())
            .run([&script])
    };
    let plan = bash("plan");
    plan.assert_code(0);
    assert_eq!(plan.json()["summary"]["created"], 2);
    assert!(!root.exists(), "plan wrote the root");
    let apply = bash("apply");
    apply.assert_code(0);
    let report = apply.json();
    assert_eq!(report["command"], "apply");
    assert_eq!(report["summary"]["created"], 2);
    assert!(
        apply.stdout.len() < 24_000,
        "the report overflows Run Command's stdout limit"
    );
    assert_files(&root, &expected);
    let verify = bash("verify");
    verify.assert_code(0);
    assert_eq!(verify.json()["in_sync"], true);
    let again = bash("apply");
    again.assert_code(0);
    assert_eq!(again.json()["summary"]["unchanged"], 2);
    // A command outside allowedValues never reaches credfile.
    let bad = bash("clean");
    bad.assert_code(2);
    assert!(bad.stderr.contains("bad command"), "{}", bad.stderr);
    assert_files(&root, &expected);
}

// ---------------------------------------------------------------------------------------------
// Ansible

/// A plain HTTP file server on 127.0.0.1 (python's http.server): the role downloads the binary
/// from it with get_url and a checksum, as it would from a release URL.
struct FileServer {
    child: Child,
    port: u16,
}

impl FileServer {
    fn start(dir: &Path) -> FileServer {
        for _ in 0..5 {
            let port = sshd::free_port();
            let mut child = Command::new(test_python())
                .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
                .arg(dir)
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn http.server");
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return FileServer { child, port };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("http.server did not start");
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(std::fs::read(path).expect("read binary"));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `host -> (ok, changed, failed)` from the PLAY RECAP of the default callback.
fn recap(stdout: &str) -> BTreeMap<String, (u32, u32, u32)> {
    let mut out = BTreeMap::new();
    let Some(at) = stdout.rfind("PLAY RECAP") else {
        return out;
    };
    for line in stdout[at..].lines().skip(1) {
        let Some((host, counts)) = line.split_once(" : ") else {
            continue;
        };
        let get = |key: &str| {
            counts
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
                .unwrap_or(0)
        };
        out.insert(
            host.trim().to_string(),
            (get("ok"), get("changed"), get("failed")),
        );
    }
    out
}

/// Every file under `dir` (not following links), checked for canaries.
fn scan_for_canaries(canaries: &Canaries, dir: &Path, what: &str) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() && meta.len() < 4 << 20 {
                let bytes = std::fs::read(e.path()).unwrap_or_default();
                assert_no_leak(
                    canaries,
                    &bytes,
                    &format!("{} ({what})", e.path().display()),
                );
            }
        }
    }
}

#[test]
fn ansible_module_documentation_parses() {
    let tmp = tempdir("credfile-ansible-doc-");
    let out = run(Command::new(venv_tool("ansible-doc"))
        .arg("credfile.deploy.credfile")
        .env("ANSIBLE_COLLECTIONS_PATH", examples().join("ansible"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("HOME", tmp.path())
        .env("LC_ALL", "C.UTF-8"));
    assert_eq!(out.code, 0, "ansible-doc: {}{}", out.stdout, out.stderr);
    for option in ["env", "manifest", "root", "binary", "state", "jitter"] {
        let listed = out.stdout.lines().any(|l| {
            (l.starts_with("- ") || l.starts_with("= "))
                && l[2..].split_whitespace().next() == Some(option)
        });
        assert!(
            listed,
            "ansible-doc does not list option {option}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn ansible_playbook_applies_over_ssh_idempotently_and_plans_a_rotation_without_writing() {
    if !is_root() {
        eprintln!("skipped: needs root (a throwaway user for sshd); CI runs as root");
        return;
    }
    let endpoint = moto_endpoint();
    let base = tempdir("credfile-ansible-");
    let server = sshd::Sshd::start(base.path());
    let seeder = Seeder::new(&endpoint);
    let canaries = seeder.canaries().clone();
    let prefix = support::unique_prefix("ansible");
    let (manifest, expected) = fleet_manifest(&seeder, base.path(), &prefix);

    // The "release": the binary served over HTTP, with its SHA-256.
    let dist = base.path().join("dist");
    std::fs::create_dir(&dist).unwrap();
    let bin = dist.join("credfile");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_credfile"), &bin).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_credfile"), &bin).unwrap();
    }
    // A release archive as scripts/dist.sh lays it out (the binary in its top directory), for h3.
    let stem = "credfile-0.1.0-x86_64-unknown-linux-gnu";
    std::fs::create_dir(dist.join(stem)).unwrap();
    // A copy, not a link: other tests link the same binary, which changes its ctime, and tar
    // then fails with "file changed as we read it".
    std::fs::copy(&bin, dist.join(stem).join("credfile")).unwrap();
    let tar = run(Command::new("tar")
        .arg("-C")
        .arg(&dist)
        .args(["-czf", &format!("{stem}.tar.gz"), stem])
        .current_dir(&dist));
    assert_eq!(tar.code, 0, "tar: {}", tar.stderr);
    let archive = dist.join(format!("{stem}.tar.gz"));
    let files = FileServer::start(&dist);

    // Three inventory hosts on the one sshd, each with its own prefix (binary, manifest, units,
    // root) owned by the throwaway user.
    let hosts_dir = base.path().join("hosts");
    std::fs::create_dir(&hosts_dir).unwrap();
    let mut hosts = serde_json::Map::new();
    let mut roots = Vec::new();
    for h in ["h1", "h2", "h3"] {
        let hd = hosts_dir.join(h);
        std::fs::create_dir(&hd).unwrap();
        std::os::unix::fs::chown(&hd, Some(server.uid), Some(server.gid)).unwrap();
        let root = hd.join("secrets");
        hosts.insert(
            h.to_string(),
            json!({
                "credfile_root": root,
                "credfile_binary_path": hd.join("bin/credfile"),
                "credfile_manifest_path": hd.join("etc/credfile.yaml"),
                "credfile_systemd_dir": hd.join("systemd"),
                "credfile_download_dir": hd.join("cache"),
            }),
        );
        if h == "h3" {
            let vars = hosts[h].as_object_mut().unwrap();
            vars.insert(
                "credfile_binary_url".into(),
                json!(format!("http://127.0.0.1:{}/{stem}.tar.gz", files.port)),
            );
            vars.insert("credfile_binary_sha256".into(), json!(sha256_hex(&archive)));
        }
        std::fs::create_dir(hd.join("systemd")).unwrap();
        std::os::unix::fs::chown(hd.join("systemd"), Some(server.uid), Some(server.gid)).unwrap();
        roots.push(root);
    }
    let env = support::hermetic_env(&endpoint, &server.home);
    let aws_env: serde_json::Map<String, Value> = env
        .iter()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let inventory = base.path().join("inventory.yml");
    std::fs::write(
        &inventory,
        serde_json::to_string_pretty(&json!({
            "credfile_hosts": {
                "hosts": hosts,
                "vars": {
                    "ansible_host": "127.0.0.1",
                    "ansible_port": server.port,
                    "ansible_user": server.user,
                    "ansible_ssh_private_key_file": server.client_key,
                    "ansible_ssh_common_args": format!(
                        "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
                        server.known_hosts.display()
                    ),
                    "ansible_python_interpreter": "/usr/bin/python3",
                    "credfile_env": "fleet",
                    "credfile_binary_url": format!("http://127.0.0.1:{}/credfile", files.port),
                    "credfile_binary_sha256": sha256_hex(&bin),
                    "credfile_manifest_src": manifest,
                    "credfile_install_owner": "",
                    "credfile_install_group": "",
                    "credfile_timer_enable": false,
                    "credfile_environment_vars": aws_env,
                }
            }
        }))
        .unwrap(),
    )
    .unwrap();

    let playbook_dir = examples().join("ansible");
    let controller = Credfile::new(&endpoint)
        .program(venv_tool("ansible-playbook"))
        .canaries(canaries.clone())
        .cwd(&playbook_dir)
        .timeout(Duration::from_secs(600))
        .env(
            "ANSIBLE_CONFIG",
            playbook_dir.join("ansible.cfg").to_str().unwrap(),
        )
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("LC_ALL", "C.UTF-8")
        .env("LANG", "C.UTF-8");
    let playbook = |extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "-i".into(),
            inventory.to_str().unwrap().into(),
            "deploy.yml".into(),
            "-vvv".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = controller.run(&args);
        // Nothing the remote side kept (ansible's temp files) holds a value either.
        scan_for_canaries(&canaries, &server.home, "the remote user's home");
        out
    };
    let ssh_log = || server.log();

    // The shipped serial (25%: one host at a time here) is exercised by the failure run; the
    // others take the three hosts in one batch, as `-e credfile_serial=100%` documents.
    let all = ["-e", "credfile_serial=100%"];
    // 1. First run: installs and writes on all three.
    let first = playbook(&all);
    assert_eq!(
        first.status_code,
        0,
        "first run failed:\n{}\n{}\nsshd: {}",
        first.stdout,
        first.stderr,
        ssh_log()
    );
    let r = recap(&first.stdout);
    assert_eq!(r.len(), 3, "recap: {r:?}");
    for (host, (_, changed, failed)) in &r {
        assert!(*changed > 0 && *failed == 0, "{host}: {r:?}");
    }
    for (i, root) in roots.iter().enumerate() {
        let installed = hosts_dir.join(format!("h{}", i + 1)).join("bin/credfile");
        assert_eq!(
            sha256_hex(&installed),
            sha256_hex(&bin),
            "{}",
            installed.display()
        );
        assert_eq!(support::mode_of(&installed), 0o755);
        assert_files(root, &expected);
        assert_eq!(
            support::uid_gid(root.join("db/password")),
            (server.uid, server.gid)
        );
        assert_eq!(support::mode_of(root.join("current/db/password")), 0o400);
    }
    assert_eq!(
        first
            .stdout
            .matches("TASK [credfile.deploy.credfile : Write the secret files")
            .count(),
        1
    );

    // 2. Second run: nothing changes anywhere.
    let before = roots.iter().map(support::snapshot).collect::<Vec<_>>();
    let second = playbook(&all);
    assert_eq!(
        second.status_code, 0,
        "second run failed:\n{}",
        second.stdout
    );
    let r = recap(&second.stdout);
    assert_eq!(r.len(), 3, "recap: {r:?}");
    for (host, (_, changed, failed)) in &r {
        assert_eq!(
            (*changed, *failed),
            (0, 0),
            "{host} changed on the second run: {r:?}"
        );
    }
    assert_eq!(
        roots.iter().map(support::snapshot).collect::<Vec<_>>(),
        before
    );

    // 3. A rotation, then --check --diff: changed on every host, nothing written, the diff names
    //    the new version (metadata) and never the value.
    let new_version = seeder.put_string(
        &format!("{prefix}/db"),
        &json!({ "username": "fleet-db-user", "password": support::canary_value() }).to_string(),
    );
    let check = playbook(&["--check", "--diff", all[0], all[1]]);
    assert_eq!(check.status_code, 0, "check run failed:\n{}", check.stdout);
    let r = recap(&check.stdout);
    assert_eq!(r.len(), 3, "recap: {r:?}");
    for (host, (_, changed, failed)) in &r {
        assert_eq!(
            (*changed, *failed),
            (1, 0),
            "{host}: only the credfile task may change: {r:?}"
        );
    }
    assert!(
        check.stdout.matches(&format!("@{new_version}")).count() >= 3,
        "the diff does not show the new version on each host:\n{}",
        check.stdout
    );
    assert_eq!(
        roots.iter().map(support::snapshot).collect::<Vec<_>>(),
        before,
        "--check wrote"
    );

    // 4. A failure carries credfile's message and exit code, the target stays as it was, and the
    //    shipped serial + max_fail_percentage stop the rollout after the first slice.
    let failed = playbook(&["-e", "credfile_env=nosuch"]);
    assert_ne!(failed.status_code, 0);
    let r = recap(&failed.stdout);
    assert_eq!(
        r.keys().collect::<Vec<_>>(),
        ["h1"],
        "the rollout went on: {r:?}"
    );
    assert_eq!(r["h1"].2, 1, "{r:?}");
    assert!(
        failed
            .stdout
            .contains("credfile apply failed with exit code 2: error:")
            && failed.stdout.contains("\"rc\": 2"),
        "no credfile message and exit code in:\n{}",
        failed.stdout
    );
    assert!(
        failed.stdout.contains("no environment `nosuch`"),
        "{}",
        failed.stdout
    );
    assert_eq!(
        roots.iter().map(support::snapshot).collect::<Vec<_>>(),
        before
    );
}

#[test]
fn ansible_module_verifies_drift_and_cleans_only_in_earnest() {
    let endpoint = moto_endpoint();
    let tmp = tempdir("credfile-ansible-module-");
    let seeder = Seeder::new(&endpoint);
    let prefix = support::unique_prefix("module");
    let (manifest, expected) = fleet_manifest(&seeder, tmp.path(), &prefix);
    let root = tmp.path().join("root");
    let controller = Credfile::new(&endpoint)
        .program(venv_tool("ansible"))
        .env(
            "ANSIBLE_COLLECTIONS_PATH",
            examples().join("ansible").to_str().unwrap(),
        )
        .env("ANSIBLE_NOCOLOR", "1")
        .env(
            "ANSIBLE_PYTHON_INTERPRETER",
            test_python().to_str().unwrap(),
        )
        .env("LC_ALL", "C.UTF-8");
    // One module call on localhost over the local connection, with the hermetic AWS env.
    let module = |state: &str, extra: &[&str]| {
        let args = format!(
            "env=fleet manifest={} root={} binary={} state={state}",
            manifest.display(),
            root.display(),
            env!("CARGO_BIN_EXE_credfile")
        );
        let mut argv = vec![
            "localhost",
            "-c",
            "local",
            "-m",
            "credfile.deploy.credfile",
            "-a",
        ];
        argv.push(&args);
        argv.extend_from_slice(extra);
        controller.run(&argv)
    };
    let applied = module("applied", &[]);
    assert_eq!(
        applied.status_code, 0,
        "{}\n{}",
        applied.stdout, applied.stderr
    );
    assert!(applied.stdout.contains("CHANGED"), "{}", applied.stdout);
    assert_files(&root, &expected);

    let verified = module("verified", &[]);
    assert_eq!(
        verified.status_code, 0,
        "{}\n{}",
        verified.stdout, verified.stderr
    );
    assert!(verified.stdout.contains("SUCCESS"), "{}", verified.stdout);
    // Drift (a mode) fails the task with exit code 7 and names the file, never a value.
    set_mode(&root.join("current/db/password"), 0o444);
    let drift = module("verified", &[]);
    assert_ne!(drift.status_code, 0);
    assert!(
        drift
            .stdout
            .contains("has drifted (exit code 7): mode db/password")
            && drift.stdout.contains("\"rc\": 7"),
        "{}",
        drift.stdout
    );
    set_mode(&root.join("current/db/password"), 0o400);

    // absent under --check: reports the change and removes nothing.
    let before = support::snapshot(&root);
    let check = module("absent", &["--check"]);
    assert_eq!(check.status_code, 0, "{}\n{}", check.stdout, check.stderr);
    assert!(check.stdout.contains("CHANGED"), "{}", check.stdout);
    assert_eq!(
        support::snapshot(&root),
        before,
        "--check removed something"
    );
    let clean = module("absent", &[]);
    assert_eq!(clean.status_code, 0, "{}\n{}", clean.stdout, clean.stderr);
    assert!(clean.stdout.contains("CHANGED"), "{}", clean.stdout);
    assert!(!root.exists(), "clean left the root");
    let again = module("absent", &[]);
    assert_eq!(again.status_code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("SUCCESS"),
        "clean of nothing reported a change: {}",
        again.stdout
    );
}
