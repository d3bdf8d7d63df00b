#!/bin/sh
# credfile installer (POSIX sh: dash, busybox sh, bash).
#
#   sh install.sh [--version V] [--dir DIR] [--base-url URL] [--sha256 HEX] [--target TRIPLE]
#                 [--skip-signature]
#
# Downloads credfile-V-TRIPLE.tar.gz and SHA256SUMS, checks the archive's SHA-256 against its
# line in SHA256SUMS (and against --sha256 when given), verifies SHA256SUMS' signature bundle
# when cosign is on PATH, then installs the binary atomically (one rename). It fails closed:
# no SHA-256 tool, no SHA256SUMS, no line for the archive or a wrong hash, and nothing is
# installed; the target directory is left exactly as it was. It refuses a target directory
# that anyone but the installing user (and root) could change, along the whole path.
#
# Environment: CREDFILE_REPO (OWNER/NAME of the GitHub repository holding the releases),
# CREDFILE_VERSION, CREDFILE_INSTALL_DIR, CREDFILE_BASE_URL, CREDFILE_SHA256, CREDFILE_TARGET
# are the defaults of the flags above.
set -eu

# The release this installer belongs to; scripts/dist.sh checks it against Cargo.toml.
default_version=0.1.0
# Forks and mirrors set CREDFILE_REPO (or pass --base-url); the placeholder fails loudly.
repo="${CREDFILE_REPO:-CREDFILE-OWNER-UNSET/credfile}"

version="${CREDFILE_VERSION:-$default_version}"
dir="${CREDFILE_INSTALL_DIR:-}"
base_url="${CREDFILE_BASE_URL:-}"
want_sha="${CREDFILE_SHA256:-}"
target="${CREDFILE_TARGET:-}"
skip_signature=0

say() { printf 'credfile-install: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}
usage() {
    sed -n '2,16s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --version) [ $# -ge 2 ] || usage; version="$2"; shift 2 ;;
        --version=*) version="${1#*=}"; shift ;;
        --dir) [ $# -ge 2 ] || usage; dir="$2"; shift 2 ;;
        --dir=*) dir="${1#*=}"; shift ;;
        --base-url) [ $# -ge 2 ] || usage; base_url="$2"; shift 2 ;;
        --base-url=*) base_url="${1#*=}"; shift ;;
        --sha256) [ $# -ge 2 ] || usage; want_sha="$2"; shift 2 ;;
        --sha256=*) want_sha="${1#*=}"; shift ;;
        --target) [ $# -ge 2 ] || usage; target="$2"; shift 2 ;;
        --target=*) target="${1#*=}"; shift ;;
        --skip-signature) skip_signature=1; shift ;;
        -h | --help) usage ;;
        *) say "unknown argument: $1"; usage ;;
    esac
done

# A version is a file-name component and part of a URL: nothing that could escape either.
case "$version" in
    '' | *[!0-9A-Za-z.+-]* | .* ) die "invalid --version '$version' (expected something like $default_version)" ;;
esac
version="${version#v}"

if [ -z "$dir" ]; then
    if [ "$(id -u)" = 0 ]; then
        dir=/usr/local/bin
    else
        [ -n "${HOME:-}" ] || die "HOME is not set; pass --dir"
        dir="$HOME/.local/bin"
    fi
fi

# --- platform -------------------------------------------------------------------------------
if [ -z "$target" ]; then
    case "$(uname -s)" in
        Linux) ;;
        *) die "unsupported operating system $(uname -s): credfile is built for Linux only" ;;
    esac
    case "$(uname -m)" in
        x86_64 | amd64) arch=x86_64 ;;
        aarch64 | arm64) arch=aarch64 ;;
        *) die "unsupported architecture $(uname -m): releases exist for x86_64 and aarch64" ;;
    esac
    # glibc >= 2.17 gets the gnu build (it resolves owners through NSS: LDAP, SSSD); musl hosts
    # (Alpine) and anything older get the static musl build.
    libc=musl
    glibc="$(getconf GNU_LIBC_VERSION 2>/dev/null || true)"
    case "$glibc" in
        "glibc "*)
            glibc="${glibc#glibc }"
            major="${glibc%%.*}"
            minor="${glibc#*.}"
            minor="${minor%%.*}"
            case "$major$minor" in *[!0-9]*) major=0 ;; esac
            if [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 17 ]; }; then
                libc=gnu
            fi
            ;;
    esac
    target="$arch-unknown-linux-$libc"
