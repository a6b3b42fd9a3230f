"""Results files: schema, writing as cases finish, reading, merging."""

from __future__ import annotations

import csv
import json

import pytest

from dropblock_bench.metadata import machine_meta
from dropblock_bench.run.files import CsvAppender, JsonRunWriter, RunFileError, load_run, merge_runs
from dropblock_bench.run.matrix import RunCase
from dropblock_bench.run.records import (
    CSV_COLUMNS,
    JSON_COLUMNS,
    CaseRecord,
    CaseStatus,
    MemoryUse,
    Timing,
    case_key,
    case_label,
)

REQUIRED_CSV = [
    "implementation", "device", "dtype", "shape", "block_size", "p", "mode", "median_ms", "iqr_ms", "ci_low_ms",
    "ci_high_ms", "n_samples", "floor_ratio", "gbps", "peak_mem_bytes", "status",
]  # fmt: skip


def _result(name: str = "fused", shape=(2, 4, 8, 8), median: float = 1.0) -> CaseRecord:
    case = RunCase(name, "cpu", "float32", shape, 3, 0.1, "forward")
    timing = Timing(median, 0.1, median, median, 2, 0.5, median / 0.5, 1.0, samples_ms=[median, median], floor_samples_ms=[0.5],
                    samples_per_round=[2], floor_samples_per_round=[1])  # fmt: skip
    return CaseRecord(case, timing=timing, memory=MemoryUse(peak_mem_bytes=1024))


def test_records_round_trip_through_their_flat_form():
    record = _result()
    flat = record.to_dict()
    assert list(flat) == list(JSON_COLUMNS) and list(record.to_dict(samples=False)) == list(CSV_COLUMNS)
    assert CaseRecord.from_dict(flat) == record
    assert case_key(flat) == record.key() == ("fused", "cpu", "float32", "2x4x8x8", 3, 0.1, "forward", False, "dropblock2d", 0)
    skipped = CaseRecord(record.case, CaseStatus.SKIPPED, "cuda is not available")
    assert skipped.to_dict()["median_ms"] is None and CaseRecord.from_dict(skipped.to_dict()) == skipped
    assert case_key({**flat, "inplace": "False"}) == case_key(flat)  # a CSV's spelling of the bool
    assert record.key() == record.case.key  # the typed case and its flat form agree on identity


def test_csv_has_the_documented_columns_and_is_valid_after_each_row(tmp_path):
    assert set(REQUIRED_CSV) <= set(CSV_COLUMNS)
    path = tmp_path / "out.csv"
    writer = CsvAppender(path)
    assert next(csv.reader(path.open())) == list(CSV_COLUMNS)
    for count in (1, 2):
        writer.append(_result(median=float(count)))
        rows = list(csv.DictReader(path.open()))
        assert len(rows) == count and rows[-1]["median_ms"] == str(float(count))
    writer.close()


def test_json_is_valid_after_each_case_and_keeps_samples(tmp_path):
    path = tmp_path / "out.json"
    writer = JsonRunWriter(path, machine_meta({"tool": "test"}))
    assert json.loads(path.read_text())["cases"] == []
    writer.append(_result())
    payload = json.loads(path.read_text())
    assert payload["cases"][0]["samples_ms"] == [1.0, 1.0]
    meta = payload["meta"]
    for field in ("torch_version", "cpu", "threads", "gpu", "git_commit", "time", "dbench_version"):
        assert field in meta
    assert not list(tmp_path.glob("*.tmp"))


def _write(path, results):
    writer = JsonRunWriter(path, {"tool": "test"})
    for result in results:
        writer.append(result)
    return path


def test_merge_combines_disjoint_shards_and_refuses_overlap(tmp_path):
    a = _write(tmp_path / "a.json", [_result("fused"), _result("paper")])
    b = _write(tmp_path / "b.json", [_result("fused", shape=(1, 1, 9, 9))])
    merged = merge_runs([a, b])
    assert len(merged["cases"]) == 3 and len(merged["meta"]["merged_from"]) == 2
    assert merged["meta"]["n_cases"] == 3 and merged["meta"]["shard"] is None  # not the first shard's
    with pytest.raises(RunFileError, match="named twice; shards must not overlap"):
        merge_runs([a, a])
    overlapping = _write(tmp_path / "c.json", [_result("paper")])
    with pytest.raises(RunFileError, match="is in both .*a.json and .*c.json; shards must not overlap"):
        merge_runs([a, overlapping])


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "file not found"), ("{not json", "not valid JSON"), ('{"cases": []}', "expected 'meta' and 'cases'"), ('{"meta": {}, "cases": [{"implementation": "x"}]}', "lacks")],
)
def test_malformed_files_are_refused_clearly(tmp_path, content, message):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RunFileError, match=message):
        load_run(path)


def test_noise_flags_are_one_column_in_csv_and_json_and_files_without_it_still_read(tmp_path):
    record = _result()
    record.timing.noise = ["spread", "floor-drift"]
    flat = record.to_dict()
    assert flat["noise"] == "spread;floor-drift" and list(flat) == list(JSON_COLUMNS)
    assert CaseRecord.from_dict(flat) == record
    path = tmp_path / "out.csv"
    writer = CsvAppender(path)
    writer.append(record)
    writer.append(_result(median=2.0))  # no flag: an empty cell
    writer.close()
    rows = list(csv.DictReader(path.open()))
    assert [row["noise"] for row in rows] == ["spread;floor-drift", ""]
    assert CaseRecord.from_dict(rows[0]).timing.noise == ["spread", "floor-drift"]
    assert CaseRecord.from_dict({**flat, "noise": ["spread"]}).timing.noise == ["spread"]  # a list reads too
    older = {name: value for name, value in flat.items() if name != "noise"}  # written before the column existed
    assert CaseRecord.from_dict(older).timing.noise == []


def test_update_meta_merges_into_the_written_meta_and_keeps_the_cases(tmp_path):
    path = tmp_path / "out.json"
    writer = JsonRunWriter(path, {"tool": "test", "machine_load": {"load_avg_start": [1.0, 1.0, 1.0], "other_cpu_share": None}})
    writer.append(_result())
    writer.update_meta({"machine_load": {"load_avg_start": [1.0, 1.0, 1.0], "other_cpu_share": 0.3}})
    payload = load_run(path)
    assert payload["meta"]["machine_load"]["other_cpu_share"] == 0.3
    assert payload["meta"]["tool"] == "test" and payload["meta"]["format"] == "dbench-run/1"
    assert len(payload["cases"]) == 1 and not list(tmp_path.glob("*.tmp"))


def test_a_familys_case_round_trips_and_a_file_from_before_the_families_reads_as_dropblock2d():
    from dropblock_bench.run.matrix import RunCase

    cutout = CaseRecord(RunCase("cutout", "cpu", "float32", (8, 3, 32, 32), 16, 0.0, "forward", family="cutout", holes=2))
    flat = cutout.to_dict()
    assert CaseRecord.from_dict(flat) == cutout and case_key(flat)[-2:] == ("cutout", 2)
    assert case_label(flat) == "cutout 8x3x32x32 float32 cpu holes=2 L=16 forward"
    old = {key: value for key, value in _result().to_dict().items() if key not in ("family", "holes")}
    assert case_key(old) == _result().key() and CaseRecord.from_dict(old).case.family == "dropblock2d"
    assert case_label(old).endswith("k=3 p=0.1 forward")
