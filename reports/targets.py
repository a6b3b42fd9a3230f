"""The fused kernels' performance targets: their bounds, and a markdown table of one run against them.

    python3 reports/targets.py reports/cpu-reference/run.json > reports/cpu-reference/targets.md

The bounds below are the one copy: tests/bench/test_fused_targets.py (the gate) imports them
from here. The table reads the ResNet-50 stage rows (block 7, p 0.1, CPU) that
`reports/generate.sh` times and prints one row per target, each value next to what it is held
to. A value on the wrong side of its bound is in bold and listed under the table.

Bounds on a ratio or a speed-up are judged by this run's medians. "Half precision no slower
than fp32, each relative to its own floor" is a comparison of two noisy ratios, and is judged
the way the bench judges it: over the run's rounds as paired replicates (each round times the
dtypes and their floors back to back, and `dbench run` records how many samples each round
gave), by a one-sided Wilcoxon signed-rank test on the per-round excess of the half ratio over
fp32's (`dropblock_bench.stats.ratio_excess`); slower when p < HALF_ALPHA. A run with fewer than
MIN_PAIRED_ROUNDS rounds (or one that did not record them) is judged by its medians instead.
Needs dropblock_bench (and so scipy) importable. Exit code 0 whether or not targets are met, 2
for a file that is not a `dbench run --json`.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable

from dropblock_bench.run.records import case_key, case_label
from dropblock_bench.stats import RatioExcess, ratio_excess, round_medians

# The ResNet-50 stage shapes at batch 32, by map side.
STAGES: dict[str, tuple[int, int, int, int]] = {
    "56": (32, 256, 56, 56), "28": (32, 512, 28, 28), "14": (32, 1024, 14, 14), "7": (32, 2048, 7, 7)}  # fmt: skip
HALF = ("float16", "bfloat16")
# Whose float16 and bfloat16 ratios to their floors must be no more than their fp32 ratio.
HALF_IMPLS = ("fused", "fused-shared")
# Half precision is slower than fp32 when the paired test over rounds gives p below this (the
# bench's half-precision test uses it too).
HALF_ALPHA = 0.01
# The one-sided signed-rank test's smallest p over n rounds is 2**-n, so it can go below
# HALF_ALPHA only from this many rounds on (7 for 0.01). With fewer, the medians decide.
MIN_PAIRED_ROUNDS = math.floor(math.log2(1 / HALF_ALPHA)) + 1
# Forward, fp32, out of place: the most a median may be, as a multiple of the floor x * c.
FLOOR_TARGETS = {("fused", "56"): 1.5, ("fused", "28"): 1.5, ("fused", "14"): 3.0, ("fused", "7"): 3.0,
                 ("fused-shared", "56"): 1.2, ("fused-shared", "28"): 1.2}  # fmt: skip
# How many times faster fused must be than torchvision's and timm's per-channel DropBlock.
SPEEDUP_TARGETS = {"56": 15.0, "28": 10.0, "14": 10.0, "7": 10.0}
SPEEDUP_PEERS = ("torchvision", "timm-per-channel")
# In place, as a multiple of the in-place floor x.mul_(c).
IN_PLACE_TARGETS = {"fused": 3.0, "fused-shared": 1.3}
# fused at 56², fp32: forward + backward vs the floor's; bytes saved for backward per element;
# a forward call's peak extra memory over the size of x.
FORWARD_BACKWARD_TARGET = 2.0
SAVED_BYTES_PER_ELEMENT_TARGET = 1.0
PEAK_MEMORY_TARGET = 1.3


BLOCK_SIZE, P, DEVICE = 7, 0.1, "cpu"  # the setting every target is stated for


def _shape_text(stage: str) -> str:
    return "x".join(map(str, STAGES[stage]))


def _key(impl: str, stage: str, dtype: str, mode: str, inplace: bool) -> tuple[object, ...]:
    """The run file's identity of the row a target reads (:func:`case_key`)."""
    return case_key({"implementation": impl, "device": DEVICE, "dtype": dtype, "shape": _shape_text(stage),
                     "block_size": BLOCK_SIZE, "p": P, "mode": mode, "inplace": inplace})  # fmt: skip


