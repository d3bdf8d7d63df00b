#!/usr/bin/env bash
# Benchmark, not a test: CI never runs it and nothing in the test suite times anything.
#
# Measures, against a local Secrets Manager (moto) on 127.0.0.1, process start to exit for
#   credfile apply      (release build; a fresh root on tmpfs, and on the disk filesystem)
#   boto3 script        (one client, GetSecretValue per secret, writes one file per secret)
#   AWS CLI loop        (one `aws secretsmanager get-secret-value` per secret; N <= 20 only)
# for N = 1, 20, 100, 500 secrets: median and spread (min-max) of BENCH_RUNS runs after one
# warm-up run, interleaved between the tools (the order rotates every round). Each tool also
# runs once more through a counting proxy (HTTP requests per action) under /usr/bin/time -v
# (peak RSS). The floor for each N is computed from single-call latencies measured against the
# same moto: 1 STS GetCallerIdentity (the manifest has an account guard) + ceil(N/20)
# BatchGetSecretValue.
#
# Then: `credfile validate` on a 500-entry manifest, the stripped binary's size, and a cost
# model (credfile alone at N = 10, 100, 1000, 5000; the large runs get their own regions, as
# moto slows down past ~2,000 secrets per account+region).
#
# Prints a Markdown report and keeps it, with the raw samples, in target/bench/.
#
# Knobs (environment): BENCH_NS="1 20 100 500"  BENCH_RUNS=5  BENCH_CLI_MAX=20
#                      BENCH_MODEL_NS="10 100 1000 5000" (empty: skip the cost model)
#                      CREDFILE_BIN (default: a release build; another binary only to try the script)
#
# Installs what it needs: the moto venv (scripts/lib.sh), a separate venv with boto3 and the
# AWS CLI (target/bench/venv, so the test venv stays as it is), and Debian's `time` package.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

BENCH_NS="${BENCH_NS:-1 20 100 500}"
BENCH_RUNS="${BENCH_RUNS:-5}"
BENCH_CLI_MAX="${BENCH_CLI_MAX:-20}"
BENCH_MODEL_NS="${BENCH_MODEL_NS-10 100 1000 5000}"
# boto3 as in the moto venv; awscli 1.46.3 is the release built on that botocore (1.44.8).
BENCH_PY_REQUIREMENTS=('boto3==1.44.8' 'awscli==1.46.3')
BENCH_DIR="$CREDFILE_ROOT/target/bench"
BENCH_VENV="$BENCH_DIR/venv"

