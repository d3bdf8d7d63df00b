#!/usr/bin/env bash
# Expansion benchmark (issue 17, item 5): how `credfile apply` scales with the size of one
# `keys: all` set. For each size it seeds one JSON secret with that many keys in moto, then times
# a first apply (every file created), a second one (every file unchanged) and one after every
# value changed, in both layouts, under a descriptor limit far below the set's size.
#
# Linear time shows as a constant time per file across sizes; the descriptor limit shows that
# no run keeps a descriptor per file open.
#
# Knobs (environment): EXPAND_SIZES="1000 5000 10000" EXPAND_LAYOUTS="generation files"
#   EXPAND_NOFILE=256 (ulimit -n for each run) CREDFILE_BIN (default: target/release/credfile,
#   built when missing).
# Output: a Markdown table on stdout.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

SIZES="${EXPAND_SIZES:-1000 5000 10000}"
LAYOUTS="${EXPAND_LAYOUTS:-generation files}"
NOFILE="${EXPAND_NOFILE:-256}"
BIN="${CREDFILE_BIN:-}"
if [ -z "$BIN" ]; then
    credfile_log "building target/release/credfile"
    cargo build --release --locked >&2
    BIN="$PWD/target/release/credfile"
fi

credfile_ensure_venv
WORK="$(mktemp -d "${TMPDIR:-/tmp}/credfile-bench-expand.XXXXXX")"
cleanup() {
    credfile_stop_moto
    rm -rf "$WORK"
}
trap cleanup EXIT
credfile_start_moto
mapfile -t AWS_ENV < <(credfile_aws_env)

# Seeds secret `bench/<size>` with <size> keys; `round` changes every value.
seed() {
    "$CREDFILE_VENV/bin/python" - "$MOTO_ENDPOINT" "$1" "$2" <<'PY'
import json, sys, boto3
endpoint, size, round_ = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sm = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
value = json.dumps({f"k{i:05d}": f"{round_}{i}" for i in range(size)})
name = f"bench/{size}"
try:
    sm.create_secret(Name=name, SecretString=value)
except sm.exceptions.ResourceExistsException:
    sm.put_secret_value(SecretId=name, SecretString=value)
PY
}

# Prints the seconds one apply took; fails the script when the apply fails.
timed_apply() {
    local dir="$1" start end
    start="$(date +%s.%N)"
    if ! (ulimit -n "$NOFILE" && cd "$dir" && env -i "${AWS_ENV[@]}" PATH="$PATH" HOME="$dir" \
        "$BIN" apply --env bench >/dev/null 2>"$dir/stderr"); then
        cat "$dir/stderr" >&2
        credfile_die "apply failed ($dir)"
    fi
    end="$(date +%s.%N)"
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }'
}

printf '| layout | keys | first apply (s) | unchanged (s) | all changed (s) | µs per file (first) |\n'
printf '| --- | ---: | ---: | ---: | ---: | ---: |\n'
for size in $SIZES; do
    for layout in $LAYOUTS; do
        dir="$WORK/$layout-$size"
        mkdir -p "$dir"
        seed "$size" a
        cat >"$dir/credfile.yaml" <<EOF
version: 1
app: bench
defaults: { region: us-east-1, root: $dir/root, layout: $layout }
environments: { bench: {} }
files:
  - path: set
    secret: bench/$size
    keys: all
EOF
        first="$(timed_apply "$dir")"
        same="$(timed_apply "$dir")"
        seed "$size" b
        changed="$(timed_apply "$dir")"
        per="$(awk -v t="$first" -v n="$size" 'BEGIN { printf "%.0f", t * 1e6 / n }')"
        printf '| %s | %s | %s | %s | %s | %s |\n' "$layout" "$size" "$first" "$same" "$changed" "$per"
    done
done
