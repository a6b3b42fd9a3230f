"""Measure the false alarms and the power of ``dbench ab`` and of ``dbench compare`` on two
separate runs, on this machine, as a CI job would use them. Writes ``results.json`` (every
repetition) and ``results.md`` (the summary) next to this file.

    .venv/bin/python reports/compare-guarantees/measure.py            # the committed numbers
    .venv/bin/python reports/compare-guarantees/measure.py --reps 2   # a quick try

Each side is a small wrapper around this checkout's ``dbench`` that sets
``DBENCH_PLANTED_EXTRA`` for :mod:`planted` (0: ``fused`` itself); a "busy" side also starts a
CPU-bound process that spins for its first seconds, beside the timing. Conditions:

- A/A (identical code on both sides), on both quick-preset shapes, forward: false alarms;
  a quarter of the repetitions with the busy head (each start of a head ``dbench`` spawns a
  process that spins for 3 s: during part of a head run, or of each head worker's start).
- +10 % and +30 % (an extra read of 22 % / 70 % of x), at 8x256x56x56 forward, where the extra
  read costs in proportion (at 8x1024x14x14 one more op call alone costs more than 10 %):
  power. The true slowdown is measured from all their rounds together and reported.

Every command runs at its defaults but for the matrix and, for ``dbench ab`` in A/A and at
+30 %, ``--max-pairs 16`` (one look instead of the default two), which keeps the whole
measurement near 1.5 hours on 2 cores; with fewer looks each look's level is larger (alpha over
the cases and looks), so the false-alarm rate measured here bounds the default's from above.
``--tool ab`` (or ``compare``) measures one tool and ``--only 'ab +10 %'`` one condition, keeping
every other committed repetition.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DBENCH = Path(sys.executable).parent / "dbench"
PLANTED = f"{HERE.relative_to(ROOT)}/planted.py:drop_block"
BOTH_SHAPES = ["--impl", PLANTED, "--mode", "fwd"]
ONE_SHAPE = ["--impl", PLANTED, "--mode", "fwd", "--shape", "8x256x56x56"]
BURN_S = 3


def _wrapper(folder: Path, name: str, extra: float, busy: bool) -> str:
    path = folder / name
    burner = f"({sys.executable} -c 'import time\nend = time.time() + {BURN_S}\nwhile time.time() < end: pass' &)\n" if busy else ""
    path.write_text(f"#!/bin/sh\nexport DBENCH_PLANTED_EXTRA={extra}\n{burner}exec {DBENCH} \"$@\"\n")
    path.chmod(0o755)
    return str(path)


def _ab(folder: Path, head_extra: float, busy: bool, matrix: list[str], max_pairs: int) -> dict:
    base, head = _wrapper(folder, "base", 0.0, False), _wrapper(folder, "head", head_extra, busy)
    out = folder / "ab.json"
    started = time.monotonic()
    pairs = ["--max-pairs", str(max_pairs)] if max_pairs else []
    done = subprocess.run([str(DBENCH), "ab", "--base", base, "--head", head, *matrix, *pairs, "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, check=False)  # fmt: skip
    return _result(out, done.returncode, time.monotonic() - started, done.stderr)


def _compare(folder: Path, head_extra: float, busy: bool, matrix: list[str], max_pairs: int) -> dict:
    del max_pairs  # dbench ab only
    base, head = _wrapper(folder, "base", 0.0, False), _wrapper(folder, "head", head_extra, busy)
    started = time.monotonic()
    for side, command in (("base", base), ("head", head)):
        subprocess.run([command, "run", *matrix, "--json", str(folder / f"{side}.json")], cwd=ROOT, capture_output=True, check=False)
    out = folder / "compare.json"
    done = subprocess.run([str(DBENCH), "compare", str(folder / "base.json"), str(folder / "head.json"), "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, check=False)  # fmt: skip
    return _result(out, done.returncode, time.monotonic() - started, done.stderr)


def _result(out: Path, code: int, elapsed: float, stderr: str) -> dict:
    if not out.exists():
        return {"exit": code, "elapsed_s": elapsed, "error": stderr.strip().splitlines()[-1:] or ["?"]}
    payload = json.loads(out.read_text())
    out.unlink()
    cases = [{"case": c["key"], "verdict": c["verdict"], "ratio": c["ratio"], "n": c["n_base"]} for c in payload["cases"]]
    return {"exit": code, "elapsed_s": round(elapsed, 1), "stop": payload.get("stop", ""), "cases": cases}


def _summary(name: str, reps: list[dict], want: str) -> dict:
    verdicts = [c["verdict"] for r in reps for c in r.get("cases", [])]
    ratios = [c["ratio"] for r in reps for c in r.get("cases", [])]
    return {
        "condition": name,
        "repetitions": len(reps),
        "job failed (exit 1)": sum(r["exit"] == 1 for r in reps),
        "errors": sum("error" in r for r in reps),
        "case verdicts": len(verdicts),
        "regression": verdicts.count("regression"),
        "~": verdicts.count("~"),
        "inconclusive": verdicts.count("inconclusive"),
        "improvement": verdicts.count("improvement"),
        "wanted": want,
        "median estimated ratio": round(statistics.median(ratios), 4) if ratios else None,
        "median seconds": round(statistics.median(r["elapsed_s"] for r in reps), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20, help="repetitions of each A/A condition (+10 %%: half, +30 %%: a quarter)")
    parser.add_argument("--tool", choices=["ab", "compare"], help="measure this tool only; keep the other's committed repetitions")
    parser.add_argument("--only", metavar="CONDITION", help="measure one condition ('ab +10 %%'); keep every other committed one")
    args = parser.parse_args()
    reps, busy_every = args.reps, 4
    plan = [  # (tool, condition, head extra, matrix, repetitions, wanted verdict, ab's --max-pairs)
        ("compare", "A/A", 0.0, BOTH_SHAPES, reps, "no regression", 0),
        ("compare", "+10 %", 0.22, ONE_SHAPE, max(1, reps // 2), "regression", 0),
        ("compare", "+30 %", 0.70, ONE_SHAPE, max(1, reps // 4), "regression", 0),
        ("ab", "+30 %", 0.70, ONE_SHAPE, max(1, reps // 4), "regression", 16),
        ("ab", "+10 %", 0.22, ONE_SHAPE, max(1, reps // 2), "regression", 0),
        ("ab", "A/A", 0.0, BOTH_SHAPES, reps, "no regression", 16),
    ]
    keys = [f"{tool} {condition}" for tool, condition, *_ in plan]
    if args.only and args.only not in keys:
        parser.error(f"--only takes one of: {', '.join(keys)}")
    chosen = [key for key in keys if (not args.tool or key.startswith(f"{args.tool} ")) and (not args.only or key == args.only)]
    results: dict[str, list[dict]] = {}
    if (args.tool or args.only) and (HERE / "results.json").exists():
        kept = json.loads((HERE / "results.json").read_text())["repetitions"]
        results = {key: reps for key, reps in kept.items() if key not in chosen}
    with tempfile.TemporaryDirectory() as scratch:
        for tool, condition, extra, matrix, count, _, max_pairs in plan:
            key = f"{tool} {condition}"
            if key not in chosen:
                continue
            results[key] = []
            for index in range(count):
                busy = condition == "A/A" and index % busy_every == busy_every - 1
                run = (_ab if tool == "ab" else _compare)(Path(scratch), extra, busy, matrix, max_pairs)
                run["max_pairs"] = max_pairs or None
                run["busy head"] = busy
                results[key].append(run)
                print(f"{key} {index + 1}/{count}: exit {run['exit']}, {run['elapsed_s']} s,",
                      [c["verdict"] for c in run.get("cases", [])], run.get("error", ""), flush=True)  # fmt: skip
            done = [entry for entry in plan if f"{entry[0]} {entry[1]}" in results]
            _write([_summary(f"{t} {c}", results[f"{t} {c}"], want) for t, c, _, _, _, want, _ in done], results, busy_every)


def _write(summaries: list[dict], results: dict[str, list[dict]], busy_every: int) -> None:
    meta = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
            "busy": f"every {busy_every}th A/A repetition: a CPU-bound process spins for the head's first {BURN_S} s"}  # fmt: skip
    (HERE / "results.json").write_text(json.dumps({"meta": meta, "summary": summaries, "repetitions": results}, indent=1) + "\n")
    columns = list(summaries[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(s[c]) for c in columns) + " |" for s in summaries]
    (HERE / "results.md").write_text(f"Measured {meta['time']} ({meta['busy']}).\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
