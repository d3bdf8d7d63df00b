#!/usr/bin/env bash
# The project's one test command (CI runs it through .ci/run, as root, on a
# fresh machine): installs the Python tools into .venv, starts moto, then runs
# lints, rustfmt, clippy and the whole cargo test suite against that moto.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

started=$SECONDS
test_log=""
cleanup() {
    credfile_stop_moto
    if [ -n "$test_log" ]; then rm -f "$test_log"; fi
    # The second dist build, read by the tests through CREDFILE_TEST_DIST_REBUILD_DIR.
    credfile_dist_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One run per checkout at a time: a run rewrites dist/ and target/dist/ of its checkout (other
# checkouts have their own, and every temporary path is made per run with mktemp). A second run
# in the same checkout waits here instead of clobbering the first.
mkdir -p target
exec 9>target/.credfile-test.lock
if ! flock -n 9; then
    credfile_log "another scripts/test.sh runs in this checkout; waiting for it to finish"
    flock 9
fi

credfile_ensure_venv
credfile_ensure_tools
credfile_ensure_node_dotenv
credfile_ensure_sudo
credfile_ensure_fleet_tools
credfile_ensure_systemd_creds
credfile_ensure_openssl
credfile_ensure_postgresql

credfile_log "lint pipeline-examples/ (yamllint, check-jsonschema, zizmor, ansible-lint) and scripts/ (shellcheck)"
credfile_lint_pipelines

credfile_ensure_mdbook
credfile_log "the book: mdbook build docs, then every link checked offline"
rm -rf docs/book
"$CREDFILE_MDBOOK" build docs
"$CREDFILE_VENV/bin/python" scripts/check_links.py docs/book .

credfile_ensure_release_tools
credfile_log "scripts/dist.sh: the release artifacts (twice, for the reproducibility test)"
credfile_dist
export CREDFILE_TEST_DIST_DIR="$CREDFILE_DIST_DIR"
if [ -n "$CREDFILE_DIST_REBUILD_DIR" ]; then
    export CREDFILE_TEST_DIST_REBUILD_DIR="$CREDFILE_DIST_REBUILD_DIR"
fi

credfile_start_moto
export CREDFILE_TEST_ENDPOINT="$MOTO_ENDPOINT"
export CREDFILE_TEST_PYTHON="$CREDFILE_ROOT/.venv/bin/python"
export CREDFILE_TEST_BAO="$CREDFILE_ROOT/.venv/bin/bao"
export CREDFILE_TEST_GITLAB_CI_LOCAL="$CREDFILE_TOOLS/node_modules/.bin/gitlab-ci-local"
export CREDFILE_TEST_NODE_DOTENV="$CREDFILE_TOOLS/node-dotenv/node_modules/dotenv"
credfile_log "moto on $MOTO_ENDPOINT (pid $MOTO_PID)"

credfile_log "layers: src/ imports only downward, no cycles (docs/layers.toml)"
"$CREDFILE_VENV/bin/python" scripts/layers.py

credfile_log "cargo fmt --check"
cargo fmt --all -- --check

credfile_log "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

credfile_log "cargo build --features fault-points (a separate binary for the crash tests)"
cargo build --locked --quiet --features fault-points --target-dir target/fault-points
export CREDFILE_TEST_FAULT_BIN="$CREDFILE_ROOT/target/fault-points/debug/credfile"

credfile_log "cargo test (manifest fuzzing for ${CREDFILE_FUZZ_SECONDS:=60}s inside it)"
export CREDFILE_FUZZ_SECONDS
test_log="$(mktemp "${TMPDIR:-/tmp}/credfile-test.XXXXXX")"
cargo test --locked 2>&1 | tee "$test_log"

credfile_log "fleet benchmark, small configuration (a count, not a time: every host must succeed)"
FLEET_HOSTS=10 FLEET_SECRETS=5 FLEET_SCALE=200 FLEET_MODES=auto FLEET_JITTERS=0 FLEET_CHECK=1 \
    CREDFILE_BIN="$CREDFILE_ROOT/target/debug/credfile" scripts/fleet-bench.sh

echo "scripts/test.sh: pipeline lints, fmt, clippy and cargo test passed in $((SECONDS - started))s"
# Closing line: totals over every test binary's "test result:" line.
awk '/^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i+1) ~ /^passed/) p += $i
            if ($(i+1) ~ /^failed/) f += $i
            if ($(i+1) ~ /^ignored/) s += $i
        }
    }
    END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$test_log"
