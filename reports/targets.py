"""The fused targets (issue #6) against one `dbench run --json` file, as a markdown table.

    python3 reports/targets.py reports/cpu-reference/run.json > reports/cpu-reference/targets.md

Reads the ResNet-50 stage rows (block 7, p 0.1) that `reports/generate.sh` times and prints
one row per target, each value next to what it is held to; a missed comparison is in bold and
listed under the table. Standard library only; exit code 0 whether or not targets are met
(the bench, tests/bench/test_fused_targets.py, is the gate).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

STAGES = {"56": "32x256x56x56", "28": "32x512x28x28", "14": "32x1024x14x14", "7": "32x2048x7x7"}
HALF = ("float16", "bfloat16")


class Run:
    """The ok rows of a run, looked up by implementation, stage, dtype, mode and in place."""

    def __init__(self, payload: dict) -> None:
        self.meta = payload.get("meta", {})
        self.rows = {
            (c["implementation"], c["shape"], c["dtype"], c["mode"], bool(c.get("inplace"))): c
            for c in payload["cases"]
            if c.get("status") == "ok" and c.get("block_size") == 7 and c.get("p") == 0.1 and c.get("device", "cpu") == "cpu"
        }

    def get(self, impl: str, stage: str, key: str, dtype: str = "float32", mode: str = "forward", inplace: bool = False) -> float | None:
        row = self.rows.get((impl, STAGES[stage], dtype, mode, inplace))
        return None if row is None or row.get(key) is None else float(row[key])

    def ratio(self, impl: str, stage: str, dtype: str = "float32", inplace: bool = False) -> float | None:
        return self.get(impl, stage, "floor_ratio", dtype, inplace=inplace)


def _cell(text: str, ok: bool | None) -> str:
    return f"**{text}**" if ok is False else text


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def _at_most(value: float | None, bound: float | None) -> bool | None:
    return None if value is None or bound is None else value <= bound


def table(run: Run) -> tuple[list[str], list[str], list[str]]:
    """(markdown lines, missed comparisons, comparisons the run has no rows for)."""
    missed: list[str] = []
    unmeasured: list[str] = []

    def check(label: str, stage: str, ok: bool | None) -> bool | None:
        """Records a target's outcome; ok is None when a row it needs is missing."""
        (unmeasured if ok is None else missed if not ok else []).append(f"{label} at {stage}²")
        return ok

    def fused_floor(s: str) -> str:
        value = run.ratio("fused", s)
        return _cell(_num(value), check("fused ×floor", s, _at_most(value, 1.5 if s in ("56", "28") else 3.0)))

    def speedup(s: str) -> str:
        fused = run.get("fused", s, "median_ms")
        cells = []
        for peer in ("torchvision", "timm-per-channel"):
            other = run.get(peer, s, "median_ms")
            if fused is None or other is None:
                check(f"fused vs {peer}", s, None)
                cells.append("–")
                continue
            times = other / fused
            cells.append(_cell(f"{times:.0f}×", check(f"fused vs {peer}", s, times >= (15 if s == "56" else 10))))
        return " / ".join(cells)

    def shared_floor(s: str) -> str:
        value, timm = run.ratio("fused-shared", s), run.ratio("timm", s)
        shown = _num(value) if s not in ("56", "28") else _cell(_num(value), check("fused-shared ×floor", s, _at_most(value, 1.2)))
        return f"{shown} ({_num(timm)})"

    def shared_vs_timm(s: str) -> str:
        mine, timm = run.get("fused-shared", s, "median_ms"), run.get("timm", s, "median_ms")
        ok = None if mine is None or timm is None else mine < timm
        return _cell(f"{_ms(mine)} vs {_ms(timm)}", check("fused-shared vs timm", s, ok))

    def in_place(s: str) -> str:
        fused, shared = run.ratio("fused", s, inplace=True), run.ratio("fused-shared", s, inplace=True)
        return (f"{_cell(_num(fused), check('in place fused', s, _at_most(fused, 3.0)))} / "
                f"{_cell(_num(shared), check('in place fused-shared', s, _at_most(shared, 1.3)))}")

    def half(impl: str, inplace: bool) -> Callable[[str], str]:
        def cell(s: str) -> str:
            fp32 = run.ratio(impl, s, inplace=inplace)
            where = f"{'in place ' if inplace else ''}{impl}"
            parts = [_cell(_num(run.ratio(impl, s, dtype, inplace)),
                           check(f"{where} {dtype} vs fp32", s, _at_most(run.ratio(impl, s, dtype, inplace), fp32)))
                     for dtype in HALF]
            return f"{' / '.join(parts)} ({_num(fp32)})"

        return cell

    rows: list[tuple[str, Callable[[str], str], str]] = [
        ("`fused` ×floor, fp32", fused_floor, "≤ 1.5 (56², 28²), ≤ 3 (14², 7²)"),
        ("`fused` vs torchvision / timm per-channel", speedup, "≥ 15× at 56², ≥ 10×"),
        ("`fused-shared` ×floor (timm's shared default ×floor)", shared_floor, "≤ 1.2 (56², 28²)"),
        ("`fused-shared` vs timm's shared default, ms", shared_vs_timm, "faster"),
        ("in place: `fused` / `fused-shared` ×floor", in_place, "≤ 3 / ≤ 1.3"),
        ("`fused` ×floor, float16 / bfloat16 (fp32)", half("fused", False), "≤ fp32's"),
        ("`fused-shared` ×floor, float16 / bfloat16 (fp32)", half("fused-shared", False), "≤ fp32's"),
        ("in place `fused`, float16 / bfloat16 (fp32)", half("fused", True), "≤ fp32's"),
        ("in place `fused-shared`, float16 / bfloat16 (fp32)", half("fused-shared", True), "≤ fp32's"),
    ]
    lines = ["| | 56² | 28² | 14² | 7² | target |", "|---|---:|---:|---:|---:|---|"]
    lines += [f"| {label} | " + " | ".join(cell(s) for s in STAGES) + f" | {target} |" for label, cell, target in rows]

    # Forward + backward, bytes saved and peak memory, at 56².
    both = run.get("fused", "56", "floor_ratio", mode="backward")
    saved = run.get("fused", "56", "saved_bytes", mode="backward")
    peak = run.get("fused", "56", "peak_mem_bytes")
    elements = 32 * 256 * 56 * 56
    saved_per = None if saved is None else saved / elements
    peak_x = None if peak is None else peak / (elements * 4)
    at_56 = [  # (what, as shown, met, target)
        ("fused forward + backward", f"forward + backward {_num(both)}× the floor's", _at_most(both, 2.0), "≤ 2"),
        ("fused bytes saved for backward", f"{_num(saved_per, 3)} byte saved per element", _at_most(saved_per, 1.0), "≤ 1"),
        ("fused peak memory", f"peak extra memory of a forward call {_num(peak_x)}× the size of x", _at_most(peak_x, 1.3), "≤ 1.3"),
    ]
    lines.append("")
    lines.append("`fused` at 56², fp32: " + "; ".join(f"{_cell(text, ok)} (target {target})" for _, text, ok, target in at_56) + ".")
    for what, _, ok, _ in at_56:
        check(what, "56", ok)
    return lines, missed, unmeasured


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: python3 reports/targets.py RUN.json", file=sys.stderr)
        return 2
    with open(argv[1]) as handle:
        run = Run(json.load(handle))
    lines, missed, unmeasured = table(run)
    meta = run.meta
    print(f"# Targets: {argv[1]}\n")
    print(f"commit {str(meta.get('git_commit', '?'))[:7]} · torch {meta.get('torch_version', '?')} · "
          f"{meta.get('threads', '?')} threads · {meta.get('time', '?')}\n")
    print("×floor: the median's ratio to `x * c` (in place: `x.mul_(c)`) timed alongside. "
          "In bold: a missed comparison.\n")
    print("\n".join(lines))
    print()
    if missed:
        print(f"Missed: {', '.join(missed)}.")
    if unmeasured:
        print(f"Not in this run: {', '.join(unmeasured)}.")
    if not missed and not unmeasured:
        print("Every target is met in this run.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
