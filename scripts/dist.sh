#!/usr/bin/env bash
# Build the release artifacts into dist/ (or $CREDFILE_DIST_DIR), reproducibly:
#
#   credfile-V-x86_64-unknown-linux-gnu.tar.gz   binary, README.md, LICENSE, credfile.1, completions
#   credfile_V-1_amd64.deb, credfile-V-1.x86_64.rpm   the same binary bytes, man page, completions
#   credfile-V.cdx.json                          CycloneDX SBOM
#   install.sh                                   the verifying installer (the GitLab component uses it)
#   SHA256SUMS                                   over all of the above
#
# The binary is dynamically linked against glibc 2.17 (cargo-zigbuild, zig from PyPI), so it
# starts on RHEL/Rocky 8, Amazon Linux 2, Ubuntu 20.04, Debian 11 and newer while owner and group
# names still resolve through the host's NSS (LDAP, SSSD); the script fails if it needs any newer
# glibc symbol. cargo-auditable embeds the dependency list. Every tool is pinned below and
# installed on first use (PyPI into .venv-dist, crates.io into $CREDFILE_TOOLS_CACHE).
#
# Reproducible: SOURCE_DATE_EPOCH is the commit time, paths are remapped, archive members are
# sorted with fixed owner and mtime, gzip -n. Two runs from the same commit, in any checkout
# directory and target directory, give the same SHA256SUMS (tests/it/release.rs checks it).
#
# Env: CREDFILE_DIST_DIR (default dist), CARGO_TARGET_DIR (default target/dist),
#      CREDFILE_TOOLS_CACHE (default $HOME/.cache/credfile-tools).
# aarch64 and musl builds need rust-std for those targets, which only the release workflow
# (.github/workflows/release.yml) has: `--target TRIPLE` selects one there.
set -euo pipefail
# The whole script is one function, parsed before it runs: editing this file during a build
# (which takes minutes) cannot change what the running copy does.
main() {

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
started=$SECONDS

ZIGLANG_VERSION=0.17.0
CARGO_ZIGBUILD_VERSION=0.24.0
CARGO_AUDITABLE_VERSION=0.7.7
CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1
CARGO_CYCLONEDX_VERSION=0.5.9
GLIBC_BASELINE=2.17

target=x86_64-unknown-linux-gnu
while [ $# -gt 0 ]; do
    case "$1" in
        --target) target="$2"; shift 2 ;;
        *) echo "usage: scripts/dist.sh [--target TRIPLE]" >&2; exit 2 ;;
    esac
done

log() { printf '==> dist: %s\n' "$*" >&2; }
die() { printf 'dist: error: %s\n' "$*" >&2; exit 1; }

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
[ -n "$version" ] || die "cannot read the version from Cargo.toml"
grep -q "^default_version=$version\$" scripts/install.sh ||
    die "scripts/install.sh's default_version is not $version: update it with the release"
# The action and the component default to the release they belong to.
grep -q "default: $version\$" action.yml || die "action.yml's version input does not default to $version"
grep -q "default: $version\$" templates/credfile.yml || die "templates/credfile.yml's version input does not default to $version"
head -n 1 packaging/debian/changelog | grep -q "^credfile ($version-1) " ||
    die "packaging/debian/changelog does not start with an entry for $version-1"

dist="${CREDFILE_DIST_DIR:-$root/dist}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/dist}"
tools="${CREDFILE_TOOLS_CACHE:-$HOME/.cache/credfile-tools}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"

# --- pinned tools ------------------------------------------------------------------------------
venv="${CREDFILE_DIST_VENV:-$root/.venv-dist}"
stamp="$venv/.credfile-dist"
want="ziglang==$ZIGLANG_VERSION cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x "$venv/bin/cargo-zigbuild" ]; then
    log "installing $want into .venv-dist"
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086 # two requirements
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input $want
    printf '%s\n' "$want" >"$stamp"
fi
export PATH="$venv/bin:$tools/cargo/bin:$PATH"