fi
case "$target" in
    x86_64-unknown-linux-gnu | aarch64-unknown-linux-gnu | x86_64-unknown-linux-musl | aarch64-unknown-linux-musl) ;;
    *) die "unsupported target '$target'" ;;
esac

archive="credfile-$version-$target.tar.gz"

if [ -z "$base_url" ]; then
    case "$repo" in
        CREDFILE-OWNER-UNSET/*)
            die "no release repository is configured: set CREDFILE_REPO=OWNER/NAME (the GitHub repository publishing credfile releases) or pass --base-url" ;;
    esac
    base_url="https://github.com/$repo/releases/download/v$version"
fi
base_url="${base_url%/}"

# Plain HTTP only on the loopback interface (tests, an SSH tunnel): anywhere else the checksum
# file would come over the same unauthenticated channel as the archive.
case "$base_url" in
    https://*) proto='=https' ;;
    http://127.0.0.1:* | http://127.0.0.1/* | http://localhost:* | http://localhost/* | http://\[::1\]:* | http://\[::1\]/*) proto='=http' ;;
    file:///*) proto='file' ;;
    *) die "--base-url must be https:// (or file:///DIR, or http:// on 127.0.0.1): $base_url" ;;
esac

# --- tools (checked before anything is downloaded) ------------------------------------------
if command -v sha256sum >/dev/null 2>&1; then
    sha_tool=sha256sum
elif command -v shasum >/dev/null 2>&1; then
    sha_tool=shasum
elif command -v openssl >/dev/null 2>&1; then
    sha_tool=openssl
else
    die "no SHA-256 tool found (sha256sum, shasum or openssl): refusing to install a binary that cannot be verified; install coreutils (or perl's shasum, or openssl) and run again"
fi
if [ "$proto" != file ]; then
    if command -v curl >/dev/null 2>&1; then
        fetch_tool=curl
    elif command -v wget >/dev/null 2>&1; then
        fetch_tool=wget
    else
        die "neither curl nor wget is installed"
    fi
fi
command -v tar >/dev/null 2>&1 || die "tar is not installed"
# The staging file's name must be unpredictable and created exclusively: without mktemp there is
# no portable way to do that in sh, so no install.
command -v mktemp >/dev/null 2>&1 ||
    die "mktemp is not installed: refusing to install without an unpredictable staging file; install coreutils (or busybox) and run again"
case "$want_sha" in
    '') ;;
    *[!0-9a-f]*) die "--sha256 must be 64 lowercase hex digits" ;;
    *) [ ${#want_sha} -eq 64 ] || die "--sha256 must be 64 lowercase hex digits" ;;
esac

sha256_of() {
    case "$sha_tool" in
        sha256sum) out="$(sha256sum <"$1")" ;;
        shasum) out="$(shasum -a 256 <"$1")" ;;
        openssl) out="$(openssl dgst -sha256 <"$1")"; out="${out##*= }"; out="${out##* }" ;;
    esac
    # Word splitting on purpose: the hash is the first field.
    # shellcheck disable=SC2086
    set -- $out
    printf '%s\n' "$1"
}

# --- the target directory (checked before anything is downloaded) ----------------------------
# Whoever can write the target directory, or any directory above it, can swap the staging file
# (or the directory) for a link between two of our steps and make this install write through it:
# as root, that overwrites any file. So every directory on the way is owned by root or by the
# installing user and writable by nobody else (a sticky directory such as /tmp may be, above the
# target); a link on the way must be ours or root's too. The target itself may be writable by
# others only when it is sticky and ours. Directories are read with `ls -ldn` (POSIX).
umask 022
me="$(id -u)"
case "$dir" in
    /*) ;;
    *) dir="$PWD/$dir" ;;
esac

entry() { # entry PATH: sets entry_mode and entry_uid (of PATH itself, links not followed)
    set -f
    # shellcheck disable=SC2046 # fields of ls -ldn on purpose; globbing is off
    set -- $(ls -ldn "$1" 2>/dev/null)
    set +f
    [ $# -ge 3 ] || die "cannot read the owner and mode of $1"
    entry_mode="$1"
    entry_uid="$3"
}

owned_by_us() { # owned_by_us PATH WHAT: PATH (as read by entry) belongs to root or the installer
    case "$entry_uid" in
        0 | "$me") ;;
        *) die "refusing to install into $dir: $2 $1 is owned by uid $entry_uid, not by root or you (uid $me), and its owner could redirect the install; pass --dir with a directory only you or root can write" ;;
    esac
}

# trusted_chain DIR: DIR (a physical path) and every directory above it.
trusted_chain() {
    d="$1"
    while :; do
        entry "$d"
        owned_by_us "$d" "directory"
        case "$entry_mode" in
            ?????w* | ????????w*)
                case "$entry_mode" in
                    ?????????[tT]*) ;;
                    *) die "refusing to install into $dir: $d is writable by group or others ($entry_mode) and not sticky, so another user could plant links there; remove their write access (chmod go-w $d) or pass --dir with a directory only you or root can write" ;;
                esac
                ;;
        esac
        [ "$d" = / ] && break
        d="${d%/*}"
        [ -n "$d" ] || d=/
    done
}

# safe_dir PATH: walks PATH from /, one component at a time, checking every directory and link
# it passes. Sets safe_dir to the physical path of the deepest existing directory and
# safe_rest to the components still to be created ("" when PATH exists).
safe_dir() {
    safe_dir=/
    safe_rest=""
    trusted_chain /
    rest="${1#/}"
    while [ -n "$rest" ]; do
        case "$rest" in
            */*) comp="${rest%%/*}"; rest="${rest#*/}" ;;
            *) comp="$rest"; rest="" ;;
        esac
        case "$comp" in '' | .) continue ;; esac
        next="${safe_dir%/}/$comp"
        if [ -L "$next" ]; then
            entry "$next"
            owned_by_us "$next" "the link"
            [ -e "$next" ] || die "refusing to install into $dir: $next is a link to nothing"
        elif [ ! -e "$next" ]; then
            safe_rest="$comp${rest:+/$rest}"
            return 0
        fi
        [ -d "$next" ] || die "cannot install into $dir: $next is not a directory"
        safe_dir="$(cd -P "$next" && pwd -P)" || die "cannot enter $next"
        trusted_chain "$safe_dir"
    done
}

