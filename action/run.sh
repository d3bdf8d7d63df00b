#!/bin/sh
# The action's run step (action.yml). POSIX sh.
#
# Runs `credfile COMMAND --env ENV --manifest M --output json` (through `sudo -n` on the sudo
# path, where M must be the absolute path of the root-owned manifest), writes the JSON
# report (docs/report.schema.json; never a value) to a file under RUNNER_TEMP, and sets the
# outputs `report` (its path) and `changed` (true when a file was created, updated or removed;
# for plan: would be). credfile's exit code is the step's.
#
# Environment: CREDFILE_BIN, CREDFILE_SUDO, INPUT_COMMAND, INPUT_ENVIRONMENT, INPUT_MANIFEST,
# INPUT_ROOT, RUNNER_TEMP, GITHUB_OUTPUT.
set -eu

die() {
    printf '::error title=credfile::%s\n' "$*"
    printf 'credfile-action: error: %s\n' "$*" >&2
    exit 1
}

: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set: run this from action.yml}"
: "${RUNNER_TEMP:?RUNNER_TEMP is not set}"
bin="${CREDFILE_BIN:?CREDFILE_BIN is not set: the install step did not run}"
command="${INPUT_COMMAND:-apply}"
case "$command" in
    apply | plan | verify) ;;
    *) die "the command input must be apply, plan or verify, not '$command'" ;;
esac
env_name="${INPUT_ENVIRONMENT:-}"
[ -n "$env_name" ] || die "the environment input is required"

manifest="${INPUT_MANIFEST:-credfile.yaml}"
sudo_mode="${CREDFILE_SUDO:-false}"
if [ "$sudo_mode" = true ]; then
    # The sudoers rule (pipeline-examples/sudo/credfile.sudoers) allows one fixed command line
    # per command: the root-owned manifest by its absolute path, no --root.
    case "$manifest" in
        /*) ;;
        *) die "sudo: 'true' runs the manifest an admin installed root-owned (for example /etc/credfile/payments.yaml): set the manifest input to that absolute path, as the sudoers rule names it; a checkout's '$manifest' is refused under sudo" ;;
    esac
    [ -z "${INPUT_ROOT:-}" ] || die "sudo: 'true' takes no root input: under sudo the root-owned manifest alone decides where files go"
fi

# Flags, not CREDFILE_* variables: sudo's env_reset would drop those. This exact order is what
# the sudoers rule spells out.
set -- "$command" --env "$env_name" --manifest "$manifest" --output json
if [ -n "${INPUT_ROOT:-}" ]; then
    set -- "$@" --root "$INPUT_ROOT"
fi

dir="$(mktemp -d "$RUNNER_TEMP/credfile-report.XXXXXX")"
report="$dir/report.json"
rc=0
if [ "$sudo_mode" = true ]; then
    # The report file is the runner user's on purpose: only credfile runs as root.
    # shellcheck disable=SC2024
    sudo -n "$bin" "$@" >"$report" || rc=$?
    if [ "$rc" = 1 ] && [ ! -s "$report" ]; then
        printf 'credfile-action: exit 1 and no report: if sudo refused, its rule must allow exactly: %s %s\n' "$bin" "$*" >&2
    fi
else
    "$bin" "$@" >"$report" || rc=$?
fi

# Compact JSON: the summary object's counts, by key (a string value cannot hold a bare quote).
summary="$(sed -n 's/.*"summary":{\([^}]*\)}.*/\1/p' "$report")"
count() {
    n="$(printf '%s\n' "$summary" | sed -n "s/.*\"$1\":\([0-9][0-9]*\).*/\1/p")"
    printf '%s\n' "${n:-0}"
}
changed=false
if [ -n "$summary" ] && [ "$command" != verify ]; then
    if [ "$(count created)" -gt 0 ] || [ "$(count updated)" -gt 0 ] || [ "$(count removed)" -gt 0 ]; then
        changed=true
    fi
fi
printf 'report=%s\n' "$report" >>"$GITHUB_OUTPUT"
printf 'changed=%s\n' "$changed" >>"$GITHUB_OUTPUT"
printf 'credfile-action: %s: changed=%s, report %s\n' "$command" "$changed" "$report" >&2
exit "$rc"
