//! The release artifacts scripts/dist.sh builds, checked as a user or a packager meets them.
//!
//! scripts/test.sh runs scripts/dist.sh first and exports `CREDFILE_TEST_DIST_DIR` (its dist/),
//! and `CREDFILE_TEST_DIST_REBUILD_DIR` (a second dist.sh run from another clone and target
//! directory). Without them these tests say so and pass: a plain `cargo test` has no release
//! build. tests/it/install.rs and tests/it/action.rs cover the install paths.

use crate::support;

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use support::dist::*;

// --- the artifacts -------------------------------------------------------------------------

#[test]
fn dist_has_every_artifact_listed_in_sha256sums() {
    let Some(dist) = dist() else { return };
    let expected = [
        archive_name(),
        deb_name(),
        rpm_name(),
        format!("credfile-{VERSION}.cdx.json"),
        "install.sh".to_string(),
    ];
    let sums = fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    let listed: Vec<&str> = sums
        .lines()
        .map(|l| l.split_once("  ").expect("sha256sum format").1)
        .collect();
    let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(
        listed, want,
        "SHA256SUMS lists exactly the artifacts, sorted"
    );
    for line in sums.lines() {
        let (hash, name) = line.split_once("  ").unwrap();
        assert_eq!(
            sha256_hex(&fs::read(dist.join(name)).unwrap()),
            hash,
            "{name}"
        );
    }
    // The README's first verification step, with the real tool.
    run(Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(&dist));
}

#[test]
fn tarball_is_sorted_root_owned_and_dated_by_the_commit() {
    let Some(dist) = dist() else { return };
    let listing = stdout_of(
        Command::new("tar")
            .args(["--numeric-owner", "--utc", "-tvzf"])
            .arg(dist.join(archive_name())),
    );
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    let top = format!("credfile-{VERSION}-{TARGET}/");
    let want: Vec<String> = [
        "",
        "LICENSE",
        "README.md",
        "completions/",
        "completions/_credfile",
        "completions/credfile.bash",
        "completions/credfile.fish",
        "credfile",
        "credfile.1",
    ]
    .iter()
    .map(|n| format!("{top}{n}"))
    .collect();
    assert_eq!(names, want, "{listing}");
    let commit_day = stdout_of(
        Command::new("git")
            .args(["log", "-1", "--format=%cd", "--date=format-local:%Y-%m-%d"])
            .env("TZ", "UTC")
            .current_dir(repo()),
    );
    for line in listing.lines() {
        assert!(line.contains(" 0/0 "), "owner 0/0: {line}");
        assert!(line.contains(commit_day.trim()), "mtime = commit: {line}");
    }
    assert!(listing.contains("-rwxr-xr-x 0/0"), "{listing}");
}

#[test]
fn tarball_binary_names_its_commit_target_and_glibc_baseline() {
    let Some(dist) = dist() else { return };
    let tmp = tempdir("credfile-x-");
    let bin = extract_binary(&dist, tmp.path());
    let version = stdout_of(Command::new(&bin).arg("--version"));
    let head = stdout_of(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(repo()),
    );
    let lines: Vec<&str> = version.lines().collect();
    assert_eq!(lines[0], format!("credfile {VERSION}"), "{version}");
    assert!(
        version.contains(&format!("commit: {}", head.trim())),
        "{version}"
    );
    assert!(version.contains(&format!("target: {TARGET}")), "{version}");
    assert!(version.contains("glibc baseline: 2.17"), "{version}");
    assert!(
        version.lines().any(|l| l.starts_with("build date: 20")),
        "{version}"
    );
    // The packaged man page and completions are what the binary prints.
    let top = tmp.path().join(format!("credfile-{VERSION}-{TARGET}"));
    let man = run(Command::new(&bin).arg("man")).stdout;
    assert_eq!(fs::read(top.join("credfile.1")).unwrap(), man);
    assert!(String::from_utf8_lossy(&man).contains(".TH credfile 1"));
    let bash = run(Command::new(&bin).args(["completions", "bash"])).stdout;
    assert_eq!(
        fs::read(top.join("completions/credfile.bash")).unwrap(),
        bash
    );
    assert_eq!(
        fs::read(top.join("LICENSE")).unwrap(),
        fs::read(repo().join("LICENSE")).unwrap()
    );
}

