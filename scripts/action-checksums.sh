#!/bin/sh
# Print the action/checksums.txt rows (VERSION TARGET SHA256) for a release's SHA256SUMS:
#
#   cosign verify-blob --bundle SHA256SUMS.sigstore.json ... SHA256SUMS   # first: README, Install
#   sh scripts/action-checksums.sh SHA256SUMS >>action/checksums.txt
#
# Only the archives credfile-VERSION-TARGET.tar.gz become rows; a malformed line is an error.
set -eu
[ $# -eq 1 ] || { echo "usage: scripts/action-checksums.sh SHA256SUMS" >&2; exit 2; }
found=0
while read -r hash name rest; do
    [ -z "$rest" ] || { echo "action-checksums: malformed line for $name" >&2; exit 1; }
    name="${name#\*}"
    case "$name" in
        credfile-*-*-unknown-linux-*.tar.gz) ;;
        *) continue ;;
    esac
    case "$hash" in
        *[!0-9a-f]*) echo "action-checksums: malformed hash for $name" >&2; exit 1 ;;
    esac
    [ ${#hash} -eq 64 ] || { echo "action-checksums: malformed hash for $name" >&2; exit 1; }
    rest="${name#credfile-}"
    rest="${rest%.tar.gz}"
    # VERSION has no '-' before the target (x86_64-unknown-linux-gnu, aarch64-...).
    version="${rest%%-*}"
    target="${rest#*-}"
    printf '%s %s %s\n' "$version" "$target" "$hash"
    found=$((found + 1))
done <"$1"
[ "$found" -gt 0 ] || { echo "action-checksums: no credfile archives in $1" >&2; exit 1; }
