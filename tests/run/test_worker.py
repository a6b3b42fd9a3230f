"""The ``dbench worker`` protocol: JSON lines in, JSON lines out, nothing else on stdout."""

from __future__ import annotations

import io
import json

from dropblock_bench.run.worker import PROTOCOL, serve

CASE = {"implementation": "fused", "device": "cpu", "dtype": "float32", "shape": "2x4x12x12", "block_size": 3, "p": 0.1,
        "mode": "forward", "inplace": False}  # fmt: skip


def _talk(*requests: object) -> list[dict]:
    lines = [request if isinstance(request, str) else json.dumps(request) for request in requests]
    replies = io.StringIO()
    serve(io.StringIO("\n".join(lines) + "\n"), replies)
    return [json.loads(line) for line in replies.getvalue().splitlines()]


def test_a_worker_announces_itself_then_times_rounds_on_request():
    unknown = {**CASE, "implementation": "no-such-dropblock"}
    too_big = {**CASE, "block_size": 20}
    hello, setup, first, second, none = _talk(
        {"op": "setup", "cases": [CASE, unknown, too_big], "threads": 1, "malloc": "system", "input_seed": 0},
        {"op": "round", "index": 0, "block_time_s": 0.001, "active": None},
        {"op": "round", "index": 1, "block_time_s": 0.001, "active": [0]},
        {"op": "round", "index": 2, "block_time_s": 0.001, "active": []},
        {"op": "quit"},
        {"op": "round", "index": 3, "block_time_s": 0.001, "active": None},  # after quit: never answered
    )
    assert hello["protocol"] == PROTOCOL
    assert [case["status"] for case in setup["cases"]] == ["ok", "error", "skipped"]
    assert "no-such-dropblock" in setup["cases"][1]["reason"] and "larger than" in setup["cases"][2]["reason"]
    for reply in (first, second):
        timed = reply["cases"][0]
        assert timed["samples_ms"] and timed["floor_samples_ms"] and all(t > 0 for t in timed["samples_ms"])
        assert reply["cases"][1]["status"] == "error"
    assert none["cases"][0] is None  # not active: not timed


def test_a_bad_request_is_answered_with_an_error_and_the_worker_goes_on():
    _, bad_json, unknown, missing, after = _talk(
        "{oops", {"op": "dance"}, {"op": "round"}, {"op": "setup", "cases": [], "malloc": "system"}
    )
    assert "error" in bad_json and "dance" in unknown["error"] and "error" in missing
    assert after["cases"] == [] and after["backends"] == {} and "torch_version" in after["meta"]
