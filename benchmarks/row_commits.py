"""Which commit added each row of a committed results file, reconstructed from git history.

Rows made before run records carried their provenance say nothing of the code that made
them. The commit that first added a row's run key to the file bounds it: the row was made by
the code of that commit's parent or a working tree just after it. Prints, per commit, how
many rows of which methods it added. ``--write FILE`` saves run id -> [commit, date] as JSON;
``--commits FILE`` reads that instead of the history (a shallow clone has none), which is how
the results pages print it.

Usage: python benchmarks/row_commits.py docs/results/fashion-mnist/results.jsonl
       [--write FILE | --commits FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

from deepcore_core.experiment.plan import run_id


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def first_commits(path: str) -> dict[str, tuple[str, str, str]]:
    """run id -> (commit, date, method) of the commit that first held the row."""
    out: dict[str, tuple[str, str, str]] = {}
    for line in reversed(git("log", "--format=%h %ad", "--date=short", "--", path).splitlines()):
        commit, date = line.split()
        try:
            text = git("show", f"{commit}:{path}")
        except subprocess.CalledProcessError:  # the commit removed the file
            continue
        for row in text.splitlines():
            if row.strip():
                key = json.loads(row)["key"]
                out.setdefault(run_id(key), (commit, date, key["method"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="a committed results.jsonl (path in the repository)")
    ap.add_argument("--write", type=Path, help="save run id -> [commit, date] as JSON")
    ap.add_argument("--commits", type=Path, help="read run id -> [commit, date] from JSON")
    args = ap.parse_args()
    if args.commits:
        saved = json.loads(args.commits.read_text())
        found = {k: (c, d, "") for k, (c, d) in saved.items()}
    else:
        found = first_commits(args.results)
    current = [json.loads(r)["key"] for r in Path(args.results).read_text().splitlines() if r]
    rows = {
        run_id(k): (*found.get(run_id(k), ("uncommitted", ""))[:2], k["method"]) for k in current
    }
    by: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for commit, date, method in rows.values():
        by[(date, commit)][method] += 1
    print("| commit | date | rows | methods |\n|---|---|---|---|")
    for (date, commit), methods in sorted(by.items()):
        names = ", ".join(f"{m} {n}" for m, n in sorted(methods.items()))
        print(f"| {commit} | {date} | {sum(methods.values())} | {names} |")
    if args.write:
        saved = {k: [c, d] for k, (c, d, _) in sorted(rows.items())}
        args.write.write_text(json.dumps(saved, indent=0) + "\n")


if __name__ == "__main__":
    main()
