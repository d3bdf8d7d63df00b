//! The README's quick start and install commands are the ones the tests and CI run: the quick
//! start is scripts/demo.sh and scripts/test.sh as .ci/run calls them, the install blocks name
//! this release, and (with a release built by scripts/dist.sh) run as written against it.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::dist::{
    FileServer, TARGET, VERSION, archive_name, deb_name, dist, repo, rpm_name, served_copy,
    stdout_of, tempdir,
};

const BIN: &str = env!("CARGO_BIN_EXE_credfile");
use crate::book::{logical_lines, shell_words};

fn readme() -> String {
    fs::read_to_string(repo().join("README.md")).unwrap()
}

/// The first indented code block after `marker` in the README, one string per line (4-space
/// indent removed).
fn readme_code_after(marker: &str) -> Vec<String> {
    let md = readme();
    let at = md
        .find(marker)
        .unwrap_or_else(|| panic!("README.md has no `{marker}`"));
    let mut lines: Vec<String> = md[at..]
        .lines()
        .skip_while(|l| !l.starts_with("    "))
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| l.get(4..).unwrap_or("").to_string())
        .collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

fn executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[test]
fn readme_quick_start_is_what_ci_runs_and_the_demo_applies() {
    let block = readme_code_after("## Quick start");
    let commands: Vec<String> = block.iter().map(|l| shell_words(l).join(" ")).collect();
    assert_eq!(
        commands,
        ["scripts/demo.sh", "scripts/test.sh"],
        "{block:?}"
    );
    for c in &commands {
        assert!(executable(&repo().join(c)), "{c} is not executable");
    }
    // CI runs exactly scripts/test.sh.
    let ci = fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == "exec scripts/test.sh"),
        "{ci}"
    );
    // The demo does what the quick start says: that manifest, that environment, a root of its
    // own under /dev/shm (mktemp) unless CREDFILE_DEMO_ROOT names one.
    let demo = fs::read_to_string(repo().join("scripts/demo.sh")).unwrap();
    let md = readme();
    let quick = &md[md.find("## Quick start").unwrap()..md.find("## The three ways").unwrap()];
    for said in [
        "pipeline-examples/credfile.yaml",
        "/dev/shm",
        "CREDFILE_DEMO_ROOT",
    ] {
        assert!(quick.contains(said), "the quick start names {said}");
        assert!(demo.contains(said), "scripts/demo.sh uses {said}");
    }
    assert!(
        demo.contains("mktemp -d \"$base/credfile-demo."),
        "scripts/demo.sh applies into a directory of its own run"
    );
    let prose = quick.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        prose.contains("applies its `staging` environment"),
        "{prose}"
    );
    assert_eq!(
        demo.matches(" apply --env staging --manifest \"$manifest\"")
            .count(),
        2
    );
    // ... and that manifest's staging environment is valid.
    let out = Command::new(BIN)
        .args(["validate", "--env", "staging", "--manifest"])
        .arg(repo().join("pipeline-examples/credfile.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What can be checked without a release: the versions, file names, flags and inputs the
/// README's install commands use are the ones this tree builds and ships.
#[test]
fn readme_install_commands_name_this_release() {
    let by_hand = readme_code_after("**Download and check by hand**");
    assert_eq!(by_hand[0], format!("V={VERSION} REPO=OWNER/credfile"));
    let text = by_hand.join("\n");
    assert!(text.contains("credfile-$V-x86_64-unknown-linux-gnu.tar.gz"));
    assert_eq!(
        format!("credfile-{VERSION}-x86_64-unknown-linux-gnu.tar.gz"),
        archive_name()
    );

    let installer = readme_code_after("**The installer**");
    assert_eq!(installer.len(), 2, "{installer:?}");
    assert_eq!(
        installer[0],
        format!(
            "curl -fsSLO https://github.com/OWNER/credfile/releases/download/v{VERSION}/install.sh"
        )
    );
    let usage = fs::read_to_string(repo().join("scripts/install.sh")).unwrap();
    for flag in shell_words(&installer[1])
        .iter()
        .filter(|w| w.starts_with("--") || w.starts_with("[--"))
    {
        let flag = flag.trim_start_matches('[');
        assert!(
            usage.contains(&format!("        {flag})")),
            "install.sh takes no {flag}"
        );
    }
    assert!(installer[1].contains(&format!("--version {VERSION} ")));

    let packages = readme_code_after("**Debian/Ubuntu and RHEL");
    assert_eq!(
        packages,
        [format!(
            "sudo apt install ./{}      # or: sudo dnf install ./{}",
            deb_name(),
            rpm_name()
        )]
    );
    let source = readme_code_after("**From source**");
    assert_eq!(
        source,
        [format!(
            "cargo install --locked --git https://github.com/OWNER/credfile --tag v{VERSION}"
        )]
    );

    // The action's and the component's inputs exist, at this version.
    let action = readme_code_after("**GitHub Actions:**").join("\n");
    let action_yml = fs::read_to_string(repo().join("action.yml")).unwrap();
    for input in inline_keys(&action, "with: {") {
        assert!(
            action_yml.contains(&format!("\n  {input}:\n")),
            "action.yml has no input {input}"
        );
    }
    assert!(
        action.contains(&format!("version: {VERSION} }}")),
        "{action}"
    );
    assert!(
        action.contains("steps.credfile.outputs.changed") && action_yml.contains("\n  changed:\n")
    );
    let component = readme_code_after("**GitLab CI/CD component**").join("\n");
    assert!(
        component.contains(&format!("/OWNER/credfile/credfile@{VERSION}")),
        "{component}"
    );
    let template = fs::read_to_string(repo().join("templates/credfile.yml")).unwrap();
    for input in inline_keys(&component, "inputs: {") {
        assert!(
            template.contains(&format!("\n    {input}:\n")),
            "the component has no input {input}"
        );
    }
}

/// The keys of a one-line YAML flow mapping that follows `prefix`.
fn inline_keys(text: &str, prefix: &str) -> Vec<String> {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no `{prefix}` in {text}"))
        + prefix.len();
    let body = &text[at..text[at..].find('}').unwrap() + at];
    let keys: Vec<String> = body
        .split(',')
        .map(|kv| kv.split(':').next().unwrap().trim().to_string())
        .collect();
    assert!(!keys.is_empty());
    keys
}

/// The README's download-and-check block and its installer lines, run as written against the
/// release scripts/dist.sh built, served on 127.0.0.1 in place of GitHub's release URL.
/// `cosign verify-blob` and `gh attestation verify` are not run: they need the release
/// workflow's Sigstore bundle and the network (the served copy holds an empty stand-in bundle
/// so the README's curl line, which downloads it, runs unchanged).
#[test]
fn readme_install_commands_run_against_the_release() {
    let Some(dist) = dist() else { return };
    let served = served_copy(&dist);
    fs::write(served.path().join("SHA256SUMS.sigstore.json"), "{}").unwrap();
    let server = FileServer::start(served.path());

    // Download and check by hand.
    let mut script = vec!["set -eu".to_string()];
    let mut skipped = Vec::new();
    for line in logical_lines(&readme_code_after("**Download and check by hand**").join("\n")) {
        let first = line.split_whitespace().next().unwrap_or("");
        match first {
            "cosign" | "gh" => skipped.push(first.to_string()),
            "#" | "" => {}
            _ if line.starts_with("base=") => script.push(format!("base={}", server.url())),
            _ => script.push(line),
        }
    }
    assert_eq!(skipped, ["cosign", "gh"]);
    let dir = tempdir("credfile-readme-");
    let out = Command::new("bash")
        .arg("-c")
        .arg(script.join("\n"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script:?}\n{text}");
    assert!(
        text.contains(&format!("{}: OK", archive_name())),
        "sha256sum -c checked the archive: {text}"
    );
    let bin = dir
        .path()
        .join(format!("credfile-{VERSION}-{TARGET}/credfile"));
    let v = stdout_of(Command::new(&bin).arg("--version"));
    assert!(v.starts_with(&format!("credfile {VERSION}\n")), "{v}");

    // The installer: the curl line with the server for GitHub, then the install line with
    // every optional flag given (--sha256 with the archive's line of SHA256SUMS).
    let installer = readme_code_after("**The installer**");
    let release = format!("https://github.com/OWNER/credfile/releases/download/v{VERSION}");
    let sums = fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    let hash = sums
        .lines()
        .find(|l| l.ends_with(&format!("  {}", archive_name())))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let dir = tempdir("credfile-readme-");
    let target = dir.path().join("bin");
    let install = installer[1]
        .replace("[--dir DIR]", &format!("--dir {}", target.display()))
        .replace("[--base-url URL]", &format!("--base-url {}", server.url()))
        .replace("[--sha256 HEX]", &format!("--sha256 {hash}"));
    assert!(
        !install.contains('['),
        "every optional flag filled: {install}"
    );
    let script = format!(
        "set -eu\n{}\n{install}\n",
        installer[0].replace(&release, &server.url())
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_of(Command::new(target.join("credfile")).arg("--version"));
    assert!(v.starts_with(&format!("credfile {VERSION}\n")), "{v}");
}