# The target itself: writable by group or others only when sticky and the installer's.
check_target() {
    entry "$1"
    case "$entry_mode" in
        ?????w* | ????????w*)
            case "$entry_mode:$entry_uid" in
                ?????????[tT]*:"$me") ;;
                *) die "refusing to install into $1: it is writable by group or others ($entry_mode, owner uid $entry_uid) and not a sticky directory of yours, so another user could plant links there; remove their write access (chmod go-w $1) or pass --dir with a directory only you or root can write" ;;
            esac
            ;;
    esac
}

safe_dir "$dir"
if [ -z "$safe_rest" ]; then check_target "$safe_dir"; fi

work="$(mktemp -d "${TMPDIR:-/tmp}/credfile-install.XXXXXX")"
staged=""
cleanup() {
    rm -rf "$work"
    if [ -n "$staged" ]; then rm -f "$staged"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fetch() { # fetch NAME: $base_url/NAME -> $work/NAME
    case "$proto" in
        file)
            src="${base_url#file://}/$1"
            [ -f "$src" ] && cp "$src" "$work/$1"
            ;;
        *)
            if [ "$fetch_tool" = curl ]; then
                curl --proto "$proto" --tlsv1.2 -fsSL --retry 3 -o "$work/$1" "$base_url/$1"
            else
                wget -q -O "$work/$1" "$base_url/$1"
            fi
            ;;
    esac
}

say "installing credfile $version ($target) from $base_url"
fetch SHA256SUMS || die "cannot download SHA256SUMS from $base_url: refusing to install without checksums"
fetch "$archive" || die "cannot download $archive from $base_url"

