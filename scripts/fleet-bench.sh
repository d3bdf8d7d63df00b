#!/usr/bin/env bash
# Fleet benchmark (issue 12): FLEET_HOSTS hosts start `credfile apply` at once, each a process with
# its own root and its own identity (IRSA-style web identity: its own role ARN, session name and
# token file -> one AssumeRoleWithWebIdentity each), against moto behind the project's
# proxy with quotas (examples/proxy.rs --scale, the tests' proxy: token buckets for BatchGetSecretValue,
# GetSecretValue and STS at the real quotas divided by FLEET_SCALE, AWS-shaped Throttling answers).
#
# For each --fetch mode (batch, single, auto) and each jitter (0 and FLEET_JITTER seconds) it
# prints: time until the last host is done, calls of each kind that reached moto, throttled calls,
# hosts failed, hosts with an incomplete set, and the floor the scaled quotas allow.
#
# Knobs (environment): FLEET_HOSTS=200 FLEET_SECRETS=50 FLEET_SCALE=50 FLEET_JITTER=20
#   FLEET_MODES="batch single auto" FLEET_JITTERS="0 $FLEET_JITTER" FLEET_ATTEMPTS=3 (credfile's default)
#   CREDFILE_BIN (default: a release build) FLEET_CHECK=1: exit 1 unless every host of every
#   run succeeded with a complete set (scripts/test.sh runs a small configuration this way).
# Output: a Markdown table on stdout; raw per-run data in target/fleet-bench/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

HOSTS="${FLEET_HOSTS:-200}"
SECRETS="${FLEET_SECRETS:-50}"
SCALE="${FLEET_SCALE:-50}"
JITTER="${FLEET_JITTER:-20}"
MODES="${FLEET_MODES:-batch single auto}"
JITTERS="${FLEET_JITTERS:-0 $JITTER}"
ATTEMPTS="${FLEET_ATTEMPTS:-3}"
RETRY_MODE="${FLEET_RETRY_MODE:-standard}"
CHECK="${FLEET_CHECK:-0}"

credfile_ensure_venv
PY="$CREDFILE_VENV/bin/python"
if [ -z "${CREDFILE_BIN:-}" ]; then
    credfile_log "cargo build --release"
    cargo build --release --locked --quiet
    CREDFILE_BIN="$CREDFILE_ROOT/target/release/credfile"
fi