cargo_tool() { # cargo_tool CRATE VERSION BINARY
    if cargo install --list --root "$tools/cargo" 2>/dev/null | grep -qx "$1 v$2:" &&
        [ -x "$tools/cargo/bin/$3" ]; then
        return 0
    fi
    log "installing $1 $2 into $tools/cargo (once)"
    cargo install --quiet --locked --root "$tools/cargo" --version "$2" "$1" \
        --target-dir "$tools/cargo-build"
}
cargo_tool cargo-auditable "$CARGO_AUDITABLE_VERSION" cargo-auditable

# --- reproducible build ------------------------------------------------------------------------
SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)"
export SOURCE_DATE_EPOCH
export CREDFILE_GLIBC_BASELINE="$GLIBC_BASELINE"
export CREDFILE_BUILD_COMMIT
CREDFILE_BUILD_COMMIT="$(git rev-parse HEAD)"
sysroot="$(rustc --print sysroot)"
# Every path that could reach the binary is mapped to a fixed name: the checkout, the target
# dir, cargo's registry and git checkouts, the toolchain (C objects of aws-lc-sys too).
remap=""
cflags=""
# The target dir comes last: it may lie inside the checkout, and the last match wins.
for pair in "$root=/build/credfile" "$cargo_home=/cargo" "$sysroot=/rustc" "$CARGO_TARGET_DIR=/target"; do
    remap="$remap --remap-path-prefix=$pair"
    cflags="$cflags -ffile-prefix-map=$pair"
done
export RUSTFLAGS="${RUSTFLAGS:-}$remap"
export CFLAGS="${CFLAGS:-}$cflags"
export CXXFLAGS="${CXXFLAGS:-}$cflags"
export ZIG_GLOBAL_CACHE_DIR="${ZIG_GLOBAL_CACHE_DIR:-$tools/zig-cache}"
export TZ=UTC LC_ALL=C

case "$target" in
    *-linux-gnu) zig_target="$target.$GLIBC_BASELINE" ;;
    *-linux-musl) zig_target="$target"; export CREDFILE_GLIBC_BASELINE="none (static musl)" ;;
    *) die "unsupported target $target" ;;
esac

log "building $target ($zig_target) at commit ${CREDFILE_BUILD_COMMIT:0:12}, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
build_started=$SECONDS
cargo auditable zigbuild --release --locked --target "$zig_target"
log "build took $((SECONDS - build_started))s"
out="$CARGO_TARGET_DIR/$target/release"
bin="$out/credfile"
[ -x "$bin" ] || die "no binary at $bin"