class Run:
    """The ok CPU rows of a run at block 7, p 0.1, by implementation, stage, dtype, mode and in
    place, and each row's rounds where the run recorded them."""

    def __init__(self, payload: object) -> None:
        if not isinstance(payload, dict) or not isinstance(payload.get("cases"), list):
            raise ValueError("not a `dbench run --json` file (no 'cases' list)")  # noqa: TRY004 - the script reports ValueErrors as bad input
        self.meta = payload.get("meta", {})
        self.rows: dict[tuple[object, ...], dict] = {}
        self._rounds: dict[tuple[object, ...], list[tuple[float, float]]] = {}
        for case in payload["cases"]:
            if not (case.get("status") == "ok" and case.get("block_size") == BLOCK_SIZE and case.get("p") == P
                    and case.get("device", DEVICE) == DEVICE):
                continue
            key = case_key({"device": DEVICE, **case})
            if key in self.rows:
                raise ValueError(f"two rows for {case_label({'device': DEVICE, **case})}: merge shards with `dbench merge`, not by hand")
            self.rows[key] = case
            if case.get("samples_per_round") and case.get("floor_samples_per_round"):
                try:
                    times = round_medians(case["samples_ms"], case["samples_per_round"])
                    floors = round_medians(case["floor_samples_ms"], case["floor_samples_per_round"])
                except (KeyError, TypeError, ValueError) as error:
                    raise ValueError(f"{case_label({'device': DEVICE, **case})}: its samples do not split into its rounds ({error})") from None
                if len(times) != len(floors):
                    raise ValueError(f"{case_label({'device': DEVICE, **case})}: {len(times)} rounds of samples but {len(floors)} of floor samples")
                self._rounds[key] = list(zip(times, floors))

    def get(self, impl: str, stage: str, key: str, dtype: str = "float32", mode: str = "forward", inplace: bool = False) -> float | None:
        row = self.rows.get(_key(impl, stage, dtype, mode, inplace))
        return None if row is None or row.get(key) is None else float(row[key])

    def ratio(self, impl: str, stage: str, dtype: str = "float32", inplace: bool = False) -> float | None:
        return self.get(impl, stage, "floor_ratio", dtype, inplace=inplace)

    def rounds(self, impl: str, stage: str, dtype: str = "float32", inplace: bool = False) -> list[tuple[float, float]]:
        """Forward rows: each round's (median ms, floor median ms); empty when the run did not record rounds."""
        return self._rounds.get(_key(impl, stage, dtype, "forward", inplace), [])


def half_excess(run: Run, impl: str, stage: str, dtype: str, inplace: bool = False) -> RatioExcess | None:
    """How far ``dtype``'s ratio to its floor exceeds fp32's, over the run's paired rounds; None
    when either row has fewer than MIN_PAIRED_ROUNDS rounds, or they have different numbers."""
    half, fp32 = run.rounds(impl, stage, dtype, inplace), run.rounds(impl, stage, inplace=inplace)
    if len(half) != len(fp32) or len(half) < MIN_PAIRED_ROUNDS:
        return None
    return ratio_excess([(h, h_floor, f, f_floor) for (h, h_floor), (f, f_floor) in zip(half, fp32)])


def _cell(text: str, ok: bool | None) -> str:
    return f"**{text}**" if ok is False else text


def _num(value: float | None, bound: float | None = None, digits: int = 2) -> str:
    """``value`` to ``digits`` decimals, more where that would print it equal to ``bound``
    while on the other side of it (1.504 against 1.5 shows as 1.504, not 1.50)."""
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    while bound is not None and value != bound and float(text) == round(bound, digits) and digits < 6:
        digits += 1
        text = f"{value:.{digits}f}"
    return text


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def _at_most(value: float | None, bound: float | None) -> bool | None:
    return None if value is None or bound is None else value <= bound