out_dir="$CREDFILE_ROOT/target/fleet-bench"
mkdir -p "$out_dir"
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base="${TMPDIR:-/tmp}"
work="$(mktemp -d "$base/credfile-fleet.XXXXXX")"
cleanup() {
    credfile_stop_proxy
    credfile_stop_moto
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

credfile_start_moto
# moto answers one request per thread: 16 in flight serve a fleet faster than hundreds.
credfile_start_proxy "$MOTO_ENDPOINT" "$work" --scale "$SCALE" --upstream-slots 16
PROXY="$PROXY_ENDPOINT"
credfile_log "moto $MOTO_ENDPOINT, quota proxy $PROXY (scale 1/$SCALE), $HOSTS hosts x $SECRETS secrets"

# Seed straight into moto (no quota): SECRETS secrets, their values kept to check every file.
mkdir -p "$work/expected"
"$PY" - "$MOTO_ENDPOINT" "$SECRETS" "$work" <<'PY'
import os, sys, boto3
endpoint, n, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sm = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
files = []
for i in range(n):
    value = "fleet-%02d-%s" % (i, os.urandom(8).hex())
    sm.create_secret(Name="fleet/s%02d" % i, SecretString=value)
    open(os.path.join(work, "expected", "f%02d" % i), "w").write(value)
    files.append("  - path: f%02d\n    secret: fleet/s%02d\n" % (i, i))
open(os.path.join(work, "credfile.yaml"), "w").write(
    "version: 1\napp: fleet\nenvironments:\n  fleet:\n    region: us-east-1\n"
    "    root: /run/credfile/fleet\nfiles:\n" + "".join(files))
PY

# One run: every host at once; prints one Markdown row.
run_fleet() {
    mode=$1 jitter=$2
    runs="$work/hosts"
    rm -rf "$runs"
    mkdir -p "$runs"
    curl_reset() {
        "$PY" -c 'import sys, urllib.request; urllib.request.build_opener(urllib.request.ProxyHandler({})).open(urllib.request.Request(sys.argv[1] + "/credfile-proxy/reset", data=b""), timeout=5).read()' "$PROXY"
    }
    curl_reset
    for i in $(seq 1 "$HOSTS"); do
        h="$runs/h$i"
        mkdir -p "$h/home"
        printf 'token-for-host-%s' "$i" >"$h/token"
    done
    start=$(date +%s.%N)
    pids=""
    for i in $(seq 1 "$HOSTS"); do
        h="$runs/h$i"
        (
            env -i PATH="$PATH" HOME="$h/home" \
                AWS_ENDPOINT_URL="$PROXY" AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
                AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
                AWS_RETRY_MODE="$RETRY_MODE" \
                AWS_ROLE_ARN="arn:aws:iam::123456789012:role/fleet-host-$i" \
                AWS_ROLE_SESSION_NAME="host-$i" AWS_WEB_IDENTITY_TOKEN_FILE="$h/token" \
                CREDFILE_LOG=warn \
                "$CREDFILE_BIN" apply --env fleet --manifest "$work/credfile.yaml" \
                --root "$h/root" --fetch "$mode" --jitter "$jitter" \
                --max-attempts "$ATTEMPTS" --output json >"$h/report.json" 2>"$h/stderr" &&
                rc=0 || rc=$?
            echo "$rc" >"$h/rc"
            date +%s.%N >"$h/end"
        ) &
        pids="$pids $!"
    done
    for pid in $pids; do
        wait "$pid" || true
    done
    FLEET_OUT="$out_dir" "$PY" - "$PROXY" "$runs" "$work/expected" "$HOSTS" "$SECRETS" "$SCALE" "$mode" "$jitter" "$start" <<'PY'
import json, math, os, sys, urllib.request
proxy, runs, expected, hosts, secrets, scale, mode, jitter, start = sys.argv[1:]
hosts, secrets, scale, jitter, start = int(hosts), int(secrets), float(scale), float(jitter), float(start)
stats = json.load(urllib.request.build_opener(urllib.request.ProxyHandler({})).open(proxy + "/credfile-proxy/stats", timeout=5))
want = {f: open(os.path.join(expected, f), "rb").read() for f in os.listdir(expected)}
failed = incomplete = 0
last = start
ends = []
codes = {}
errors = {}
for i in range(1, hosts + 1):
    h = os.path.join(runs, "h%d" % i)
    try:
        rc = int(open(os.path.join(h, "rc")).read())
    except (OSError, ValueError):
        rc = -1

    codes[rc] = codes.get(rc, 0) + 1
    try:
        end = float(open(os.path.join(h, "end")).read())
        ends.append(end - start)
        last = max(last, end)
    except (OSError, ValueError):
        pass
    failed += rc != 0
    if rc != 0:
        try:
            line = next((l.strip() for l in open(os.path.join(h, "stderr")) if l.startswith("error:")), "no error line")
        except OSError:
            line = "no stderr"
        errors[line[:200]] = errors.get(line[:200], 0) + 1
    for f, v in want.items():
        try:
            ok = open(os.path.join(h, "root", f), "rb").read() == v
        except OSError:
            ok = False
        if not ok:
            incomplete += 1
            break
acts = stats["actions"]
def n(a, k):
    return acts.get(a, {}).get(k, 0)
sts_f = sum(v["forwarded"] for a, v in acts.items() if a.startswith("AssumeRole") or a == "GetCallerIdentity")
sts_t = sum(v["throttled"] for a, v in acts.items() if a.startswith("AssumeRole") or a == "GetCallerIdentity")
b, g, s = 100 / scale, 10000 / scale, 600 / scale
after_burst = lambda need, rate: max(0.0, (need - max(rate, 1.0)) / rate)
floor_sts = after_burst(hosts, s)
floor_fetch = {
    "batch": after_burst(hosts * math.ceil(secrets / 20), b),
    "single": after_burst(hosts * secrets, g),
    "auto": after_burst(hosts * secrets, 20 * b + g),
}[mode]
floor = max(floor_sts, floor_fetch)
took = last - start
print("| %s | %g | %.1f | %.1f | %.2f | %d / %d | %d / %d | %d / %d | %d | %d | %s |" % (
    mode, jitter, took, floor, took / floor if floor else 0.0,
    n("BatchGetSecretValue", "forwarded"), n("BatchGetSecretValue", "throttled"),
    n("GetSecretValue", "forwarded"), n("GetSecretValue", "throttled"),
    sts_f, sts_t, failed, incomplete,
    " ".join("%d:%d" % kv for kv in sorted(codes.items()))))
sys.stdout.flush()
ends.sort()
if ends:
    pct = lambda p: ends[min(len(ends) - 1, int(p * len(ends)))]
    print("  hosts done --fetch %s jitter %g: p50 %.1f s, p90 %.1f s, p99 %.1f s, last %.1f s" % (
        mode, jitter, pct(0.5), pct(0.9), pct(0.99), ends[-1]), file=sys.stderr)
for line, count in sorted(errors.items(), key=lambda kv: -kv[1]):
    print("  %s --fetch %s: %d host(s): %s" % ("failed", mode, count, line), file=sys.stderr)
with open(os.path.join(runs, "..", "result-%s-%g" % (mode, jitter)), "w") as out:
    json.dump({"failed": failed, "incomplete": incomplete, "took": took, "floor": floor,
               "ends": ends, "errors": errors, "stats": stats}, out)
with open(os.path.join(os.environ["FLEET_OUT"], "result-%s-%g.json" % (mode, jitter)), "w") as out:
    json.dump({"failed": failed, "incomplete": incomplete, "took": took, "floor": floor,
               "errors": errors, "stats": stats}, out)
PY
}

{
    echo "fleet: $HOSTS hosts x $SECRETS secrets, quotas scaled 1/$SCALE" \
        "(BatchGetSecretValue $(awk "BEGIN{print 100/$SCALE}")/s," \
        "GetSecretValue $(awk "BEGIN{print 10000/$SCALE}")/s, STS $(awk "BEGIN{print 600/$SCALE}")/s)," \
        "--max-attempts $ATTEMPTS, $(nproc) cores"
    echo
    echo "| --fetch | jitter s | last host done s | floor s | ratio | batch calls / throttled | GetSecretValue / throttled | STS / throttled | hosts failed | incomplete sets | exit codes |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for mode in $MODES; do
        for j in $JITTERS; do
            run_fleet "$mode" "$j"
        done
    done
} | tee "$out_dir/report.md"

if [ "$CHECK" = 1 ]; then
    bad=$("$PY" -c 'import glob, json, sys; print(sum(json.load(open(f))["failed"] + json.load(open(f))["incomplete"] for f in glob.glob(sys.argv[1] + "/result-*")))' "$work")
    [ "$bad" = 0 ] || credfile_die "fleet: $bad host(s) failed or incomplete"
    echo "fleet: every host succeeded with a complete set"
fi
