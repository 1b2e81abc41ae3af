#!/usr/bin/env python3
"""Check that deploy/alerts.yaml, deploy/RUNBOOK.md and deploy/alerts_test.yaml agree.

    alerts_runbook.py deploy/alerts.yaml deploy/RUNBOOK.md deploy/alerts_test.yaml

- every alert has annotations summary and runbook_url, and a severity label (page or
  ticket);
- its runbook_url is deploy/RUNBOOK.md#<anchor> and the runbook has that section
  (`### <AlertName>`, whose anchor is the lower-cased name), and every `### Rampd…`
  section of the runbook is an alert;
- the runbook's alert table lists it with the same severity and `for`, and where its
  expression cell is one code span, with the rule's expression;
- the unit tests check it both firing and not firing.
Prints one line per problem and exits 1 if there is any.
"""

import re
import sys

import yaml


def anchor(heading):
    """GitHub's anchor of a Markdown heading."""
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def squash(expr):
    """An expression with its whitespace normalised."""
    return re.sub(r"\s+", " ", expr).strip()


def main(rules_path, runbook_path, tests_path):
    bad = []
    with open(rules_path, encoding="utf-8") as f:
        rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"] if "alert" in r]
    with open(runbook_path, encoding="utf-8") as f:
        runbook = f.read()
    with open(tests_path, encoding="utf-8") as f:
        tests = yaml.safe_load(f)["tests"]

    sections = {anchor(h): h for h in re.findall(r"^###\s+(.+?)\s*$", runbook, re.M)}
    alert_sections = {a for a, h in sections.items() if h.startswith("Rampd")}
    table = {}
    for row in re.findall(
        r"^\|\s*\[(\w+)\]\(#([\w-]+)\)\s*\|\s*(\w+)\s*\|(.*)\|\s*(\w+)\s*\|\s*$", runbook, re.M
    ):
        table[row[0]] = {"link": row[1], "severity": row[2], "expr": row[3].strip(), "for": row[4]}

    firing, silent = set(), set()
    for t in tests:
        for case in t.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])

    names = set()
    for r in rules:
        name = r["alert"]
        names.add(name)
        ann = r.get("annotations") or {}
        sev = (r.get("labels") or {}).get("severity")
        for key in ("summary", "runbook_url"):
            if key not in ann:
                bad.append(f"{name}: no {key} annotation")
        if sev not in ("page", "ticket"):
            bad.append(f"{name}: severity {sev!r} is neither page nor ticket")
        url = ann.get("runbook_url", "")
        want = f"deploy/RUNBOOK.md#{anchor(name)}"
        if url != want:
            bad.append(f"{name}: runbook_url {url!r}, want {want!r}")
        if anchor(name) not in sections:
            bad.append(f"{name}: RUNBOOK.md has no section '### {name}'")
        row = table.get(name)
        if row is None:
            bad.append(f"{name}: not in RUNBOOK.md's alert table")
        else:
            if row["link"] != anchor(name):
                bad.append(f"{name}: the table links #{row['link']}")
            if row["severity"] != sev:
                bad.append(f"{name}: severity {sev} in the rules, {row['severity']} in RUNBOOK.md")
            # A cell that is one code span is the rule's expression, verbatim.
            cell = re.fullmatch(r"`([^`]+)`", row["expr"])
            if cell and squash(cell.group(1).replace("\\|", "|")) != squash(r["expr"]):
                bad.append(f"{name}: RUNBOOK.md's table says `{cell.group(1)}`, the rule `{squash(r['expr'])}`")
            if row["for"] != r.get("for", "0m"):
                bad.append(f"{name}: for {r.get('for', '0m')} in the rules, {row['for']} in RUNBOOK.md")
        if name not in firing:
            bad.append(f"{name}: no unit test where it fires")
        if name not in silent:
            bad.append(f"{name}: no unit test where it does not fire")
    for a in sorted(alert_sections - {anchor(n) for n in names}):
        bad.append(f"RUNBOOK.md section '### {sections[a]}' is not an alert in {rules_path}")
    for name in sorted(set(table) - names):
        bad.append(f"RUNBOOK.md's table lists {name}, which is not an alert")

    for line in bad:
        print(line)
    if bad:
        print(f"alerts/runbook/tests: {len(bad)} problem(s)")
        return 1
    print(f"alerts/runbook/tests: {len(names)} alerts agree with RUNBOOK.md and are tested")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
