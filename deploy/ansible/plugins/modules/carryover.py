#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: the carryover authors
# Apache License 2.0 (see the carryover repository's Cargo.toml)

"""Ansible module wrapping the carryover CLI: runs one command with --json, parses its
document (stdout) and its error (stderr), and maps carryover's exit codes to Ansible's
changed / failed with the evidence. check_mode runs `transplant --dry-run`, never a write."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: carryover
short_description: Run one carryover command on a WSO2 pack and report its JSON result
version_added: "0.1.0"
description:
  - Runs C(carryover COMMAND --json ...) on the managed node, parses the JSON document it
    prints on stdout and the JSON error it prints on stderr, and turns carryover's exit code
    into the task's result.
  - "Exit codes: 0 is success (C(changed) for C(snapshot), C(transplant) and C(continue));
    4 is success for C(revert) (the pack was reverted); 3 fails with the conflicting files and
    the C(--continue) instructions; 5 fails with the verification mismatches; 6 fails with the
    liveness evidence (a server runs on the pack, or another carryover holds its lock); 1, 2,
    130 and 143 fail with carryover's error message and hint."
  - In check mode C(transplant) runs C(transplant --dry-run) and returns the plan; C(inspect)
    runs as usual (it only reads); C(snapshot), C(verify), C(continue) and C(revert) do not run.
options:
  command:
    description: The carryover command to run.
    type: str
    required: true
    choices: [inspect, snapshot, verify, transplant, continue, revert, recover]
  pack:
    description:
      - The pack the command works on. C(inspect) and C(snapshot) read it; C(transplant),
        C(continue), C(revert) and C(recover) write it (NEW_PACK).
    type: path
  source:
    description:
      - C(transplant) only. The old state to carry, a snapshot archive or the old pack's
        directory.
    type: str
  snapshot:
    description:
      - C(snapshot) writes the archive here (C(-o)); C(verify) reads it.
      - An C(s3://) location is passed through only when the installed carryover documents
        C(s3://) in C(carryover snapshot --help); until then it is refused with a clear message.
    type: str
  against:
    description: C(verify) only. Compare this pack's current state with the snapshot.
    type: path
  base:
    description:
      - C(transplant) only. Pristine base for the three-way merge of configuration files
        (an unpacked pack of the old version, its distribution .zip, or a baseline snapshot).
    type: path
  skip_db:
    description: C(transplant) only. H2 databases to leave behind on purpose.
    type: list
    elements: str
    default: []
  manifest:
    description: Manifest file instead of the built-in one (inspect, snapshot, transplant).
    type: path
  reoptimize:
    description:
      - C(transplant) only. Pass C(--reoptimize) when C(carryover transplant --help) lists it
        and C(carryover inspect) finds the new pack (or an old-pack source) profile-optimised
        (profileSetup.sh leftovers). When carryover has no such option, nothing is passed and
        the profile advice of the transplant's JSON is returned in RV(profile_advice).
    type: bool
    default: true
  profile:
    description:
      - The node's WSO2 profile (for example C(gateway-worker)); replaces C(<profile>) in
        carryover's profileSetup.sh advice.
    type: str
  catalog:
    description: Catalog database (C(--catalog)); default carryover's own.
    type: path
  binary:
    description: The carryover executable (a name looked up in PATH, or a path).
    type: str
    default: carryover
  extra_args:
    description: More arguments for the command, placed before the paths.
    type: list
    elements: str
    default: []
author:
  - carryover authors
notes:
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Snapshot the old pack
  carryover.wso2.carryover:
    command: snapshot
    pack: /opt/wso2am-4.2.0
    snapshot: /var/backups/carryover/gw1-20250101T000000Z.tar.zst

- name: Carry the snapshot into the updated pack (a dry run in check mode)
  carryover.wso2.carryover:
    command: transplant
    source: /var/backups/carryover/gw1-20250101T000000Z.tar.zst
    pack: /opt/wso2am-4.2.0-u15
    base: /opt/pristine/wso2am-4.2.0
    profile: gateway-worker

- name: Prove the new pack holds what was carried
  carryover.wso2.carryover:
    command: verify
    snapshot: /var/backups/carryover/gw1-20250101T000000Z.tar.zst
    against: /opt/wso2am-4.2.0-u15
"""

