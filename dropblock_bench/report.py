"""``dbench report``: a markdown report with PNG plots from a run (and optionally a verify) JSON.

Writes ``README.md``, ``timing_<mode>.png``, ``drop_rate.png`` and ``masks.png`` into the
output folder and returns the markdown's path. No printing.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dropblock_bench import plots
from dropblock_bench.errors import DbenchError
from dropblock_bench.registry import Implementation, default_registry
from dropblock_bench.run.files import load_run, read_json
from dropblock_bench.run.records import case_family, case_key, setting_label

MASK_SHAPE = (2, 2, 28, 28)
"""Two samples of two channels: shows both whether channels share a mask and whether samples do."""
MASK_P, MASK_BLOCK = 0.1, 7


def _load_verify(path: Path) -> dict[str, Any]:
    payload = read_json(path, DbenchError)
    if not isinstance(payload, dict) or not isinstance(payload.get("implementations"), list):
        raise DbenchError(f"{path} is not a `dbench verify --json` file")
    return payload


def _implementations(names: Sequence[str]) -> dict[str, Implementation]:
    registry = default_registry()
    found = {}
    for name in names:
        try:
            found[name] = registry.get(name)
        except DbenchError:
            continue  # e.g. a file.py:callable or an uninstalled peer: no masks or curves for it
    return found


def _timing_markdown(cases: Sequence[Mapping[str, Any]]) -> list[str]:
    """The timing table of one family's cases; device and the call's arguments (``k=7 p=0.1``,
    ``holes=1 L=16``) get columns when the run has several of them."""
    best: dict[tuple[Any, ...], float] = {}

    def group(c: Mapping[str, Any]) -> tuple[Any, ...]:
        return case_key(c)[1:]

    for c in cases:
        if c["status"] == "ok":
            best[group(c)] = min(best.get(group(c), float("inf")), c["median_ms"])
    columns = {"device": lambda c: str(c["device"]), "setting": setting_label}
    varying = [(key, columns[key]) for key in columns if len({columns[key](c) for c in cases}) > 1]
    header = ["shape", *(key for key, _ in varying), "implementation", "mode", "dtype"]
    lines = [
        "| " + " | ".join(header) + " | median ms | IQR ms | × best | × floor | GB/s | peak MB | status |",
        "|" + "---|" * len(header) + "---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in cases:
        mode = plots.mode_label(c["mode"]) + (" in-place" if c.get("inplace") else "")
        setting = " | ".join([str(c["shape"]), *(get(c) for _, get in varying), str(c["implementation"]), mode, str(c["dtype"])])
        if c["status"] != "ok":
            lines.append(f"| {setting} | | | | | | | {c['status']}: {c.get('reason', '')} |")
            continue
        peak = "" if c.get("peak_mem_bytes") is None else f"{c['peak_mem_bytes'] / 1e6:.1f}"
        lines.append(
            f"| {setting} | {c['median_ms']:.4g} | {c['iqr_ms']:.2g}"
            f" | {c['median_ms'] / best[group(c)]:.2f} | {c['floor_ratio']:.2f} | {c['gbps']:.1f} | {peak} | ok |"
        )
    return lines


def _family_timing(family: str, cases: Sequence[Mapping[str, Any]], title: str, output_dir: Path) -> list[str]:
    """One family's timing section: a figure per mode and the table. DropBlock2d's figures keep
    their names (``timing_<mode>.png``); another family's are ``timing_<family>_<mode>.png``."""
    from dropblock_bench.families.catalog import family_named

    lines = ["", f"## Timing: {family_named(family).title}", ""]
    for mode in dict.fromkeys(c["mode"] for c in cases if c["status"] == "ok"):
        name = f"timing_{mode}.png" if family == "dropblock2d" else f"timing_{family}_{mode}.png"
        plots.save_figure(plots.timing_figure(cases, mode, subtitle=title), output_dir / name)
        lines += [f"![timing, {plots.mode_label(mode)}]({name})", ""]
    return lines + _timing_markdown(cases)