# Signature of SHA256SUMS: verified whenever cosign is available (it is optional; the checksum
# check below never is).
if command -v cosign >/dev/null 2>&1 && [ "$skip_signature" = 0 ]; then
    fetch SHA256SUMS.sigstore.json ||
        die "cosign is installed but SHA256SUMS.sigstore.json is missing at $base_url (pass --skip-signature for a mirror that does not carry it)"
    case "$repo" in
        CREDFILE-OWNER-UNSET/*) die "cannot verify the signature: set CREDFILE_REPO=OWNER/NAME (or pass --skip-signature)" ;;
    esac
    cosign verify-blob --bundle "$work/SHA256SUMS.sigstore.json" \
        --certificate-identity "https://github.com/$repo/.github/workflows/release.yml@refs/tags/v$version" \
        --certificate-oidc-issuer https://token.actions.githubusercontent.com \
        "$work/SHA256SUMS" >/dev/null 2>&1 ||
        die "the signature of SHA256SUMS does not verify (cosign verify-blob): not installing"
    say "SHA256SUMS signature verified (cosign)"
fi

# Exactly one line "HEX  NAME" (or "HEX *NAME") for the archive.
expected=""
count=0
while IFS= read -r line || [ -n "$line" ]; do
    set -f
    # shellcheck disable=SC2086 # split into fields on purpose; globbing is off
    set -- $line
    set +f
    [ $# -eq 2 ] || continue
    name="${2#\*}"
    if [ "$name" = "$archive" ]; then
        count=$((count + 1))
        expected="$1"
    fi
done <"$work/SHA256SUMS"
[ "$count" -ge 1 ] || die "SHA256SUMS has no line for $archive: not installing"
[ "$count" -eq 1 ] || die "SHA256SUMS has $count lines for $archive: not installing"
case "$expected" in
    *[!0-9a-f]*) die "SHA256SUMS's line for $archive is malformed (not lowercase hex): not installing" ;;
esac
[ ${#expected} -eq 64 ] || die "SHA256SUMS's line for $archive is malformed (not 64 hex digits): not installing"

actual="$(sha256_of "$work/$archive")"
if [ "$actual" != "$expected" ]; then
    die "checksum mismatch for $archive: SHA256SUMS says $expected, the download is $actual: not installing"
fi
if [ -n "$want_sha" ] && [ "$actual" != "$want_sha" ]; then
    die "checksum mismatch for $archive: the pinned --sha256 is $want_sha, the download is $actual: not installing"
fi
say "checksum verified ($sha_tool): $actual"

mkdir "$work/x"
(cd "$work/x" && tar -xzf "../$archive") || die "cannot unpack $archive"
bin="$work/x/credfile-$version-$target/credfile"
[ -f "$bin" ] || die "$archive holds no credfile-$version-$target/credfile"
chmod 0755 "$bin"
# A binary that does not start here (wrong libc, noexec TMPDIR aside) is not worth installing.
reported="$("$bin" --version 2>/dev/null || true)"
reported="${reported%%
*}"
case "$reported" in
    "credfile $version") ;;
    "") die "the archive's binary does not run on this host ($bin --version failed): not installing" ;;
    *) die "the archive's binary reports '$reported', not credfile $version: not installing" ;;
esac

# Atomic install: stage next to the target (same filesystem) under a name nobody can guess,
# created exclusively (mktemp: O_EXCL, mode 0600), then one rename. The directory is checked
# again now that it exists; from here on only its physical path is used.
safe_dir "$dir"
if [ -n "$safe_rest" ]; then
    mkdir -p "${safe_dir%/}/$safe_rest" || die "cannot create $dir"
    safe_dir "$dir"
    [ -z "$safe_rest" ] || die "cannot create $dir"
fi
check_target "$safe_dir"
staged="$(mktemp "${safe_dir%/}/.credfile.install.XXXXXXXXXX")" || die "cannot create a staging file in $dir"
cp "$bin" "$staged" || die "cannot write to $dir"
chmod 0755 "$staged"
# mv into a directory (or a link to one) named credfile would put the binary inside it.
dest="${safe_dir%/}/credfile"
if [ -L "$dest" ] || [ -d "$dest" ]; then
    die "$dir/credfile is a link or a directory: remove it, then install again"
fi
mv -f "$staged" "$dest" || die "cannot install into $dir"
staged=""
say "installed $dir/credfile"
case ":${PATH:-}:" in
    *":$dir:"*) ;;
    *) say "note: $dir is not on PATH" ;;
esac