RETURN = r"""
rc:
  description: carryover's exit code (null when the command was not run).
  returned: always
  type: int
cmd:
  description: The command line run (or that would have run).
  returned: always
  type: list
  elements: str
outcome:
  description: >-
    What the exit code means: ok, error, usage, conflicts, reverted, mismatches, refused,
    interrupted, or skipped (check mode).
  returned: always
  type: str
report:
  description: The JSON document carryover printed on stdout, parsed.
  returned: when carryover printed one
  type: dict
error:
  description: The JSON error carryover printed on stderr (kind, message, evidence, hint).
  returned: when carryover printed one
  type: dict
running:
  description: C(inspect) only. Whether a server runs on the pack.
  returned: for inspect
  type: bool
profiled:
  description: C(inspect) only. Whether the pack carries profileSetup.sh leftovers.
  returned: for inspect
  type: bool
evidence:
  description: >-
    The evidence behind a refusal or a liveness verdict (inspect: the liveness evidence that
    counts; exit 6: carryover's error evidence; exit 5: the mismatches).
  returned: when there is some
  type: raw
conflicts:
  description: Config files (pack-relative) awaiting a FILE.final and C(--continue).
  returned: for transplant
  type: list
  elements: str
instructions:
  description: What to do next after conflicts (exit 3).
  returned: on exit 3
  type: str
plan:
  description: One line per rule and config file of a transplant plan (dry run) or report.
  returned: for transplant
  type: list
  elements: str
advice:
  description: carryover's advice lines (profileSetup.sh, re-indexing, skipped databases).
  returned: for transplant
  type: list
  elements: str
profile_advice:
  description: The advice lines about profile re-optimisation, C(<profile>) filled in.
  returned: for transplant
  type: list
  elements: str
reoptimize:
  description: >-
    Whether --reoptimize was requested, is supported by this carryover, the pack is profiled
    (null when not looked at), and whether it was passed.
  returned: for transplant
  type: dict
warnings_carryover:
  description: carryover's own warning lines from stderr.
  returned: always
  type: list
  elements: str
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

OUTCOMES = {
    0: "ok",
    1: "error",
    2: "usage",
    3: "conflicts",
    4: "reverted",
    5: "mismatches",
    6: "refused",
    130: "interrupted",
    143: "interrupted",
}

# The exit code that means success for each command.
SUCCESS = {
    "inspect": 0,
    "snapshot": 0,
    "verify": 0,
    "transplant": 0,
    "continue": 0,
    "revert": 4,
    "recover": 0,
}

WRITES = ("snapshot", "transplant", "continue", "revert", "recover")


def parse_json(text):
    """The JSON document in `text` (the whole text, else its last line that parses), or None."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def carryover_warnings(stderr):
    return [
        line[len("carryover: warning: "):]
        for line in (stderr or "").splitlines()
        if line.startswith("carryover: warning: ")
    ]


def is_remote(location):
    return bool(location) and location.startswith("s3://")


class Carryover(object):
    def __init__(self, module):
        self.module = module
        p = module.params
        self.binary = p["binary"]
        if os.sep not in self.binary:
            self.binary = module.get_bin_path(self.binary, required=True)
        self._help = {}

    def help_text(self, sub):
        if sub not in self._help:
            rc, out, err = self.module.run_command([self.binary, sub, "--help"])
            self._help[sub] = out + err if rc == 0 else ""
        return self._help[sub]

    def supports(self, sub, flag):
        return flag in self.help_text(sub)

    def profiled(self, pack):
        """Whether `carryover inspect` finds profileSetup.sh leftovers in the pack."""
        rc, out, err = self.module.run_command([self.binary, "inspect", "--json", pack])
        doc = parse_json(out) if rc == 0 else None
        prof = ((doc or {}).get("pack") or {}).get("profile") or {}
        return bool(prof.get("backups") or prof.get("profile"))

    def common(self):
        args = ["--json"]
        if self.module.params["catalog"]:
            args += ["--catalog", self.module.params["catalog"]]
        return args

    def run(self, args):
        cmd = [self.binary] + args
        rc, out, err = self.module.run_command(cmd)
        return cmd, rc, out, err


def require_local_or_supported(module, co, sub, location, what):
    if is_remote(location) and not co.supports(sub, "s3://"):
        module.fail_json(
            msg=(
                "%s %s is an s3:// location, but this carryover has no remote store yet "
                "(`carryover %s --help` does not mention s3://); use a local directory until "
                "the remote-store issue lands" % (what, location, sub)
            ),
            rc=None,
            cmd=[],
            outcome="error",
        )


