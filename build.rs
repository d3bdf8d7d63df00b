//! Build metadata for `credfile --version`: the commit, the build date, the target triple and
//! the glibc baseline the binary was linked against. A user holding a binary (or a bug report
//! quoting one) must be able to tell exactly which source it came from and where it runs.
//!
//! Reproducible by design: the date is `SOURCE_DATE_EPOCH` when set (scripts/dist.sh sets it to
//! the commit time), else the commit's own date, never the clock; nothing depends on the
//! checkout directory.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-env-changed=CREDFILE_GLIBC_BASELINE");
    println!("cargo:rerun-if-env-changed=CREDFILE_BUILD_COMMIT");
    // A new commit changes HEAD (detached) or the branch ref it points at.
    for path in ["HEAD", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(p) = git(&["rev-parse", "--git-path", &head_ref])
    {
        println!("cargo:rerun-if-changed={p}");
    }

    // A source tarball has no .git: the caller may say which commit it is.
    let commit = std::env::var("CREDFILE_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());

    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .or_else(|| git(&["log", "-1", "--format=%ct"]).and_then(|s| s.parse().ok()));
    let date = epoch.map_or_else(|| "unknown".to_string(), civil_date);

    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    // The linker decides the baseline (cargo-zigbuild's `.2.17` suffix never reaches TARGET):
    // scripts/dist.sh says which one it asked for and checks the result with readelf.
    let glibc = match std::env::var("CREDFILE_GLIBC_BASELINE") {
        Ok(v) if !v.is_empty() => v,
        _ if target.ends_with("-gnu") => "the build host's (not a release build)".to_string(),
        _ => "none (static)".to_string(),
    };

    println!("cargo:rustc-env=CREDFILE_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=CREDFILE_BUILD_DATE={date}");
    println!("cargo:rustc-env=CREDFILE_BUILD_TARGET={target}");
    println!("cargo:rustc-env=CREDFILE_BUILD_GLIBC={glibc}");
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// `YYYY-MM-DD` (UTC) of a Unix time, without a date crate (Howard Hinnant's civil_from_days).
fn civil_date(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