def table(run: Run) -> tuple[list[str], list[str], list[str]]:
    """(markdown lines, comparisons missed by the medians, comparisons the run has no rows for)."""
    missed: list[str] = []
    unmeasured: list[str] = []

    def check(label: str, stage: str, ok: bool | None) -> bool | None:
        """Records a target's outcome; ok is None when a row it needs is missing."""
        (unmeasured if ok is None else missed if not ok else []).append(f"{label} at {stage}²")
        return ok

    def floor(impl: str) -> Callable[[str], str]:
        def cell(s: str) -> str:
            value, bound = run.ratio(impl, s), FLOOR_TARGETS.get((impl, s))
            shown = _num(value, bound)
            if bound is not None:
                shown = _cell(shown, check(f"{impl} ×floor", s, _at_most(value, bound)))
            return shown if impl == "fused" else f"{shown} ({_num(run.ratio('timm', s))})"

        return cell

    def speedup(s: str) -> str:
        fused = run.get("fused", s, "median_ms")
        cells = []
        for peer in SPEEDUP_PEERS:
            other = run.get(peer, s, "median_ms")
            if fused is None or other is None:
                check(f"fused vs {peer}", s, None)
                cells.append("–")
                continue
            times, bound = other / fused, SPEEDUP_TARGETS[s]
            shown = f"{times:.0f}×" if round(times) != round(bound) or times == bound else f"{_num(times, bound, 1)}×"
            cells.append(_cell(shown, check(f"fused vs {peer}", s, times >= bound)))
        return " / ".join(cells)

    def shared_vs_timm(s: str) -> str:
        mine, timm = run.get("fused-shared", s, "median_ms"), run.get("timm", s, "median_ms")
        ok = None if mine is None or timm is None else mine < timm
        return _cell(f"{_ms(mine)} vs {_ms(timm)}", check("fused-shared vs timm", s, ok))

    def in_place(s: str) -> str:
        cells = []
        for impl, bound in IN_PLACE_TARGETS.items():
            value = run.ratio(impl, s, inplace=True)
            cells.append(_cell(_num(value, bound), check(f"in place {impl}", s, _at_most(value, bound))))
        return " / ".join(cells)

    paired: list[str] = []  # half comparisons the paired test decided against the medians' reading

    def half(impl: str, inplace: bool) -> Callable[[str], str]:
        def cell(s: str) -> str:
            fp32 = run.ratio(impl, s, inplace=inplace)
            where = f"{'in place ' if inplace else ''}{impl}"
            parts = []
            for dtype in HALF:
                value = run.ratio(impl, s, dtype, inplace)
                by_medians = _at_most(value, fp32)
                excess = half_excess(run, impl, s, dtype, inplace) if by_medians is not None else None
                ok = by_medians if excess is None else excess.p_value >= HALF_ALPHA
                if excess is not None and ok != by_medians:
                    paired.append(f"{where} {dtype} at {s}² ({_num(value, fp32)} against {_num(fp32)}: median excess "
                                  f"{excess.median:+.3f} over {excess.rounds} rounds, p = {excess.p_value:.2g})")
                parts.append(_cell(_num(value, fp32), check(f"{where} {dtype} vs fp32", s, ok)))
            return f"{' / '.join(parts)} ({_num(fp32)})"

        return cell

    rows: list[tuple[str, Callable[[str], str], str]] = [
        ("`fused` ×floor, fp32", floor("fused"), "≤ 1.5 (56², 28²), ≤ 3 (14², 7²)"),
        ("`fused` vs torchvision / timm per-channel", speedup, "≥ 15× at 56², ≥ 10×"),
        ("`fused-shared` ×floor (timm's shared default ×floor)", floor("fused-shared"), "≤ 1.2 (56², 28²)"),
        ("`fused-shared` vs timm's shared default, ms", shared_vs_timm, "faster"),
        ("in place: `fused` / `fused-shared` ×floor", in_place, "≤ 3 / ≤ 1.3"),
        ("`fused` ×floor, float16 / bfloat16 (fp32)", half("fused", False), "≤ fp32's"),
        ("`fused-shared` ×floor, float16 / bfloat16 (fp32)", half("fused-shared", False), "≤ fp32's"),
        ("in place `fused`, float16 / bfloat16 (fp32)", half("fused", True), "≤ fp32's"),
        ("in place `fused-shared`, float16 / bfloat16 (fp32)", half("fused-shared", True), "≤ fp32's"),
    ]
    lines = ["| | 56² | 28² | 14² | 7² | target |", "|---|---:|---:|---:|---:|---|"]
    lines += [f"| {label} | " + " | ".join(cell(s) for s in STAGES) + f" | {target} |" for label, cell, target in rows]

    # Forward + backward, bytes saved and peak memory, at 56² in fp32.
    elements = math.prod(STAGES["56"])
    both = run.get("fused", "56", "floor_ratio", mode="backward")
    saved = run.get("fused", "56", "saved_bytes", mode="backward")
    peak = run.get("fused", "56", "peak_mem_bytes")
    saved_per = None if saved is None else saved / elements
    peak_x = None if peak is None else peak / (elements * 4)  # x is float32: 4 bytes an element
    at_56 = [  # (what, as shown, met, target)
        ("fused forward + backward", f"forward + backward {_num(both, FORWARD_BACKWARD_TARGET)}× the floor's",
         _at_most(both, FORWARD_BACKWARD_TARGET), f"≤ {FORWARD_BACKWARD_TARGET:g}"),
        ("fused bytes saved for backward", f"{_num(saved_per, SAVED_BYTES_PER_ELEMENT_TARGET, 3)} byte saved per element",
         _at_most(saved_per, SAVED_BYTES_PER_ELEMENT_TARGET), f"≤ {SAVED_BYTES_PER_ELEMENT_TARGET:g}"),
        ("fused peak memory", f"peak extra memory of a forward call {_num(peak_x, PEAK_MEMORY_TARGET)}× the size of x",
         _at_most(peak_x, PEAK_MEMORY_TARGET), f"≤ {PEAK_MEMORY_TARGET:g}"),
    ]  # fmt: skip
    lines.append("")
    lines.append("`fused` at 56², fp32: " + "; ".join(f"{_cell(text, ok)} (target {target})" for _, text, ok, target in at_56) + ".")
    for what, _, ok, _ in at_56:
        check(what, "56", ok)
    if paired:
        lines.append("")
        lines.append("Half precision decided by the paired test, not the medians: " + "; ".join(paired) + ".")
    return lines, missed, unmeasured


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: python3 reports/targets.py RUN.json", file=sys.stderr)
        return 2
    try:
        with open(argv[1]) as handle:
            run = Run(json.load(handle))
    except (OSError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        print(f"error: {argv[1]}: {error}", file=sys.stderr)
        return 2
    lines, missed, unmeasured = table(run)
    meta = run.meta
    print(f"# Targets: {argv[1]}\n")
    print(f"commit {str(meta.get('git_commit', '?'))[:7]} · torch {meta.get('torch_version', '?')} · "
          f"{meta.get('threads', '?')} threads · {meta.get('time', '?')}\n")
    print("×floor: the median's ratio to `x * c` (in place: `x.mul_(c)`) timed alongside. In bold: on the "
          "wrong side of its target. Half precision against fp32 is judged over the run's rounds, paired "
          f"(one-sided Wilcoxon signed-rank test, slower at p < {HALF_ALPHA:g}), where the run recorded at least "
          f"{MIN_PAIRED_ROUNDS}; otherwise, and every other target, by the medians.\n")
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
