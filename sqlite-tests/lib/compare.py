#!/usr/bin/env python3
"""Compares a run of SQLite's test files on stock SQLite and on bop with the
expectations file (sqlite-tests/expectations.txt).

A run directory holds, per VFS ("stock", "bop") and test file, FILE.log
(testfixture's output) and FILE.rc ("<exit code> <seconds>"). Per file and VFS
this finds the tests that failed: from the "!Failures on these tests:" line
when testfixture finished the file, else from the "! NAME expected:" and
"NAME...\\nError:" lines it wrote before it stopped. Two pseudo-tests stand for
what is not one test:
  !incomplete   the file stopped before its summary (a crash, a Tcl error
                outside a test, or the timeout: the detail says which)
  !unfreed-memory  SQLite's allocator still held memory at the end

A test that fails on bop and not on stock is a bop failure. Each bop failure
must match a line of the expectations file, or the run fails (exit 1). An
expectation that matched no failure of a file that ran is reported as
"now passing" (the list can shrink). Tests that fail on stock too are only
reported, as are lines of bop's output that name a panic, a failed store or
corruption.

Exit status: 0 when every bop failure is expected, 1 when one is not, 2 on a
usage error or a malformed expectations file.
"""

import argparse
import collections
import fnmatch
import os
import re
import sys

VFSES = ("stock", "bop")

# Reasons an expectation may give: the numbered items of issue 14, the
# kinds of test that cannot pass on a directory store (its last paragraph),
# and "slow": a file that passes on stock but runs past its timeout on bop
# (a cost: its note gives both times).
REASONS = {
    "item-1": "missing parent directories are created (SQLITE_CANTOPEN expected)",
    "item-2": "VACUUM INTO a bop path fails ('output file already exists')",
    "item-3": "PRAGMA auto_vacuum / page_size before the first table are ignored",
    "item-4": "an unreadable store gives SQLITE_NOTADB, not SQLITE_CANTOPEN",
    "item-5": "a VFS over bop without power-safe overwrite: padded WAL commits panic",
    "item-6": "crash-simulation VFS over bop: rewriting committed WAL bytes fails the store",
    "item-7": "open and close are expensive (the file runs past its timeout)",
    "item-8": "libSQL front end: wal_checkpoint(TRUNCATE) does not wait for readers",
    "item-9": "libSQL front end: frequent WAL restarts are slow",
    "item-10": "store creation is not crash-safe",
    "item-11": "a cut during store creation leaves a store that never opens",
    "item-12": "paths inside a store that are not database names",
    "file-layout": "reads, writes, copies or measures the database, -wal, -shm or "
    "journal files directly, or depends on their names",
    "journal-mode": "switches to a rollback journal mode (a bop database is always WAL)",
    "second-process": "opens the database from a second process",
    "unix-vfs-only": "relies on the unix VFS's own counters, fault hooks or "
    "file-control operations (sync counts, open-file count, I/O-error injection)",
    "slow": "runs past its timeout on bop while it passes on stock: a cost, not a "
    "wrong result (the note gives the measured times)",
    "new": "a difference not yet in issue 14 (the note says what)",
}

NOTABLE = [
    ("panic", re.compile(r"panicked at|caught panic|internal error \(a caught panic\)", re.I)),
    ("failed store", re.compile(r"is failed and refuses writes|refuses writes", re.I)),
    ("invariant", re.compile(r"internal invariant violated", re.I)),
    ("corruption", re.compile(r"malformed|corrupt", re.I)),
]

FAIL_LIST = re.compile(r"^!Failures on these tests:(.*)$")
SUMMARY = re.compile(r"^(\d+) errors out of (\d+) tests")
EXPECTED = re.compile(r"^! (\S+) expected: \[")
STARTED = re.compile(r"^(\S+)\.\.\.")


class FileResult:
    """What one test file did on one VFS."""

    def __init__(self, rc, seconds, tests, failures, details, notable, started):
        self.rc = rc
        self.started = started  # names of the tests the file started
        self.seconds = seconds
        self.tests = tests  # number of tests testfixture counted (0 if unknown)
        self.failures = failures  # set of failed test names (pseudo-tests included)
        self.details = details  # name -> first line saying why
        self.notable = notable  # kind -> list of lines