#[test]
fn glibc_ceiling_holds_and_only_glibc_is_linked() {
    let Some(dist) = dist() else { return };
    let tmp = tempdir("credfile-x-");
    let bin = extract_binary(&dist, tmp.path());
    let syms = stdout_of(
        Command::new("readelf")
            .args(["-W", "--version-info", "--dyn-syms"])
            .arg(&bin)
            .env("LANG", "C"),
    );
    let mut versions: Vec<(u32, u32)> = syms
        .split("GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let v: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((it.next()??, it.next().flatten().unwrap_or(0)))
        })
        .collect();
    versions.sort_unstable();
    let newest = *versions.last().expect("GLIBC symbol versions");
    assert!(newest <= (2, 17), "needs GLIBC_{}.{}", newest.0, newest.1);
    let dynamic = stdout_of(Command::new("readelf").arg("-d").arg(&bin));
    assert!(dynamic.contains("[libc.so.6]"), "dynamically linked: NSS");
    for line in dynamic.lines().filter(|l| l.contains("(NEEDED)")) {
        assert!(
            [
                "libc.so.6",
                "libm.so.6",
                "libpthread.so.0",
                "libdl.so.2",
                "librt.so.1",
                "libgcc_s.so.1",
                "ld-linux-x86-64.so.2"
            ]
            .iter()
            .any(|l| line.contains(&format!("[{l}]"))),
            "{line}"
        );
    }
}

#[test]
fn auditable_dependency_list_is_embedded() {
    let Some(dist) = dist() else { return };
    let tmp = tempdir("credfile-x-");
    let bin = extract_binary(&dist, tmp.path());
    let section = tmp.path().join("dep-v0");
    // --dump-section, not `-O binary`: the section is not loaded (no ALLOC flag), and
    // `-O binary` writes only loaded sections, which gives an empty file.
    run(Command::new("objcopy")
        .arg("--dump-section")
        .arg(format!(".dep-v0={}", section.display()))
        .arg(&bin)
        .arg(tmp.path().join("discard")));
    // cargo-auditable's format: zlib-compressed JSON {"packages": [{"name", "version", ...}]}.
    let compressed = fs::read(&section).unwrap();
    assert!(!compressed.is_empty(), ".dep-v0 is empty");
    let json = stdout_of(
        Command::new(support::test_python())
            .args([
                "-c",
                "import sys, zlib; sys.stdout.write(zlib.decompress(open(sys.argv[1], 'rb').read()).decode())",
            ])
            .arg(&section),
    );
    let deps: serde_json::Value = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> = deps["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for want in [
        "credfile",
        "aws-sdk-secretsmanager",
        "aws-sdk-sts",
        "aws-lc-sys",
    ] {
        assert!(names.contains(&want), "{want} not in .dep-v0: {names:?}");
    }
}

