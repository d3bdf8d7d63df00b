#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: credfile developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Run credfile on the managed host and turn its JSON report into changed/diff.

Safe under no_log and -vvv by construction: the module takes no value as an argument, never
opens a target file, and returns only what credfile's report holds (paths, modes, owners,
secret ids and version ids).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: credfile
short_description: Write the secret files of a credfile environment on the managed host
version_added: 1.0.0
description:
  - Runs the C(credfile) binary on the managed host, under the host's own AWS identity
    (instance role, profile, or what the task's C(environment) provides), so that no secret value
    passes through the controller.
  - C(state=applied) runs C(credfile apply); in check mode it runs C(credfile plan), which fetches
    and compares but writes nothing.
  - C(state=verified) runs C(credfile verify) and fails when the host has drifted.
  - C(state=absent) runs C(credfile clean), removing only what credfile recorded as its own.
  - C(changed) and the diff come from credfile's JSON report (C(--output json)), which holds
    metadata only (paths, modes, owners, secret ids and version ids), never a value.
author:
  - credfile developers (@acme)
options:
  env:
    description: The manifest environment (C(credfile --env)). There is no default.
    type: str
    required: true
  manifest:
    description: Path of the credfile manifest on the managed host.
    type: path
    required: true
  root:
    description:
      - Write under this directory instead of the manifest's C(root) (C(credfile --root)).
    type: path
  binary:
    description:
      - Path of the credfile binary on the managed host. Default, C(credfile) from C(PATH) or
        C(/usr/local/bin).
    type: path
  state:
    description: What the host should look like.
    type: str
    choices: [applied, verified, absent]
    default: applied
  jitter:
    description:
      - C(applied) only. Wait a random 0 to this many seconds before the first AWS call, to spread
        a batch of hosts over time (C(credfile --jitter)). 0 means no wait.
    type: int
    default: 0
attributes:
  check_mode:
    support: full
    description: C(applied) runs C(credfile plan); C(verified) is read-only anyway; C(absent) only looks.
  diff_mode:
    support: full
    description: Per file, path, mode, owner and secret version ids; never content.
notes:
  - Failures return credfile's message in C(msg) and its exit code in C(rc) (2 usage or manifest,
    3 identity, 4 fetch, 5 render, 6 write, 7 drift, 8 change hook).
"""

EXAMPLES = r"""
- name: Write the production secret files
  credfile.deploy.credfile:
    env: production
    manifest: /etc/credfile/credfile.yaml

- name: Fail when a host has drifted from the manifest and the current secrets
  credfile.deploy.credfile:
    env: production
    manifest: /etc/credfile/credfile.yaml
    state: verified

- name: Remove what credfile wrote for staging
  credfile.deploy.credfile:
    env: staging
    manifest: /etc/credfile/credfile.yaml
    state: absent
"""

RETURN = r"""
report:
  description: credfile's JSON report (docs/report.schema.json); metadata only.
  returned: when credfile printed one (applied, verified)
  type: dict
summary:
  description: Counts of created, updated, unchanged and removed files.
  returned: state=applied
  type: dict
  sample: {created: 1, updated: 0, unchanged: 4, removed: 0}
drift:
  description: The differences C(verify) found, each with path, kind and detail.
  returned: state=verified
  type: list
  elements: dict
removed:
  description: Absolute paths C(clean) removed (check mode, the root when it would remove it).
  returned: state=absent
  type: list
  elements: str
rc:
  description: credfile's exit code.
  returned: always
  type: int
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

# credfile's own state file in a root: its presence says there is something to clean.
STATE_FILE = ".credfile-state.json"


# Unicode format characters (category Cf) that bidi-reorder or hide text, as credfile's own
# terminal.rs escapes them; with C0, DEL and C1 controls and the line/paragraph separators.
FORMAT_RANGES = (
    (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F),
    (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E), (0x200B, 0x200F), (0x2028, 0x202E),
    (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD),
    (0x110CD, 0x110CD), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)


def escape(text):
    """Text shown on one line: control and format characters as \\n, \\t or \\u{202e}.

    credfile escapes names from outside itself; this keeps the module's own messages safe too
    (a message from an older binary, or a path from the report).
    """
    out = []
    for ch in text:
        o = ord(ch)
        if ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or 0x7F <= o <= 0x9F or any(lo <= o <= hi for lo, hi in FORMAT_RANGES):
            out.append("\\u{%x}" % o)
        else:
            out.append(ch)
    return "".join(out)


def credfile_message(stderr, report=None):
    """credfile's error and hint, which never hold a value: from the JSON failure object when
    credfile printed one (its fields cannot be forged by a name inside them), else from the
    `error:` line that starts stderr's last error and the `hint:` line right after it."""
    error = (report or {}).get("error")
    if isinstance(error, dict) and error.get("message"):
        parts = ["error: %s" % error["message"]]
        if error.get("hint"):
            parts.append("hint: %s" % error["hint"])
        return escape(" ".join(parts))
    lines = stderr.splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.startswith("error: ")]
    if not starts:
        return escape(stderr.strip()[-2000:])
    block = [lines[starts[-1]]]
    for ln in lines[starts[-1] + 1:]:
        if not ln.startswith("  "):
            break
        block.append(ln.strip())
    return escape(" ".join(block))