# --- gates ------------------------------------------------------------------------------------
if [[ $target == *-linux-gnu ]]; then
    newest="$(LANG=C readelf -W --version-info --dyn-syms "$bin" | sed -n 's/.*Name: GLIBC_\([0-9.]*\).*/\1/p' |
        sort -t . -k1,1n -k2,2n -k3,3n | tail -n 1)"
    [ -n "$newest" ] || die "readelf found no GLIBC symbol versions in $bin"
    if [ "$(printf '%s\n%s\n' "$newest" "$GLIBC_BASELINE" | sort -t . -k1,1n -k2,2n -k3,3n | tail -n 1)" != "$GLIBC_BASELINE" ]; then
        die "$bin needs GLIBC_$newest, newer than the $GLIBC_BASELINE baseline (readelf --version-info)"
    fi
    log "glibc ceiling holds: newest symbol version GLIBC_$newest <= $GLIBC_BASELINE"
    # Only the C runtime: anything else would be a dependency the packages do not declare.
    while read -r lib; do
        case "$lib" in
            libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | librt.so.1 | libgcc_s.so.1 | ld-linux-x86-64.so.2 | ld-linux-aarch64.so.1) ;;
            *) die "$bin links $lib, which is not part of glibc" ;;
        esac
    done < <(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
fi
readelf -S -W "$bin" | grep -q '\.dep-v0' || die "$bin has no .dep-v0 section (cargo-auditable)"

# The packaging tools (installed after the build, so a first run overlaps less with it).
cargo_tool cargo-deb "$CARGO_DEB_VERSION" cargo-deb
cargo_tool cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION" cargo-generate-rpm
cargo_tool cargo-cyclonedx "$CARGO_CYCLONEDX_VERSION" cargo-cyclonedx

# --- man page, completions (from the binary itself) -------------------------------------------
"$bin" man | gzip -9n >"$out/credfile.1.gz"
"$bin" completions bash >"$out/credfile.bash"
"$bin" completions zsh >"$out/_credfile"
"$bin" completions fish >"$out/credfile.fish"

rm -rf "$dist"
mkdir -p "$dist"

# --- tarball ----------------------------------------------------------------------------------
name="credfile-$version-$target"
stage="$CARGO_TARGET_DIR/stage/$name"
rm -rf "$CARGO_TARGET_DIR/stage"
mkdir -p "$stage/completions"
install -m 0755 "$bin" "$stage/credfile"
install -m 0644 README.md LICENSE "$stage/"
"$bin" man >"$stage/credfile.1"
chmod 0644 "$stage/credfile.1"
install -m 0644 "$out/credfile.bash" "$out/_credfile" "$out/credfile.fish" "$stage/completions/"
chmod 0755 "$stage" "$stage/completions"
(cd "$CARGO_TARGET_DIR/stage" &&
    tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
        --format=gnu -cf - "$name" | gzip -9n >"$dist/$name.tar.gz")

# --- packages (no rebuild: the same bytes) ----------------------------------------------------
# Distribution packages carry the glibc build only (the distributions' own libc).
if [[ $target == *-linux-gnu ]]; then
    case "$target" in
        x86_64-*) deb_arch=amd64; rpm_arch=x86_64 ;;
        aarch64-*) deb_arch=arm64; rpm_arch=aarch64 ;;
    esac
    cargo deb --no-build --no-strip --target "$target" --output "$dist/credfile_${version}-1_${deb_arch}.deb" >/dev/null
    # The .rpm records each file's mtime, clamped to --source-date only when newer: a checkout
    # older than its last commit would carry its own dates. Pin the two files taken from it.
    touch -d "@$SOURCE_DATE_EPOCH" "$root/README.md" "$root/LICENSE"
    cargo generate-rpm --target "$target" --target-dir "$CARGO_TARGET_DIR" \
        --source-date "$SOURCE_DATE_EPOCH" -o "$dist/credfile-${version}-1.${rpm_arch}.rpm"
fi

# --- SBOM -------------------------------------------------------------------------------------
sbom_dir="$CARGO_TARGET_DIR/sbom"
rm -rf "$sbom_dir"
mkdir -p "$sbom_dir"
cargo cyclonedx --format json --target "$target" --override-filename credfile-sbom >/dev/null
mv credfile-sbom.json "$sbom_dir/raw.json"
# Normalize what differs between runs: serial number, timestamp, the checkout path.
python3 - "$sbom_dir/raw.json" "$dist/credfile-$version.cdx.json" "$root" "$SOURCE_DATE_EPOCH" <<'PY'
import hashlib, json, sys, time, uuid
src, dst, root, epoch = sys.argv[1:5]
text = open(src).read().replace(root, "/build/credfile")
bom = json.loads(text)
bom.get("metadata", {})["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))
bom.pop("serialNumber", None)
body = json.dumps(bom, sort_keys=True, separators=(",", ":"))
bom["serialNumber"] = "urn:uuid:" + str(uuid.UUID(hashlib.sha256(body.encode()).hexdigest()[:32]))
with open(dst, "w") as f:
    json.dump(bom, f, indent=2, sort_keys=True)
    f.write("\n")
PY

install -m 0755 scripts/install.sh "$dist/install.sh"

# --- checksums --------------------------------------------------------------------------------
(
    cd "$dist"
    mapfile -t assets < <(find . -maxdepth 1 -type f -printf '%f\n' | LC_ALL=C sort)
    sha256sum "${assets[@]}" >SHA256SUMS
)
log "artifacts in $dist ($((SECONDS - started))s):"
(cd "$dist" && ls -l)
}

main "$@"
exit