def parse_log(path, rc, seconds, timeout_rc=124):
    failures, details, notable = set(), {}, collections.defaultdict(list)
    started_names = set()
    tests, summary, started, listed = 0, False, None, None
    ok_names = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    for i, line in enumerate(lines):
        m = SUMMARY.match(line)
        if m:
            summary, tests = True, int(m.group(2))
            continue
        m = FAIL_LIST.match(line)
        if m:
            listed = set(m.group(1).split())
            continue
        m = EXPECTED.match(line)
        if m:
            failures.add(m.group(1))
            got = lines[i + 1] if i + 1 < len(lines) else ""
            details.setdefault(m.group(1), (line + " | " + got.strip())[:300])
            continue
        if line.startswith("Error: ") and started is not None:
            failures.add(started)
            details.setdefault(started, line[:300])
            continue
        m = STARTED.match(line)
        if m:
            started = m.group(1)
            started_names.add(started)
            if line.endswith(" Ok"):
                ok_names += 1
        if line.startswith("Unfreed memory:"):
            failures.add("!unfreed-memory")
            details.setdefault("!unfreed-memory", line)
        for kind, pat in NOTABLE:
            if pat.search(line) and len(notable[kind]) < 5:
                notable[kind].append(line[:300])
    if listed is not None:
        failures = {n for n in failures if n.startswith("!")} | listed
    if not summary:
        tests = ok_names + len(failures)
        if rc == timeout_rc:
            why = f"timed out after {seconds:.0f} s"
        elif rc > 128:
            why = f"killed by signal {rc - 128}"
        else:
            why = f"exit code {rc} without a summary: " + stop_reason(lines)
        failures.add("!incomplete")
        details["!incomplete"] = why
    return FileResult(rc, seconds, tests, failures, details, dict(notable), started_names)


def stop_reason(lines):
    """The Tcl error that stopped a file (the line before "while executing"),
    else its last line."""
    for i, line in enumerate(lines):
        if line.startswith("    while executing") and i > 0:
            return re.sub(r"^\S*testfixture: ", "", lines[i - 1])[:200]
    return lines[-1][:200] if lines else "(no output)"


def load_run(out):
    with open(os.path.join(out, "files.txt")) as f:
        files = [line.strip() for line in f if line.strip()]
    results = {}
    for path in files:
        name = os.path.basename(path)
        per_vfs = {}
        for vfs in VFSES:
            rcfile = os.path.join(out, vfs, name + ".rc")
            if not os.path.exists(rcfile):
                continue
            with open(rcfile) as f:
                parts = f.read().split()
            rc, seconds = int(parts[0]), float(parts[1])
            per_vfs[vfs] = parse_log(os.path.join(out, vfs, name + ".log"), rc, seconds)
        results[name] = per_vfs
    return files, results


class Expectation:
    def __init__(self, lineno, file_pat, test_pat, reason, note):
        self.lineno, self.file_pat, self.test_pat = lineno, file_pat, test_pat
        self.reason, self.note = reason, note
        self.used = False

    def matches(self, file, test):
        return fnmatch.fnmatchcase(file, self.file_pat) and fnmatch.fnmatchcase(test, self.test_pat)

    def line(self):
        note = f"  # {self.note}" if self.note else ""
        return f"{self.file_pat} {self.test_pat} {self.reason}{note}"