work=""
cleanup() {
    credfile_stop_proxy
    credfile_stop_moto
    if [ -n "$work" ]; then
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$SECONDS
mkdir -p "$BENCH_DIR"

# --- tools -------------------------------------------------------------------------------
credfile_ensure_venv

if [ ! -x /usr/bin/time ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        credfile_log "installing Debian's time (for /usr/bin/time -v)"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
    else
        credfile_die "/usr/bin/time is missing; install the 'time' package"
    fi
fi

bench_want="$(printf '%s\n' "${BENCH_PY_REQUIREMENTS[@]}")"
if [ "$(cat "$BENCH_VENV/.credfile-bench" 2>/dev/null)" != "$bench_want" ] ||
    [ ! -x "$BENCH_VENV/bin/aws" ]; then
    credfile_log "installing ${BENCH_PY_REQUIREMENTS[*]} into target/bench/venv"
    rm -rf "$BENCH_VENV"
    python3 -m venv "$BENCH_VENV"
    "$BENCH_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        "${BENCH_PY_REQUIREMENTS[@]}"
    printf '%s\n' "$bench_want" >"$BENCH_VENV/.credfile-bench"
fi

if [ -n "${CREDFILE_BIN:-}" ]; then
    BIN="$CREDFILE_BIN" # a smoke run of the script itself: its numbers are not the product's
else
    credfile_log "cargo build --release"
    cargo build --release --locked --quiet
    BIN="$CREDFILE_ROOT/target/release/credfile"
fi

# --- where files go ----------------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/credfile-bench.XXXXXX")"
mkdir -p "$work/home"
tmpfs_base=""
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] && [ -w /dev/shm ]; then
    tmpfs_base="$(mktemp -d /dev/shm/credfile-bench.XXXXXX)"
elif [ "$(id -u)" = 0 ]; then
    mkdir -p "$work/tmpfs"
    if mount -t tmpfs -o size=512m,mode=0700 tmpfs "$work/tmpfs" 2>/dev/null; then
        tmpfs_base="$work/tmpfs"
    fi
fi
[ -n "$tmpfs_base" ] || credfile_die "no tmpfs: /dev/shm is not tmpfs and mounting one failed"
# On the disk, outside the work tree (credfile refuses a root `git add` could reach).
disk_base="$(mktemp -d /var/tmp/credfile-bench.XXXXXX)"
cleanup_roots() {
    rm -rf "$tmpfs_base" "$disk_base" 2>/dev/null || true
    if mountpoint -q "$work/tmpfs" 2>/dev/null; then umount "$work/tmpfs" || true; fi
}
trap 'cleanup_roots; cleanup' EXIT

# --- helper programs (Python, written here so the script is the whole benchmark) --------
cat >"$work/boto3_fetch.py" <<'PY'
# What a team writes today: one boto3 client, GetSecretValue per secret, one file each.
import os, sys
import boto3

root, ids_file = sys.argv[1], sys.argv[2]
client = boto3.client("secretsmanager")
os.makedirs(root, mode=0o700, exist_ok=True)
with open(ids_file) as f:
    for secret_id in f.read().split():
        out = client.get_secret_value(SecretId=secret_id)
        data = out["SecretString"].encode() if "SecretString" in out else out["SecretBinary"]
        fd = os.open(os.path.join(root, secret_id.replace("/", "_")),
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
PY

cat >"$work/cli_loop.sh" <<'SH'
# What a pipeline step does today: one AWS CLI process per secret.
set -euo pipefail
umask 077
root="$1"
mkdir -p "$root"
while IFS= read -r id; do
    aws secretsmanager get-secret-value --secret-id "$id" \
        --query SecretString --output text >"$root/${id//\//_}"
done <"$2"
SH

cat >"$work/bench.py" <<'PY'
import json, math, os, platform, random, shutil, statistics, subprocess, sys, time
import http.client, urllib.request

cfg = json.loads(sys.argv[1])
W, BIN, PY, ENDPOINT, PROXY = cfg["work"], cfg["bin"], cfg["python"], cfg["endpoint"], cfg["proxy"]
NS, RUNS, CLI_MAX, MODEL_NS = cfg["ns"], cfg["runs"], cfg["cli_max"], cfg["model_ns"]
MAIN_REGION = "us-east-1"
samples = {}

def log(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)

def hermetic(endpoint, region=MAIN_REGION):
    return {
        "PATH": cfg["path"], "HOME": os.path.join(W, "home"), "LANG": "C.UTF-8",
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }

# --- seeding -------------------------------------------------------------------------------
def seed(region, prefix, n):
    import boto3
    from concurrent.futures import ThreadPoolExecutor
    sm = boto3.client("secretsmanager", endpoint_url=ENDPOINT, region_name=region,
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    def one(i):
        sm.create_secret(Name=f"{prefix}/s{i:05d}",
                         SecretString=f"bench-{i:05d}-" + os.urandom(32).hex())
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(n)))
    return [f"{prefix}/s{i:05d}" for i in range(n)]

def manifest(path, region, ids):
    # The account guard makes credfile ask STS who it is: 1 GetCallerIdentity per run.
    lines = ["version: 1", "app: bench", "defaults:", f"  region: {region}", "environments:",
             "  bench:", '    account: "123456789012"', "files:"]
    for i, sid in enumerate(ids):
        lines += [f"  - path: s{i:05d}", f"    secret: {sid}"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")

# --- single-call latencies (the floor) -----------------------------------------------------
AUTH = ("AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/{svc}/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)

def raw_call(region, svc, body, headers):
    host, port = ENDPOINT.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    h = {"Authorization": AUTH.format(region=region, svc=svc), "X-Amz-Date": "20260101T000000Z"}
    h.update(headers)
    t0 = time.perf_counter()
    conn.request("POST", "/", body=body, headers=h)
    resp = conn.getresponse()
    data = resp.read()
    elapsed = time.perf_counter() - t0
    conn.close()
    if resp.status != 200:
        raise SystemExit(f"floor probe failed: HTTP {resp.status} {data[:200]!r}")
    return elapsed, data

def sts_call(region):
    return raw_call(region, "sts", "Action=GetCallerIdentity&Version=2011-06-15",
                    {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})

def batch_call(region, ids):
    elapsed, data = raw_call(region, "secretsmanager", json.dumps({"SecretIdList": ids}),
                             {"Content-Type": "application/x-amz-json-1.1",
                              "X-Amz-Target": "secretsmanager.BatchGetSecretValue"})
    got = len(json.loads(data).get("SecretValues", []))
    if got != len(ids):
        raise SystemExit(f"floor probe: BatchGetSecretValue returned {got} of {len(ids)}")
    return elapsed

def floor(region, ids, reps=5):
    """Median single-call latencies: (sts_ms, [batch_ms per chunk of 20])."""
    sts = statistics.median(sts_call(region)[0] for _ in range(3 * reps)) * 1000
    chunks = [ids[i:i + 20] for i in range(0, len(ids), 20)]
    batches = [statistics.median(batch_call(region, c) for _ in range(reps)) * 1000
               for c in chunks]
    return sts, batches

# --- running a process ---------------------------------------------------------------------
def run(argv, env, check=True):
    """Process start to exit: (wall ms, cpu ms, peak RSS KiB from wait4)."""
    err = open(os.path.join(W, "last-stderr"), "w+b")
    devnull = os.open(os.devnull, os.O_RDWR)
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=[
        (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
        (os.POSIX_SPAWN_DUP2, err.fileno(), 2)])
    _, status, ru = os.wait4(pid, 0)
    t1 = time.perf_counter_ns()
    os.close(devnull)
    if check and os.waitstatus_to_exitcode(status) != 0:
        err.seek(0)
        raise SystemExit(f"{' '.join(argv[:3])} failed:\n{err.read().decode(errors='replace')[-2000:]}")
    err.close()
    return (t1 - t0) / 1e6, (ru.ru_utime + ru.ru_stime) * 1000, ru.ru_maxrss

def time_v(argv, env):
    """Peak RSS in KiB as /usr/bin/time -v reports it."""
    out = os.path.join(W, "time-v")
    run(["/usr/bin/time", "-v", "-o", out] + argv, env)
    with open(out) as f:
        for line in f:
            if "Maximum resident set size" in line:
                return int(line.rsplit(":", 1)[1])
    raise SystemExit("no RSS in /usr/bin/time -v output")

def proxy_counts(reset=False):
    req = urllib.request.Request(PROXY + ("/credfile-proxy/reset" if reset else "/credfile-proxy/stats"),
                                 method="POST" if reset else "GET", data=b"" if reset else None)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    stats = json.loads(opener.open(req, timeout=10).read())
    return {a: c["forwarded"] + c["throttled"] for a, c in stats.get("actions", {}).items()}

def check_written(name, root, n):
    # Regular files, once each: the generation layout's stable names are links into `current`,
    # and credfile's state file (.credfile-state.json) is not a written secret.
    written = sum(1 for d, _, files in os.walk(root) for f in files
                  if not f.startswith(".credfile-") and not os.path.islink(os.path.join(d, f)))
    if written != n:
        raise SystemExit(f"{name} wrote {written} files, not {n}")

root_seq = [0]
def fresh(base):
    root_seq[0] += 1
    return os.path.join(base, f"r{root_seq[0]:05d}")

class Tool:
    def __init__(self, name, base, argv, region=MAIN_REGION, sync=False):
        self.name, self.base, self.argv, self.region, self.sync = name, base, argv, region, sync
    def once(self, endpoint=None, wrap=None):
        root = fresh(self.base)
        argv = self.argv(root)
        env = hermetic(endpoint or ENDPOINT, self.region)
        if self.sync:
            os.sync()  # start each disk run from a clean journal (not timed)
        try:
            return (wrap or run)(argv, env)
        finally:
            shutil.rmtree(root, ignore_errors=True)

def tools_for(n, m, ids_file, region=MAIN_REGION):
    credfile = lambda base: (lambda root: [BIN, "apply", "--env", "bench", "--manifest", m,
                                           "--root", root])
    tools = [Tool("credfile (tmpfs)", cfg["tmpfs"], credfile(cfg["tmpfs"]), region),
             Tool("credfile (disk)", cfg["disk"], credfile(cfg["disk"]), region, sync=True),
             Tool("boto3 script", cfg["tmpfs"], lambda root: [PY, cfg["boto3"], root, ids_file],
                  region)]
    if n <= CLI_MAX:
        tools.append(Tool("AWS CLI loop", cfg["tmpfs"],
                          lambda root: ["/bin/bash", cfg["cli"], root, ids_file], region))
    return tools

def fmt_ms(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"

# --- main table ----------------------------------------------------------------------------
report, rows, results = [], [], {}
t_all = time.time()
maxn = max(NS)
log(f"seeding {maxn} secrets in {MAIN_REGION}")
all_ids = seed(MAIN_REGION, "bench", maxn)
for n in NS:
    ids = all_ids[:n]
    m = os.path.join(W, f"m{n}.yaml")
    manifest(m, MAIN_REGION, ids)
    ids_file = os.path.join(W, f"ids{n}.txt")
    with open(ids_file, "w") as f:
        f.write("\n".join(ids) + "\n")
    tools = tools_for(n, m, ids_file)
    log(f"N={n}: warm-up, then {RUNS} interleaved rounds of {', '.join(t.name for t in tools)}")
    load_before = os.getloadavg()[0]
    for t in tools:
        t.once()
    sts_ms, batch_ms = floor(MAIN_REGION, ids)
    wall = {t.name: [] for t in tools}
    cpu = {t.name: [] for t in tools}
    for r in range(RUNS):
        k = r % len(tools)
        for t in tools[k:] + tools[:k]:
            w, c, _ = t.once()
            wall[t.name].append(w)
            cpu[t.name].append(c)
    counts, rss = {}, {}
    for t in tools:
        proxy_counts(reset=True)
        root = fresh(t.base)
        rss[t.name] = time_v(t.argv(root), hermetic(PROXY, t.region)) / 1024
        counts[t.name] = proxy_counts()
        check_written(t.name, root, n)
    load_after = os.getloadavg()[0]
    shutil.rmtree(cfg["tmpfs"], ignore_errors=True); os.makedirs(cfg["tmpfs"], exist_ok=True)
    shutil.rmtree(cfg["disk"], ignore_errors=True); os.makedirs(cfg["disk"], exist_ok=True)
    fl = sts_ms + sum(batch_ms)
    expected = {"GetCallerIdentity": 1, "BatchGetSecretValue": math.ceil(n / 20)}
    results[n] = {"floor_ms": fl, "sts_ms": sts_ms, "batch_ms": batch_ms, "wall": wall,
                  "cpu": cpu, "rss_mib": rss, "counts": counts, "load": [load_before, load_after],
                  "credfile_calls_at_floor": counts["credfile (tmpfs)"] == expected}
    log(f"N={n}: done (load {load_before:.1f} -> {load_after:.1f})")

def reqs(c):
    short = {"GetCallerIdentity": "STS", "BatchGetSecretValue": "Batch",
             "GetSecretValue": "Get"}
    return " + ".join(f"{v} {short.get(k, k)}" for k, v in sorted(c.items())) or "0"

out = []
out.append("| N | tool | median ms | spread ms (min-max) | x credfile tmpfs | CPU ms | HTTP requests | peak RSS MiB |")
out.append("|---:|---|---:|---:|---:|---:|---|---:|")
for n, r in results.items():
    base = statistics.median(r["wall"]["credfile (tmpfs)"])
    out.append(f"| {n} | floor: 1 STS + {math.ceil(n / 20)} Batch | {fmt_ms(r['floor_ms'])} | "
               f"STS {r['sts_ms']:.1f}, Batch {statistics.median(r['batch_ms']):.1f} each | "
               f"{r['floor_ms'] / base:.2f} | | | |")
    for name, ws in r["wall"].items():
        med = statistics.median(ws)
        out.append(f"| {n} | {name} | {fmt_ms(med)} | {fmt_ms(min(ws))}-{fmt_ms(max(ws))} | "
                   f"{med / base:.1f} | {fmt_ms(statistics.median(r['cpu'][name]))} | "
                   f"{reqs(r['counts'][name])} | {r['rss_mib'][name]:.1f} |")
    if n == 100:
        out.append(f"| {n} | action under node (issue's number, not run here) | 960 | | "
                   f"{960 / base:.0f} | | | 43-82 |")
loads = ", ".join(f"N={n}: {r['load'][0]:.1f} -> {r['load'][1]:.1f}" for n, r in results.items())
out.append("")
out.append(f"Load average (1 min) before and after each N: {loads} (2 cores; other work on the "
           "machine shows up here and in the spread).")
report.append("\n".join(out))

# --- validate, binary ----------------------------------------------------------------------
m500 = os.path.join(W, "validate500.yaml")
manifest(m500, MAIN_REGION, [f"bench/s{i:05d}" for i in range(500)])
run([BIN, "validate", "--manifest", m500], hermetic(ENDPOINT))
val = [run([BIN, "validate", "--manifest", m500], hermetic(ENDPOINT))[0] for _ in range(11)]
size = os.path.getsize(BIN)
symtab = subprocess.run(["readelf", "-S", BIN], capture_output=True, text=True).stdout \
    if shutil.which("readelf") else ""
stripped = ".symtab" not in symtab if symtab else None

# --- targets -------------------------------------------------------------------------------
def med(n, name):
    return statistics.median(results[n]["wall"][name])
targets = []
for n in (100, 500):
    if n in results:
        ratio = med(n, "boto3 script") / med(n, "credfile (tmpfs)")
        targets.append((f"N={n}: credfile >= 15x faster than the boto3 script", ratio >= 15,
                        f"{ratio:.1f}x"))
        if n == 100:
            ratio = 960 / med(n, "credfile (tmpfs)")
            targets.append(("N=100: >= 15x faster than the action (issue's 0.96 s; not run here)",
                            ratio >= 15, f"{ratio:.1f}x"))
if 20 in results and "AWS CLI loop" in results[20]["wall"]:
    ratio = med(20, "AWS CLI loop") / med(20, "credfile (tmpfs)")
    targets.append(("N=20: credfile >= 500x faster than the AWS CLI loop", ratio >= 500,
                    f"{ratio:.0f}x"))
if 500 in results:
    r = results[500]["rss_mib"]["credfile (tmpfs)"]
    targets.append(("N=500: credfile peak RSS <= 30 MiB", r <= 30, f"{r:.1f} MiB"))
targets.append(("stripped binary <= 16 MiB", size <= 16 * 2**20 and stripped is not False,
                f"{size / 2**20:.1f} MiB" + ("" if stripped else " (not stripped?)")))
vmed = statistics.median(val)
targets.append(("`credfile validate`, 500 entries, < 20 ms", vmed < 20,
                f"{vmed:.1f} ms (spread {min(val):.1f}-{max(val):.1f})"))
for n, r in results.items():
    targets.append((f"N={n}: credfile makes exactly 1 GetCallerIdentity + {math.ceil(n / 20)} "
                    "BatchGetSecretValue", r["credfile_calls_at_floor"],
                    reqs(r["counts"]["credfile (tmpfs)"])))
t = ["| target | met | measured |", "|---|---|---|"]
t += [f"| {name} | {'yes' if ok else '**no**'} | {got} |" for name, ok, got in targets]
report.append("\n".join(t))

# --- write path: what durability costs per strategy, 500 small files ----------------------
def write_files(base, strategy, n=500, sync=False):
    import ctypes
    from concurrent.futures import ThreadPoolExecutor
    libc = ctypes.CDLL(None, use_errno=True)
    d = fresh(base)
    os.makedirs(d, mode=0o700)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    payload = os.urandom(32).hex().encode()
    if sync:
        os.sync()
    t0 = time.perf_counter()
    open_fds = []
    for i in range(n):
        fd = os.open(f".tmp{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dfd)
        os.write(fd, payload)
        if strategy == "fsync each file":
            os.fsync(fd)
        if strategy == "fsync in 16 threads":
            open_fds.append(fd)
        else:
            os.close(fd)
    if strategy == "one syncfs":
        if libc.syncfs(dfd) != 0:
            raise OSError(ctypes.get_errno(), "syncfs")
    if open_fds:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(os.fsync, open_fds))
        for fd in open_fds:
            os.close(fd)
    for i in range(n):
        os.rename(f".tmp{i}", f"f{i}", src_dir_fd=dfd, dst_dir_fd=dfd)
    if strategy != "no fsync":
        os.fsync(dfd)
    elapsed = (time.perf_counter() - t0) * 1000
    os.close(dfd)
    shutil.rmtree(d)
    return elapsed

log("write path: 500 files, four durability strategies, tmpfs and disk")
strategies = ["fsync each file", "one syncfs", "fsync in 16 threads", "no fsync"]
wp = {(fs, st): [] for fs in ("tmpfs", "disk") for st in strategies}
for r in range(5):
    for st in strategies[r % 4:] + strategies[:r % 4]:
        wp[("tmpfs", st)].append(write_files(cfg["tmpfs"], st))
        wp[("disk", st)].append(write_files(cfg["disk"], st, sync=True))
out = ["| strategy (500 files, then renames, then one directory fsync) | tmpfs ms | disk ms |",
       "|---|---:|---:|"]
for st in strategies:
    out.append(f"| {st} | {fmt_ms(statistics.median(wp[('tmpfs', st)]))} | "
               f"{fmt_ms(statistics.median(wp[('disk', st)]))} |")
report.append("\n".join(out))

# --- cost model: credfile alone, large N in their own regions ------------------------------
model = {}
if MODEL_NS:
    regions = {10: "us-east-1", 100: "us-east-1"}
    spare = iter(["us-west-2", "eu-west-1", "ap-southeast-2", "ca-central-1", "sa-east-1"])
    for n in MODEL_NS:
        if n <= maxn:
            region, ids = MAIN_REGION, all_ids[:n]
        else:
            region = next(spare)
            log(f"cost model: seeding {n} secrets in {region}")
            ids = seed(region, f"model{n}", n)
        m = os.path.join(W, f"model{n}.yaml")
        manifest(m, region, ids)
        tool = tools_for(n, m, "/dev/null", region)[0]
        tool.once()
        runs = [tool.once() for _ in range(3)]
        proxy_counts(reset=True)
        root = fresh(tool.base)
        rss = time_v(tool.argv(root), hermetic(PROXY, region)) / 1024
        c = proxy_counts()
        check_written("credfile", root, n)
        sts_ms, batch_ms = floor(region, ids, reps=3)
        shutil.rmtree(cfg["tmpfs"], ignore_errors=True); os.makedirs(cfg["tmpfs"], exist_ok=True)
        model[n] = {"region": region, "wall": [x[0] for x in runs], "cpu": [x[1] for x in runs],
                    "rss_mib": rss, "counts": c, "floor_ms": sts_ms + sum(batch_ms),
                    "batch_ms": statistics.median(batch_ms)}
        log(f"cost model N={n}: {statistics.median(model[n]['wall']):.0f} ms")
    out = ["| N | region | median ms (3 runs) | CPU ms | floor ms | Batch ms each | HTTP requests | peak RSS MiB |",
           "|---:|---|---:|---:|---:|---:|---|---:|"]
    for n, r in model.items():
        out.append(f"| {n} | {r['region']} | {fmt_ms(statistics.median(r['wall']))} | "
                   f"{fmt_ms(statistics.median(r['cpu']))} | {fmt_ms(r['floor_ms'])} | "
                   f"{r['batch_ms']:.1f} | {reqs(r['counts'])} | {r['rss_mib']:.1f} |")
    report.append("\n".join(out))

print(json.dumps({"report": report, "results": {str(k): v for k, v in results.items()},
                  "write_path": {f"{fs}/{st}": v for (fs, st), v in wp.items()},
                  "model": {str(k): v for k, v in model.items()},
                  "validate_ms": val, "binary_bytes": size, "stripped": stripped,
                  "seconds": time.time() - t_all}))
PY

# --- moto and the counting proxy ---------------------------------------------------------
credfile_start_moto
credfile_log "moto on $MOTO_ENDPOINT (pid $MOTO_PID)"
credfile_start_proxy "$MOTO_ENDPOINT" "$work"

config="$("$BENCH_VENV/bin/python" - "$work" "$BIN" "$BENCH_VENV/bin/python" "$MOTO_ENDPOINT" \
    "$PROXY_ENDPOINT" "$BENCH_NS" "$BENCH_RUNS" "$BENCH_CLI_MAX" "$BENCH_MODEL_NS" \
    "$tmpfs_base" "$disk_base" "$BENCH_VENV/bin:/usr/local/bin:/usr/bin:/bin" <<'PY'
import json, sys
a = sys.argv[1:]
print(json.dumps({
    "work": a[0], "bin": a[1], "python": a[2], "endpoint": a[3], "proxy": a[4],
    "ns": [int(x) for x in a[5].split()], "runs": int(a[6]), "cli_max": int(a[7]),
    "model_ns": [int(x) for x in a[8].split()], "tmpfs": a[9], "disk": a[10],
    "boto3": a[0] + "/boto3_fetch.py", "cli": a[0] + "/cli_loop.sh", "path": a[11],
}))
PY
)"

stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
"$BENCH_VENV/bin/python" "$work/bench.py" "$config" >"$BENCH_DIR/results-$stamp.json"

# --- the report ----------------------------------------------------------------------------
fs_type() {
    # stat -f names ext4 "ext2/ext3" (one magic number); findmnt knows better.
    findmnt -n -o FSTYPE -T "$1" 2>/dev/null | head -n 1 | grep . || stat -f -c %T "$1"
}
{
    echo "# credfile benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Machine: $(nproc) cores, $(free -h | awk '/^Mem:/ { print $2 }') memory," \
        "kernel $(uname -r), load average at start $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "tmpfs root: $tmpfs_base ($(fs_type "$tmpfs_base")); disk root: $disk_base" \
        "($(fs_type "$disk_base"))."
    echo "Versions: $(rustc --version); moto $("$CREDFILE_VENV/bin/python" -c 'import moto; print(moto.__version__)');" \
        "boto3 $("$BENCH_VENV/bin/python" -c 'import boto3; print(boto3.__version__)');" \
        "$("$BENCH_VENV/bin/aws" --version 2>&1 | cut -d' ' -f1-2); credfile $("$BIN" --version | cut -d' ' -f2)."
    echo "Runs: $BENCH_RUNS per cell after one warm-up, interleaved; requests and RSS from one" \
        "more run each (counting proxy, /usr/bin/time -v)."
    echo
    "$BENCH_VENV/bin/python" -c '
import json, sys
data = json.load(open(sys.argv[1]))
titles = ["## Process start to exit", "## Targets",
          "## Write path (Python, the write-then-rename pattern credfile uses; median of 5)",
          "## Cost model (credfile alone, tmpfs)"]
for title, block in zip(titles, data["report"]):
    print(title); print(); print(block); print()
print("Bench time: %.0f s." % data["seconds"])
' "$BENCH_DIR/results-$stamp.json"
} | tee "$BENCH_DIR/results-$stamp.md"
cp "$BENCH_DIR/results-$stamp.md" "$BENCH_DIR/results.md"
# The scaling tables as charts (BENCHMARKS.md shows the ones drawn from its tables, kept in
# docs/src/charts/).
"$BENCH_VENV/bin/python" scripts/chart.py "$BENCH_DIR/results.md" "$BENCH_DIR/start-to-exit.svg" \
    --x N --y "median ms" --series tool --only '^(credfile|boto3|AWS CLI|floor)' \
    --group '^(floor|[^:]+)' --title "Process start to exit against moto, by number of secrets" \
    --log-x --log-y
if [ -n "$BENCH_MODEL_NS" ]; then
    "$BENCH_VENV/bin/python" scripts/chart.py "$BENCH_DIR/results.md" "$BENCH_DIR/cost-model.svg" \
        --x N --y "median ms" --y "floor ms" --y "CPU ms" --ylabel ms --table-with region \
        --title "credfile alone (tmpfs), by number of secrets" --log-x --log-y
fi
credfile_log "report: target/bench/results-$stamp.md (raw samples: results-$stamp.json, charts: *.svg); $((SECONDS - started)) s in all"