def parse_report(stdout):
    try:
        report = json.loads(stdout)
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def describe(entry):
    """One diff line for a file: metadata only."""
    versions = ", ".join(
        "%s@%s" % (s.get("id"), s.get("version_id")) for s in entry.get("secrets", [])
    )
    return "%s mode %s owner %s:%s secrets %s\n" % (
        entry["path"],
        entry["mode"],
        entry["uid"],
        entry["gid"],
        versions or "-",
    )


def run_diff(report, command):
    before, after = [], []
    for entry in sorted(report.get("files", []), key=lambda e: e["path"]):
        status = entry["status"]
        if status == "unchanged":
            before.append(describe(entry))
            after.append(describe(entry))
        elif status == "created":
            after.append(describe(entry))
        elif status == "updated":
            before.append("%s (previous content or metadata)\n" % entry["path"])
            after.append(describe(entry))
        elif status == "removed":
            before.append("%s\n" % entry["path"])
    return {
        "before_header": "%s (%s, live)" % (report.get("root"), report.get("environment")),
        "after_header": "%s (%s, after %s)" % (report.get("root"), report.get("environment"), command),
        "before": "".join(before),
        "after": "".join(after),
    }


def base_args(module, command):
    p = module.params
    args = [p["binary"], command, "--env", p["env"], "--manifest", p["manifest"]]
    if p["root"]:
        args += ["--root", p["root"]]
    return args


def applied(module):
    command = "plan" if module.check_mode else "apply"
    args = base_args(module, command) + ["--output", "json"]
    if module.params["jitter"]:
        args += ["--jitter", str(module.params["jitter"])]
    rc, stdout, stderr = module.run_command(args)
    report = parse_report(stdout)
    result = {"rc": rc, "changed": False}
    if report is not None:
        summary = report.get("summary", {})
        result["report"] = report
        result["summary"] = summary
        result["changed"] = any(summary.get(k, 0) for k in ("created", "updated", "removed"))
        if module._diff:
            result["diff"] = run_diff(report, command)
    if rc != 0:
        # Exit 8: a change hook failed after the commit; the files are written (changed stays).
        module.fail_json(
            msg="credfile %s failed with exit code %d: %s" % (command, rc, credfile_message(stderr, report)),
            stderr=stderr,
            **result
        )
    if report is None:
        module.fail_json(msg="credfile %s printed no JSON report" % command, stderr=stderr, **result)
    module.exit_json(**result)


def verified(module):
    rc, stdout, stderr = module.run_command(base_args(module, "verify") + ["--output", "json"])
    report = parse_report(stdout)
    result = {"rc": rc, "changed": False}
    if report is not None:
        result["report"] = report
        result["drift"] = report.get("drift", [])
    if rc == 7 and report is not None:
        kinds = escape(", ".join("%s %s" % (d.get("kind"), d.get("path")) for d in result["drift"]))
        module.fail_json(msg="credfile verify: the host has drifted (exit code 7): %s" % kinds, **result)
    if rc != 0 or report is None:
        module.fail_json(
            msg="credfile verify failed with exit code %d: %s" % (rc, credfile_message(stderr, report)),
            stderr=stderr,
            **result
        )
    module.exit_json(**result)


def absent(module):
    if module.check_mode:
        # The root the manifest resolves to, from an offline verify (no AWS call, reads metadata).
        rc, stdout, stderr = module.run_command(
            base_args(module, "verify") + ["--offline", "--output", "json"]
        )
        report = parse_report(stdout)
        if report is None or rc not in (0, 7):
            module.fail_json(
                msg="credfile verify --offline failed with exit code %d: %s" % (rc, credfile_message(stderr)),
                rc=rc,
                stderr=stderr,
            )
        root = report["root"]
        present = os.path.lexists(os.path.join(root, STATE_FILE))
        result = {"rc": 0, "changed": present, "removed": [root] if present else []}
        if module._diff:
            result["diff"] = {"before": "%s\n" % root if present else "", "after": ""}
        module.exit_json(**result)
    rc, stdout, stderr = module.run_command(base_args(module, "clean"))
    if rc != 0:
        module.fail_json(
            msg="credfile clean failed with exit code %d: %s" % (rc, credfile_message(stderr)),
            rc=rc,
            stderr=stderr,
        )
    removed = [ln[len("removed"):].strip() for ln in stdout.splitlines() if ln.startswith("removed ")]
    kept = [ln[len("kept"):].strip() for ln in stdout.splitlines() if ln.startswith("kept ")]
    for k in kept:
        module.warn("credfile clean kept %s" % k)
    result = {"rc": rc, "changed": bool(removed), "removed": removed}
    if module._diff:
        result["diff"] = {"before": "".join("%s\n" % r for r in removed), "after": ""}
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            env=dict(type="str", required=True),
            manifest=dict(type="path", required=True),
            root=dict(type="path"),
            binary=dict(type="path"),
            state=dict(type="str", default="applied", choices=["applied", "verified", "absent"]),
            jitter=dict(type="int", default=0),
        ),
        supports_check_mode=True,
    )
    if module.params["jitter"] < 0 or module.params["jitter"] > 3600:
        module.fail_json(msg="jitter must be 0 to 3600 seconds", rc=2)
    if not module.params["binary"]:
        module.params["binary"] = module.get_bin_path("credfile", required=True, opt_dirs=["/usr/local/bin"])
    # credfile's logs (stderr) stay plain text; the report goes to stdout.
    module.run_command_environ_update = {"CREDFILE_LOG_FORMAT": "text", "NO_COLOR": "1"}
    {"applied": applied, "verified": verified, "absent": absent}[module.params["state"]](module)


if __name__ == "__main__":
    main()