#[test]
fn sbom_lists_the_aws_sdk_crates() {
    let Some(dist) = dist() else { return };
    let sbom: serde_json::Value = serde_json::from_slice(
        &fs::read(dist.join(format!("credfile-{VERSION}.cdx.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    let text = sbom.to_string();
    for want in [
        "aws-sdk-secretsmanager",
        "aws-sdk-sts",
        "aws-config",
        "rustls",
    ] {
        assert!(text.contains(&format!("\"name\":\"{want}\"")), "{want}");
    }
    assert!(
        !text.contains(repo().to_str().unwrap()),
        "the SBOM names the build directory"
    );
}

#[test]
fn deb_holds_the_same_binary_man_page_and_completions_and_lintian_finds_no_error() {
    let Some(dist) = dist() else { return };
    let deb = dist.join(deb_name());
    let listing = stdout_of(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/bin/credfile",
        "./usr/share/man/man1/credfile.1.gz",
        "./usr/share/bash-completion/completions/credfile",
        "./usr/share/zsh/vendor-completions/_credfile",
        "./usr/share/fish/vendor_completions.d/credfile.fish",
        "./usr/share/doc/credfile/copyright",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} not in the .deb:\n{listing}"
        );
    }
    let tmp = tempdir("credfile-deb-");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(tmp.path()));
    let bin = extract_binary(&dist, tmp.path());
    assert_eq!(
        fs::read(tmp.path().join("usr/bin/credfile")).unwrap(),
        fs::read(&bin).unwrap(),
        "the .deb and the tarball ship the same bytes"
    );
    let depends = stdout_of(
        Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&deb)
            .arg("Depends"),
    );
    assert!(depends.contains("libc6 (>= 2."), "{depends}");
    let lintian = Command::new("lintian")
        .args(["--fail-on", "error", "--no-tag-display-limit"])
        .arg(&deb)
        .output()
        .expect("lintian (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&lintian.stdout);
    assert!(
        lintian.status.success() && !text.lines().any(|l| l.starts_with("E:")),
        "lintian:\n{text}{}",
        String::from_utf8_lossy(&lintian.stderr)
    );
}

#[test]
fn rpm_holds_the_same_binary_man_page_and_completions() {
    let Some(dist) = dist() else { return };
    let rpm = dist.join(rpm_name());
    let listing = stdout_of(Command::new("rpm").arg("-qlp").arg(&rpm));
    for path in [
        "/usr/bin/credfile",
        "/usr/share/man/man1/credfile.1.gz",
        "/usr/share/bash-completion/completions/credfile",
        "/usr/share/zsh/site-functions/_credfile",
        "/usr/share/fish/vendor_completions.d/credfile.fish",
        "/usr/share/licenses/credfile/LICENSE",
    ] {
        assert!(
            listing.lines().any(|l| l == path),
            "{path} not in the .rpm:\n{listing}"
        );
    }
    let info = stdout_of(Command::new("rpm").args(["-qip"]).arg(&rpm));
    assert!(info.contains(&format!("Version     : {VERSION}")), "{info}");
    // Same bytes as the tarball: rpm2archive | tar. (Debian's rpm2cpio writes the whole payload
    // but exits 1 on these packages; rpm2archive, from the same rpm, exits 0.)
    let tmp = tempdir("credfile-rpm-");
    let archive = run(Command::new("rpm2archive")
        .arg("-")
        .stdin(fs::File::open(&rpm).unwrap()))
    .stdout;
    let mut child = Command::new("tar")
        .args(["-xzf", "-"])
        .current_dir(tmp.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("tar");
    child.stdin.take().unwrap().write_all(&archive).unwrap();
    assert!(child.wait().unwrap().success());
    let bin = extract_binary(&dist, tmp.path());
    assert_eq!(
        fs::read(tmp.path().join("usr/bin/credfile")).unwrap(),
        fs::read(&bin).unwrap(),
        "the .rpm and the tarball ship the same bytes"
    );
}

/// scripts/test.sh ran dist.sh a second time from a fresh clone in another directory with
/// another target directory: every artifact must come out byte-identical.
#[test]
fn a_second_dist_run_elsewhere_gives_an_identical_sha256sums() {
    let Some(dist) = dist() else { return };
    let Some(again) = std::env::var_os("CREDFILE_TEST_DIST_REBUILD_DIR").map(PathBuf::from) else {
        eprintln!(
            "skipped: CREDFILE_TEST_DIST_REBUILD_DIR is not set (scripts/test.sh sets it unless CREDFILE_SKIP_REBUILD=1)"
        );
        return;
    };
    let first = fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    let second = fs::read_to_string(again.join("SHA256SUMS")).unwrap();
    assert!(!first.is_empty());
    assert_eq!(
        first, second,
        "dist.sh is not reproducible: the two SHA256SUMS differ"
    );
}
