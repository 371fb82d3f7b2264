#!/usr/bin/env python3
"""Counts test results from the runners' machine-readable reports and prints scripts/test.sh's summary line.

    test-summary.py RESULTS_DIR SUITE=STATUS ...

RESULTS_DIR holds one report per suite, named after it:
  SUITE.jsonl  libtest's JSON events (`-Z unstable-options --format json`): one {"type": "test", "event": ...}
               line per test; "ok" passed, "failed"/"timeout" failed, "ignored" skipped.
  SUITE*.xml   JUnit XML (pytest --junitxml, Maven Surefire, node --test-reporter=junit, tests/system): each
               <testcase> passed unless it holds <failure>/<error> (failed) or <skipped> (skipped).
SUITE=STATUS is each suite's exit status. A suite that exited non-zero with no failed test in its report (a
compile error, a crash before the report was written) counts as one failed test, so the line can never say
"0 failed" while the run failed. Prints per-suite lines, then `tests: N passed, N failed, N skipped`; exits 1
when anything failed.
"""

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def count_libtest(path):
    passed = failed = skipped = 0
    failures = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue  # cargo's own lines and test output that went to stdout
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("type") != "test":
            continue
        kind = event.get("event")
        if kind == "ok":
            passed += 1
        elif kind in ("failed", "timeout"):
            failed += 1
            output = event.get("stdout", "").strip().splitlines()
            shown = "\n".join("      " + line for line in output[-30:])
            failures.append(event.get("name", "?") + (f"\n{shown}" if shown else ""))
        elif kind == "ignored":
            skipped += 1
    return passed, failed, skipped, failures


def count_junit(path):
    passed = failed = skipped = 0
    failures = []
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        return 0, 1, 0, [f"{path.name}: unreadable report ({error})"]
    for case in root.iter("testcase"):
        children = {child.tag for child in case}
        if children & {"failure", "error"}:
            failed += 1
            failures.append(f"{case.get('classname', '')} {case.get('name', '?')}".strip())
        elif "skipped" in children:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped, failures


def main():
    results = Path(sys.argv[1])
    statuses = dict(arg.split("=", 1) for arg in sys.argv[2:])
    total = [0, 0, 0]
    for suite, status in statuses.items():
        counts = [0, 0, 0]
        failures = []
        reports = sorted(results.glob(f"{suite}.jsonl")) + sorted(results.glob(f"{suite}*.xml"))
        for report in reports:
            counter = count_libtest if report.suffix == ".jsonl" else count_junit
            p, f, s, names = counter(report)
            counts[0] += p
            counts[1] += f
            counts[2] += s
            failures += names
        if status != "0" and counts[1] == 0:
            counts[1] = 1
            failures.append(f"{suite} exited with status {status} before reporting a failed test")
        print(f"{suite}: {counts[0]} passed, {counts[1]} failed, {counts[2]} skipped")
        for name in failures:
            print(f"  failed: {name}")
        total = [a + b for a, b in zip(total, counts)]
    print(f"tests: {total[0]} passed, {total[1]} failed, {total[2]} skipped")
    if total[1] or total[0] == 0:
        if total[0] == 0:
            print("no test ran", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
