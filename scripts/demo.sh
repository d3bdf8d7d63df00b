#!/usr/bin/env bash
# End-to-end demo against a local moto (no AWS account needed): installs moto
# into .venv (nothing else), builds credfile with the `demo` profile (no LTO, no
# optimisation: minutes, not the release build's quarter hour on 2 cores),
# seeds fake staging secrets, applies pipeline-examples/credfile.yaml into a
# fresh directory of this run under /dev/shm (memory, outside any git work tree,
# as credfile wants; removed at the end; CREDFILE_DEMO_ROOT=DIR uses DIR and
# keeps it), lists the result, and applies again (all unchanged).
# Each phase prints a line with the time since the start; cargo prints its own
# progress. Prints no secret value: the files are listed, never shown.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

demo_home=""
demo_dir=""
cleanup() {
    credfile_stop_moto
    if [ -n "$demo_home" ]; then rm -rf "$demo_home"; fi
    if [ -n "$demo_dir" ]; then rm -rf "$demo_dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$SECONDS
phase() { credfile_log "[$(printf '%d:%02d' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)))] $*"; }

manifest=pipeline-examples/credfile.yaml
if [ -n "${CREDFILE_DEMO_ROOT:-}" ]; then
    out="$CREDFILE_DEMO_ROOT"
else
    # A directory of this run only: two demos on one host never share it.
    base=/dev/shm
    [ -d "$base" ] && [ -w "$base" ] || base="${TMPDIR:-/tmp}"
    demo_dir="$(mktemp -d "$base/credfile-demo.XXXXXX")"
    out="$demo_dir/staging"
fi

phase "moto (the local Secrets Manager) into .venv: ${CREDFILE_DEMO_PY_REQUIREMENTS[*]}"
credfile_ensure_demo_venv

# The one long phase on a fresh clone: cargo prints each crate as it compiles (a progress bar
# on a terminal).
phase "cargo build --locked --profile demo  (no LTO, no optimisation; a few minutes the first time, seconds after)"
cargo build --locked --profile demo
credfile="${CARGO_TARGET_DIR:-target}/demo/credfile"

phase "starting moto"
credfile_start_moto
credfile_log "moto on $MOTO_ENDPOINT"

demo_home="$(mktemp -d "${TMPDIR:-/tmp}/credfile-demo-home.XXXXXX")"
mapfile -t aws_env < <(credfile_aws_env)
# Every process that talks to moto gets only this environment.
hermetic=(env -i "PATH=$PATH" "HOME=$demo_home" "${aws_env[@]}")

phase "seeding demo/staging/{db,api-key,tls} (fake values)"
"${hermetic[@]}" "$CREDFILE_VENV/bin/python" - <<'PY'
import base64, json, os, secrets
import boto3

sm = boto3.client(
    "secretsmanager",
    endpoint_url=os.environ["AWS_ENDPOINT_URL"],
    region_name=os.environ["AWS_REGION"],
)
fake_key = (
    "-----BEGIN PRIVATE KEY-----\n"
    "DEMO-ONLY-NOT-A-REAL-KEY-" + secrets.token_hex(16) + "\n"
    "-----END PRIVATE KEY-----\n"
)
seed = {
    "demo/staging/db": json.dumps({
        "username": "payments_app",
        "password": "demo-" + secrets.token_hex(12),
        "host": "db.staging.internal",
    }),
    "demo/staging/api-key": "demo-api-key-" + secrets.token_hex(12),
    "demo/staging/tls": base64.b64encode(fake_key.encode()).decode(),
}
for name, value in seed.items():
    arn = sm.create_secret(Name=name, SecretString=value)["ARN"]
    print(f"    {name}  ->  {arn}")
PY

if [ -z "$demo_dir" ]; then
    rm -rf "$out"
    mkdir -p "$(dirname "$out")"
fi

phase "credfile apply --env staging  (first run: files are created)"
"${hermetic[@]}" "$credfile" apply --env staging --manifest "$manifest" --root "$out"

phase "ls -lR $out $out/current/  (stable links, then the live generation they point into)"
ls -lR "$out" "$out/current/"

phase "credfile apply --env staging  (second run: nothing changes)"
"${hermetic[@]}" "$credfile" apply --env staging --manifest "$manifest" --root "$out"

if [ -n "$demo_dir" ]; then
    phase "demo done; $out is removed with moto (CREDFILE_DEMO_ROOT=DIR keeps the files)"
else
    phase "demo done; files are in $out (moto is stopped, so the demo secrets are gone)"
fi
