//! Fleet engines (issue 12): the examples in pipeline-examples/{ansible,ssm,kubernetes,systemd}
//! driven by the real tools. Ansible runs the collection's playbook over a real sshd against three
//! inventory hosts; the SSM document goes through moto's CreateDocument and SendCommand and its
//! script runs with bash against moto; the Kubernetes manifests go through kubernetes-validate
//! --strict; the systemd units through systemd-analyze. Every check is shown to be able to fail.

use crate::support;

#[path = "engines/sshd.rs"]
pub(crate) mod sshd;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::{Credfile, Seeder, moto_endpoint, test_python};

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn examples() -> PathBuf {
    repo().join("pipeline-examples")
}

/// A tool installed into the test venv by scripts/test.sh (next to its python).
pub(crate) fn venv_tool(name: &str) -> PathBuf {
    let path = test_python().with_file_name(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test.sh (credfile_ensure_fleet_tools installs it)",
        path.display()
    );
    path
}

/// A program from Debian's packages, looked up in PATH.
pub(crate) fn system_tool(name: &str) -> PathBuf {
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

pub(crate) struct Ran {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs a lint or validation tool (no secret involved) and returns its exit code and output.
pub(crate) fn run(cmd: &mut Command) -> Ran {
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

pub(crate) fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(d).expect("yaml");
            serde_json::to_value(v).expect("yaml as json")
        })
        .collect()
}

pub(crate) fn tempdir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("temp dir");
    set_mode(dir.path(), 0o755);
    dir
}

pub(crate) fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

// ---------------------------------------------------------------------------------------------
// systemd

/// A root directory for `systemd-analyze --root`: the distribution's units (sysinit.target and
/// friends, which every service depends on), the example units in /etc/systemd/system, and,
/// when `binary` is true, the real credfile binary at the path ExecStart= names.
pub(crate) fn systemd_root(binary: bool, service_text: Option<&str>) -> tempfile::TempDir {
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

pub(crate) fn analyze_verify(root: &Path) -> Ran {
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
pub(crate) fn shipped_kubernetes_versions() -> Vec<(u32, u32)> {
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

pub(crate) fn k8s_validate(version: (u32, u32), files: &[PathBuf]) -> Ran {
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
pub(crate) fn fleet_manifest(
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

pub(crate) fn assert_files(root: &Path, expected: &BTreeMap<&'static str, String>) {
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
pub(crate) const SSM_CHECK: &str = r#"
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