def _family_masks(implementations: Mapping[str, Implementation], output_dir: Path, seed: int) -> list[str]:
    """A figure of example masks per family beside DropBlock2d: ``dbench show``'s call of the
    family (:mod:`dropblock_bench.show`), the maps that show its structure."""
    from dropblock_bench import show
    from dropblock_bench.families.catalog import FAMILIES
    from dropblock_bench.render import family_maps

    lines: list[str] = []
    for family in FAMILIES.values():
        members = {name: impl for name, impl in implementations.items() if impl.family == family.name}
        if family.name == "dropblock2d" or not members:
            continue
        panels, failed, case = {}, [], None
        for name, impl in members.items():
            case = show.drawn_case(impl)
            try:
                panels[name] = family_maps(family.name, show.sample(impl, case, seed))
            except Exception as exc:  # noqa: BLE001 - a broken implementation just has no example mask
                failed.append(f"{name} ({type(exc).__name__}: {exc})")
        assert case is not None
        caption = f"{family.title} on {case.shape_label}, {case.setting_label}, seed {seed}"
        figure = f"masks_{family.name}.png"
        plots.save_figure(plots.panels_figure(panels, caption), output_dir / figure)
        lines += ["", f"## Example masks: {family.title}", "", f"![{family.title} masks]({figure})"]
        if failed:
            lines += ["", "No example mask: " + "; ".join(failed)]
    return lines


def _grouped(checks: list[Mapping[str, Any]]) -> str:
    """Checks with the same reason on one line: ``rate, blocks (2 cases): reason``."""
    by_reason: dict[str, tuple[dict[str, None], dict[str, None]]] = {}
    for check in checks:
        names, cases = by_reason.setdefault(check["reason"], ({}, {}))
        names[check["check"]] = None
        cases[check["case"]] = None
    parts = []
    for reason, (names, cases) in by_reason.items():
        where = f" ({len(cases)} cases)" if len(cases) > 1 else ""
        parts.append(f"{', '.join(names)}{where}: {reason}")
    return "<br>".join(parts) or "—"


def verify_markdown(payload: Mapping[str, Any]) -> list[str]:
    """A markdown table of a ``dbench verify --json`` payload: verdict, failures and warnings
    grouped by reason, departures from the paper; then the rate differences those make."""
    lines = ["| implementation | verdict | failed checks | warnings | departs from its reference |", "|---|---|---|---|---|"]
    for report in payload["implementations"]:
        failed = [c for c in report["checks"] if c["verdict"] == "fail"]
        warned = [c for c in report["checks"] if c["verdict"] == "warn"]
        departures = ", ".join(f"{f}={report['contract'][f]}" for f in report["departures_from_paper"]) or "—"
        verdict = "✅ passed" if report["passed"] else f"❌ {report['n_failed']} failed"
        lines.append(f"| {report['implementation']} | {verdict} | {_grouped(failed)} | {_grouped(warned)} | {departures} |")
    differences = [(r["implementation"], line) for r in payload["implementations"] for line in r.get("paper_differences", [])]
    if differences:
        lines += ["", "Where a contract's drop rate departs from the paper's:", ""]
        lines += [f"- **{name}**: {line}" for name, line in differences]
    return lines


def _observed_rates(payload: Mapping[str, Any] | None) -> dict[str, list[tuple[int, float]]]:
    """Verify's measured rates on square maps with the plotted block size and p."""
    observed: dict[str, list[tuple[int, float]]] = {}
    for report in (payload or {}).get("implementations", []):
        for check in report["checks"]:
            if check["check"] != "rate" or not isinstance(check.get("observed"), (int, float)):
                continue
            size, rest = check["case"].split(" ", 1)
            height, width = (int(v) for v in size.split("x"))
            if height == width and rest == f"k={MASK_BLOCK} p={MASK_P:g}":
                observed.setdefault(report["implementation"], []).append((height, float(check["observed"])))
    return observed


def _memory_line(memory: Mapping[str, Any]) -> str:
    """What decided the page faults of fresh outputs in the run, in one line."""
    return (
        f"Memory: malloc {memory.get('malloc')} · transparent huge pages `{memory.get('thp_mode')}`"
        f" · torch's large tensors on huge pages (THP_MEM_ALLOC_ENABLE): {'yes' if memory.get('torch_thp_alloc') else 'no'}"
        f" · fused outputs advised onto huge pages: {'yes' if memory.get('fused_huge_pages') else 'no'}"
    )