def load_expectations(path):
    """Lines: FILE TEST REASON [# note]; FILE and TEST may be glob patterns."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            body, _, note = raw.partition("#")
            fields = body.split()
            if not fields:
                continue
            if len(fields) != 3 or fields[2] not in REASONS:
                sys.exit(f"{path}:{n}: want 'FILE TEST REASON [# note]' with REASON one of "
                         f"{', '.join(REASONS)}: {raw.rstrip()}")
            out.append(Expectation(n, fields[0], fields[1], fields[2], note.strip()))
    return out


def find_expectation(expects, file, test):
    """The entry naming this test exactly, else the first pattern matching it."""
    found = None
    for e in expects:
        if e.matches(file, test):
            if e.test_pat == test:
                return e
            found = found or e
    return found


def now_passing(e, ran, results):
    """An unused expectation is judged only where bop ran its test: a test
    named exactly must have started; a pattern needs a file that finished."""
    for f in ran:
        if not fnmatch.fnmatchcase(f, e.file_pat):
            continue
        bop = results[f]["bop"]
        if e.test_pat == "!incomplete" or e.test_pat == "!unfreed-memory":
            if "!incomplete" not in bop.failures:
                return True
        elif any(c in e.test_pat for c in "*?["):
            if "!incomplete" not in bop.failures:
                return True
        elif e.test_pat in bop.started:
            return True
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--mode", default="files")
    ap.add_argument("--write-expect")
    ap.add_argument("--report", help="also write the report to this file")
    a = ap.parse_args()

    files, results = load_run(a.out)
    expects = load_expectations(a.expect)
    ran = [f for f in results if "bop" in results[f] and "stock" in results[f]]
    missing = [f for f in results if f not in ran]

    unexpected, expected_fail, stock_fail = [], [], []
    totals = collections.Counter()
    secs = collections.Counter()
    notable = []
    for file in ran:
        stock, bop = results[file]["stock"], results[file]["bop"]
        totals["stock tests"] += stock.tests
        totals["bop tests"] += bop.tests
        secs["stock"] += stock.seconds
        secs["bop"] += bop.seconds
        for name in sorted(stock.failures):
            stock_fail.append((file, name, stock.details.get(name, ""), name in bop.failures))
        for name in sorted(bop.failures - stock.failures):
            e = find_expectation(expects, file, name)
            row = (file, name, bop.details.get(name, ""), e)
            if e is None:
                unexpected.append(row)
            else:
                e.used = True
                expected_fail.append(row)
        for kind, lines in bop.notable.items():
            if kind == "corruption" and stock.notable.get(kind):
                continue  # the test provokes corruption on purpose
            notable.append((file, kind, lines))

    shrink = [e for e in expects if not e.used and now_passing(e, ran, results)]

    lines = []
    p = lines.append
    p(f"== sqlite-tests, mode {a.mode}: {len(ran)} files ran on both VFSes"
      + (f" ({len(missing)} did not run: {' '.join(missing[:10])})" if missing else ""))
    p(f"   tests: stock {totals['stock tests']}, bop {totals['bop tests']}; "
      f"time summed over files: stock {secs['stock']:.0f} s, bop {secs['bop']:.0f} s")
    by_reason = collections.Counter(e.reason for _, _, _, e in expected_fail)
    p(f"   bop-only failures: {len(expected_fail) + len(unexpected)} "
      f"({len(expected_fail)} expected, {len(unexpected)} not in {os.path.basename(a.expect)})")
    for reason, n in sorted(by_reason.items(), key=lambda kv: -kv[1]):
        p(f"     {n:6d}  {reason}: {REASONS[reason]}")
    both = sum(1 for r in stock_fail if r[3])
    p(f"   stock failures: {len(stock_fail)} ({both} of them fail on bop too); not counted above")
    slow = sorted(((results[f]["bop"].seconds, results[f]["stock"].seconds, f) for f in ran), reverse=True)[:8]
    p("   slowest on bop: " + ", ".join(f"{f} {b:.0f} s (stock {s:.0f} s)" for b, s, f in slow))
    if unexpected:
        p("")
        p("== FAILURES NOT IN THE EXPECTATIONS FILE (these fail the run):")
        for file, name, why, _ in unexpected:
            p(f"  {file} {name}   {why}")
    if shrink:
        p("")
        p("== expectations that matched no failure (now passing: remove them):")
        for e in shrink:
            p(f"  line {e.lineno}: {e.line()}")
    if stock_fail:
        p("")
        p("== failures on stock SQLite too (reported only):")
        for file, name, why, on_bop in stock_fail:
            p(f"  {file} {name}{'  (also on bop)' if on_bop else ''}   {why}")
    if notable:
        p("")
        p("== bop output naming a panic, a failed store, an invariant or corruption:")
        for file, kind, ls in notable:
            for line in ls:
                p(f"  {file} [{kind}] {line}")
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if a.report:
        with open(a.report, "w") as f:
            f.write(text)

    if a.write_expect:
        write_expectations(a.write_expect, expected_fail + unexpected)
        print(f"wrote {a.write_expect}")
    return 1 if unexpected else 0


def write_expectations(path, rows):
    """One line per bop-only failure; the reason from the matching expectation
    or 'new' for the caller to classify."""
    out = []
    for file, name, why, e in sorted(rows, key=lambda r: (r[0], r[1])):
        reason = e.reason if e else "new"
        note = e.note if e else why.replace("#", "")[:160]
        out.append(f"{file} {name} {reason}" + (f"  # {note}" if note else ""))
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    sys.exit(main())
