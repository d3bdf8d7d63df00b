#!/usr/bin/env bash
# End-to-end demo against a local moto (no AWS account needed):
# seeds fake staging secrets, applies pipeline-examples/credfile.yaml into
# /dev/shm/credfile-demo/staging (memory, outside any git work tree, as
# credfile wants; CREDFILE_DEMO_ROOT overrides), lists the result, and applies
# again (all unchanged).
# Prints no secret value: the files are listed, never shown.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

demo_home=""
cleanup() {
    credfile_stop_moto
    [ -n "$demo_home" ] && rm -rf "$demo_home"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

manifest=pipeline-examples/credfile.yaml
out="${CREDFILE_DEMO_ROOT:-/dev/shm/credfile-demo/staging}"

credfile_ensure_venv
credfile_start_moto
credfile_log "moto on $MOTO_ENDPOINT"

demo_home="$(mktemp -d "${TMPDIR:-/tmp}/credfile-demo-home.XXXXXX")"
mapfile -t aws_env < <(credfile_aws_env)
# Every process that talks to moto gets only this environment.
hermetic=(env -i "PATH=$PATH" "HOME=$demo_home" "${aws_env[@]}")

credfile_log "seeding demo/staging/{db,api-key,tls} (fake values)"
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

credfile_log "cargo build --release --locked"
cargo build --release --locked --quiet
credfile=target/release/credfile

rm -rf "$out"
mkdir -p "$(dirname "$out")"

credfile_log "credfile apply --env staging  (first run: files are created)"
"${hermetic[@]}" "$credfile" apply --env staging --manifest "$manifest" --root "$out"

credfile_log "ls -lR $out $out/current/  (stable links, then the live generation they point into)"
ls -lR "$out" "$out/current/"

credfile_log "credfile apply --env staging  (second run: nothing changes)"
"${hermetic[@]}" "$credfile" apply --env staging --manifest "$manifest" --root "$out"

credfile_log "demo done; files are in $out (moto is stopped, so the demo secrets are gone)"