def plan_lines(report):
    lines = []
    for d in report.get("rules") or []:
        lines.append(
            "%-22s %-8s %8s files %12s bytes  %s  (%s)"
            % (
                d.get("rule"),
                d.get("action"),
                d.get("files"),
                d.get("bytes"),
                d.get("dst") or "-",
                d.get("reason"),
            )
        )
    for c in report.get("configs") or []:
        lines.append("config %s: %s (%s)" % (c.get("path"), c.get("fate"), c.get("reason")))
    return lines


def conflict_instructions(pack, conflicts):
    files = ", ".join(conflicts) if conflicts else "the conflicting files"
    return (
        "%s awaits your decision on %s (the transplant is held, nothing was reverted). For each "
        "FILE: FILE.old is the pristine base, FILE.updated the update's version, FILE.merged a "
        "diff3-marked attempt, and FILE itself is yours; write the result to FILE.final, then "
        "re-run the playbook (it runs `carryover transplant --continue %s`), or run that "
        "command on the node; `carryover transplant --revert %s` abandons the transplant."
        % (pack, files, pack, pack)
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            command=dict(
                type="str",
                required=True,
                choices=["inspect", "snapshot", "verify", "transplant", "continue", "revert", "recover"],
            ),
            pack=dict(type="path"),
            source=dict(type="str"),
            snapshot=dict(type="str"),
            against=dict(type="path"),
            base=dict(type="path"),
            skip_db=dict(type="list", elements="str", default=[]),
            manifest=dict(type="path"),
            reoptimize=dict(type="bool", default=True),
            profile=dict(type="str"),
            catalog=dict(type="path"),
            binary=dict(type="str", default="carryover"),
            extra_args=dict(type="list", elements="str", default=[]),
        ),
        required_if=[
            ("command", "inspect", ["pack"]),
            ("command", "snapshot", ["pack", "snapshot"]),
            ("command", "verify", ["snapshot"]),
            ("command", "transplant", ["pack", "source"]),
            ("command", "continue", ["pack"]),
            ("command", "revert", ["pack"]),
            ("command", "recover", ["pack"]),
        ],
        supports_check_mode=True,
    )
    p = module.params
    command = p["command"]
    co = Carryover(module)
    result = dict(changed=False, rc=None, cmd=[], outcome="skipped", warnings_carryover=[])

    def expand(location):
        return location if is_remote(location) else os.path.abspath(os.path.expanduser(location))

    args = []
    dry_run = False
    if command == "inspect":
        args = ["inspect"] + co.common() + p["extra_args"]
        if p["manifest"]:
            args += ["--manifest", p["manifest"]]
        args += [p["pack"]]
    elif command == "snapshot":
        require_local_or_supported(module, co, "snapshot", p["snapshot"], "snapshot")
        args = ["snapshot"] + co.common() + p["extra_args"]
        if p["manifest"]:
            args += ["--manifest", p["manifest"]]
        args += ["-o", expand(p["snapshot"]), p["pack"]]
    elif command == "verify":
        require_local_or_supported(module, co, "verify", p["snapshot"], "snapshot")
        args = ["verify"] + co.common() + p["extra_args"]
        if p["against"]:
            args += ["--against", p["against"]]
        args += [expand(p["snapshot"])]
    elif command == "transplant":
        require_local_or_supported(module, co, "transplant", p["source"], "source")
        dry_run = module.check_mode
        supported = co.supports("transplant", "--reoptimize")
        profiled = None
        if p["reoptimize"] and supported:
            source = expand(p["source"])
            profiled = co.profiled(p["pack"]) or (os.path.isdir(source) and co.profiled(source))
        passed = bool(p["reoptimize"] and supported and profiled)
        result["reoptimize"] = dict(
            requested=bool(p["reoptimize"]),
            supported=supported,
            profiled=profiled,
            passed=passed,
        )
        args = ["transplant"] + co.common() + p["extra_args"]
        if dry_run:
            args += ["--dry-run"]
        if passed:
            args += ["--reoptimize"]
        if p["base"]:
            args += ["--base", p["base"]]
        for db in p["skip_db"]:
            args += ["--skip-db", db]
        if p["manifest"]:
            args += ["--manifest", p["manifest"]]
        args += [expand(p["source"]), p["pack"]]
    else:
        flag = {"continue": "--continue", "revert": "--revert", "recover": "--recover"}[command]
        args = ["transplant"] + co.common() + [flag, p["pack"]]

    result["cmd"] = [co.binary] + args
    if module.check_mode and command != "inspect" and not dry_run:
        result["changed"] = command in WRITES
        result["msg"] = "check mode: `carryover %s` not run" % command
        # rc stays null here and is 4 for a successful revert: say outright that this is no
        # failure (Ansible fails any result whose rc is not 0 and that does not say).
        module.exit_json(failed=False, **result)

    cmd, rc, out, err = co.run(args)
    report = parse_json(out)
    error = parse_json(err)
    result.update(rc=rc, outcome=OUTCOMES.get(rc, "error"), warnings_carryover=carryover_warnings(err))
    if isinstance(report, dict) or isinstance(report, list):
        result["report"] = report
    else:
        result["stdout"] = out
    if isinstance(error, dict):
        result["error"] = error
    elif err.strip():
        result["stderr"] = err

    if command == "inspect" and isinstance(report, dict):
        live = report.get("liveness") or {}
        result["running"] = bool(live.get("running"))
        prof = (report.get("pack") or {}).get("profile") or {}
        result["profiled"] = bool(prof.get("backups") or prof.get("profile"))
        result["evidence"] = [
            e for e in live.get("evidence") or [] if e.get("kind") not in ("stale-pid-file", "lock-unknown")
        ]
    if command == "transplant":
        doc = report if isinstance(report, dict) else {}
        result["conflicts"] = doc.get("conflicts") or []
        result["advice"] = doc.get("advice") or []
        result["plan"] = plan_lines(doc)
        prof = p["profile"] or "<profile>"
        result["profile_advice"] = [
            a.replace("<profile>", prof) for a in result["advice"] if "profileSetup" in a
        ]
        if doc.get("txn"):
            result["txn"] = doc["txn"]
        if dry_run:
            result["would_conflict"] = [
                c.get("path") for c in doc.get("configs") or [] if c.get("fate") == "conflict"
            ]
    if command == "snapshot" and isinstance(report, dict):
        result["ansible_facts"] = dict(carryover_snapshot=report)
    if command == "verify" and isinstance(report, dict):
        result["ansible_facts"] = dict(carryover_verify=report)

    ok = rc == SUCCESS[command]
    if ok:
        result["changed"] = command in WRITES and not dry_run
        if dry_run:
            # A plan that would carry something is a change check mode reports.
            result["changed"] = bool(report and report.get("files"))
            result["msg"] = "dry run: nothing was changed; %s files (%s bytes) would be carried into %s" % (
                report.get("files") if report else "?",
                report.get("bytes") if report else "?",
                p["pack"],
            )
        else:
            result["msg"] = "carryover %s: %s" % (command, result["outcome"])
        module.exit_json(failed=False, **result)

    # Failures, with the evidence.
    e = error if isinstance(error, dict) else {}
    what = e.get("message") or (err.strip().splitlines() or ["exit %s" % rc])[-1]
    if rc == 3:
        # The new pack holds the carried state and awaits the operator's resolution.
        result["changed"] = command == "transplant" and not dry_run
        if e.get("kind") == "unresolved":
            problems = (e.get("evidence") or {}).get("problems", "")
            result["unresolved"] = [x.strip() for x in problems.split(";") if x.strip()]
        result["instructions"] = conflict_instructions(p["pack"], result.get("conflicts") or [])
        msg = "exit 3 (conflicts): " + (
            ("%d config file(s) conflict: %s. " % (len(result["conflicts"]), ", ".join(result["conflicts"])))
            if result.get("conflicts")
            else what + ". "
        ) + result["instructions"]
    elif rc == 5:
        doc = report if isinstance(report, dict) else {}
        result["evidence"] = doc.get("problems") or e.get("evidence")
        shown = "; ".join(
            "%s %s (%s)" % (x.get("kind"), x.get("path"), x.get("detail") or x.get("rule"))
            for x in (doc.get("problems") or [])[:10]
            if isinstance(x, dict)
        )
        msg = "exit 5 (verification mismatches): %s" % (shown or what)
    elif rc == 6:
        result["evidence"] = e.get("evidence")
        msg = "exit 6 (refused: a server runs on the pack or another carryover holds its lock): %s" % what
    elif rc == 4:
        msg = "exit 4: the pack was reverted: %s" % what
    else:
        msg = "exit %s (%s): %s" % (rc, result["outcome"], what)
    if e.get("hint"):
        msg += " Hint: %s" % e["hint"]
    result["msg"] = msg
    module.fail_json(**result)


if __name__ == "__main__":
    main()
