#!/bin/sh
# The action's install step (action.yml). POSIX sh.
#
# Hosted path (sudo: 'false'): the archive for the runner's platform comes from the release (or
# base-url) once per version into the runner's tool cache, and is installed into RUNNER_TEMP by
# scripts/install.sh, which checks it against the release's SHA256SUMS and against this action's
# own table (action/checksums.txt): the same verification path as every other install, plus a
# hash pinned by the action's commit. A cached archive is verified again on every use: the tool
# cache of a self-hosted runner is writable by every job it runs.
#
# Sudo path (sudo: 'true'): nothing is installed. The binary an admin installed root-owned at
# /usr/local/bin/credfile (installer, .deb or .rpm) is checked: root-owned, not group- or
# world-writable (nor its directories), and of the requested version. Installing into a
# runner-writable path and running that as root would hand root to every job on the runner.
#
# Environment: INPUT_VERSION, INPUT_BASE_URL, INPUT_SUDO, CREDFILE_REPO, RUNNER_ARCH,
# RUNNER_TEMP, RUNNER_TOOL_CACHE, GITHUB_OUTPUT. Outputs: path, version.
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
say() { printf 'credfile-action: %s\n' "$*" >&2; }
die() {
    # ::error:: makes the message the step's annotation.
    printf '::error title=credfile::%s\n' "$*"
    say "error: $*"
    exit 1
}

version="${INPUT_VERSION:-}"
case "$version" in
    '' | *[!0-9A-Za-z.+-]* | .*) die "invalid version input '$version' (expected something like 0.1.0)" ;;
esac
version="${version#v}"
: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set: run this from action.yml}"

output() { printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"; }

case "${INPUT_SUDO:-false}" in
    true)
        bin=/usr/local/bin/credfile
        [ -f "$bin" ] || die "sudo: 'true' needs credfile installed root-owned at $bin (scripts/install.sh as root, the .deb or the .rpm); it is not there"
        # The file and every directory above it: root-owned, writable by root only.
        p="$bin"
        while :; do
            # shellcheck disable=SC2046 # two fields: uid and octal mode
            set -- $(stat -Lc '%u %a' "$p")
            [ "$1" = 0 ] || die "sudo: $p is owned by uid $1, not root: refusing to run it with sudo"
            mode="$2"
            case "$mode" in
                *[2367][0-7] | *[2367]) die "sudo: $p is group- or world-writable (mode $mode): refusing to run it with sudo" ;;
            esac
            [ "$p" = / ] && break
            p="$(dirname "$p")"
        done
        reported="$("$bin" --version 2>/dev/null || true)"
        reported="${reported%%
*}"
        [ "$reported" = "credfile $version" ] ||
            die "sudo: $bin is '${reported:-not runnable}', not credfile $version: install that version as root, or set the version input"
        say "using the root-owned $bin ($reported) through sudo -n"
        output path "$bin"
        output version "$version"
        output sudo true
        exit 0
        ;;
    false) ;;
    *) die "the sudo input must be 'true' or 'false', not '${INPUT_SUDO}'" ;;
esac

case "${RUNNER_ARCH:-}" in
    X64) arch=x86_64 ;;
    ARM64) arch=aarch64 ;;
    *) die "unsupported runner architecture '${RUNNER_ARCH:-}': credfile runs on Linux X64 and ARM64" ;;
esac
libc=gnu
# An Alpine (musl) job container cannot run the glibc build.
for f in /lib/ld-musl-*; do
    [ -e "$f" ] && libc=musl
done
target="$arch-unknown-linux-$libc"
archive="credfile-$version-$target.tar.gz"

# This action's own pin for that archive: one row, or no install.
pinned=""
while read -r v t h rest; do
    case "$v" in '#'* | '') continue ;; esac
    if [ "$v" = "$version" ] && [ "$t" = "$target" ] && [ -z "$rest" ]; then
        [ -z "$pinned" ] || die "action/checksums.txt has two rows for $version $target"
        pinned="$h"
    fi
done <"$here/checksums.txt"
[ -n "$pinned" ] || die "this commit of the action has no checksum for credfile $version on $target (action/checksums.txt): use a version it lists, or pin a newer commit of the action"

: "${RUNNER_TEMP:?RUNNER_TEMP is not set}"
cache_root="${RUNNER_TOOL_CACHE:-$RUNNER_TEMP/tool-cache}"
cache="$cache_root/credfile/$version/$arch"
if [ -f "$cache.complete" ] && [ -f "$cache/$archive" ] && [ -f "$cache/SHA256SUMS" ]; then
    say "tool cache hit: $cache"
else
    base="${INPUT_BASE_URL:-}"
    if [ -z "$base" ]; then
        case "${CREDFILE_REPO:-}" in
            */*) base="https://github.com/$CREDFILE_REPO/releases/download/v$version" ;;
            *) die "set CREDFILE_REPO=OWNER/NAME (the repository publishing credfile releases) or the base-url input" ;;
        esac
    fi
    base="${base%/}"
    case "$base" in
        https://*) proto='=https' ;;
        http://127.0.0.1:* | http://localhost:*) proto='=http' ;;
        *) die "base-url must be https://: $base" ;;
    esac
    rm -rf "$cache" "$cache.complete"
    mkdir -p "$cache"
    for f in SHA256SUMS "$archive"; do
        curl --proto "$proto" --tlsv1.2 -fsSL --retry 3 -o "$cache/$f" "$base/$f" ||
            die "cannot download $base/$f"
    done
    # Optional: install.sh verifies it when cosign is on the runner.
    curl --proto "$proto" --tlsv1.2 -fsSL --retry 3 -o "$cache/SHA256SUMS.sigstore.json" \
        "$base/SHA256SUMS.sigstore.json" 2>/dev/null || rm -f "$cache/SHA256SUMS.sigstore.json"
fi

skip=""
[ -f "$cache/SHA256SUMS.sigstore.json" ] || skip=--skip-signature
dest="$RUNNER_TEMP/credfile-$version"
# The one verification path: SHA256SUMS and this action's pinned hash, both.
# shellcheck disable=SC2086 # $skip is empty or one flag
sh "$here/../scripts/install.sh" --version "$version" --target "$target" --dir "$dest" \
    --base-url "file://$cache" --sha256 "$pinned" $skip ||
    {
        rm -rf "$cache" "$cache.complete"
        die "credfile $version did not verify; the tool cache entry was removed"
    }
: >"$cache.complete"
output path "$dest/credfile"
output version "$version"
output sudo false