def run_title(meta: Mapping[str, Any]) -> str:
    """What names a run: when (minutes, with its UTC offset), at which commit, on what
    machine (the GPU where there was one, else the CPU); e.g.
    ``2026-11-23 08:54 UTC · commit c9c0e80 · AMD EPYC``. Empty when the meta has none of them."""
    parts = []
    if meta.get("time"):
        try:
            moment = datetime.datetime.fromisoformat(str(meta["time"]))
        except ValueError:
            parts.append(str(meta["time"]))
        else:
            offset = moment.utcoffset()
            zone = "" if offset is None else " UTC" if not offset else moment.strftime(" UTC%z")
            parts.append(f"{moment:%Y-%m-%d %H:%M}{zone}")
    if meta.get("git_commit"):
        commit, dirty, _ = str(meta["git_commit"]).partition("-dirty")
        parts.append(f"commit {commit[:7]}{dirty}")
    machine = (meta.get("gpu") or {}).get("name") or meta.get("cpu")
    if machine:
        parts.append(str(machine))
    return " · ".join(parts)


def write_report(run_path: Path, output_dir: Path, verify_path: Path | None = None, seed: int = 0,
                 family: str | None = None) -> Path:  # fmt: skip
    """Write the report (of ``family``'s cases and verdicts alone, where given); returns the
    path of its markdown file. A family the run holds no case of raises ``DbenchError``."""
    from dropblock_bench.verify.sampling import sample_mask

    run = load_run(run_path)
    verify = _load_verify(verify_path) if verify_path else None
    cases = run["cases"]
    if family is not None:
        cases = [c for c in cases if case_family(c) == family]
        if not cases:
            raise DbenchError(f"{run_path} holds no {family} case; its families: "
                              + ", ".join(dict.fromkeys(str(case_family(c)) for c in run["cases"])))  # fmt: skip
        if verify:
            verify = {**verify, "implementations": [r for r in verify["implementations"] if r.get("family", "dropblock2d") == family]}
    output_dir.mkdir(parents=True, exist_ok=True)
    meta = run["meta"]
    names = list(dict.fromkeys(c["implementation"] for c in cases))
    if verify:
        names += [r["implementation"] for r in verify["implementations"] if r["implementation"] not in names]
    implementations = _implementations(names)

    title = run_title(meta) or run_path.name
    lines = [f"# dbench run: {title}", ""]
    lines.append(
        f"torch {meta.get('torch_version')} · {meta.get('cpu')} · {meta.get('threads')} threads"
        f" · GPU: {(meta.get('gpu') or {}).get('name', 'none')} · dbench {meta.get('dbench_version')}"
        f" · commit {meta.get('git_commit') or '?'} · {meta.get('time')}"
    )
    if meta.get("memory"):
        lines += ["", _memory_line(meta["memory"])]
    lines += ["", f"Source: `{run_path.name}`" + (f", `{verify_path.name}`" if verify_path else "")]
    for name in dict.fromkeys(case_family(c) for c in cases):
        lines += _family_timing(name, [c for c in cases if case_family(c) == name], title, output_dir)
    lines += ["", "× floor: the case's median over the median of `x * c` on the same input, timed alternately in the same process."]

    if verify:
        lines += ["", "## Correctness (`dbench verify`)", ""] + verify_markdown(verify)
    dropblocks = {name: impl for name, impl in implementations.items() if impl.family == "dropblock2d"}
    contracts = {name: impl.dropblock_contract for name, impl in dropblocks.items()}
    if contracts:
        figure = plots.drop_rate_figure(contracts, _observed_rates(verify), p=MASK_P, block_size=MASK_BLOCK)
        plots.save_figure(figure, output_dir / "drop_rate.png")
        lines += ["", "## Drop rate delivered vs requested", "", "![drop rate](drop_rate.png)"]
        masks, failed = {}, []
        for name, impl in dropblocks.items():
            try:
                masks[name] = sample_mask(impl, impl.load(), MASK_SHAPE, MASK_P, MASK_BLOCK, seed)
            except Exception as exc:  # noqa: BLE001 - a broken implementation just has no example mask
                failed.append(f"{name} ({type(exc).__name__}: {exc})")
        n, c, h, w = MASK_SHAPE
        caption = f"{n} samples x {c} channels of a {h}x{w} map each, block {MASK_BLOCK}, p = {MASK_P:g}, seed {seed}"
        plots.save_figure(plots.masks_figure(masks, caption), output_dir / "masks.png")
        lines += ["", "## Example masks", "", "![masks](masks.png)"]
        if failed:
            lines += ["", "No example mask: " + "; ".join(failed)]
    lines += _family_masks(implementations, output_dir, seed)
    markdown = output_dir / "README.md"
    markdown.write_text("\n".join(lines) + "\n")
    return markdown
