import pytest

from dropblock_bench.switches import switched_off


@pytest.mark.parametrize(("value", "off"), [("0", True), (" Off ", True), ("FALSE", True), ("no", True),
                                            ("1", False), ("on", False), ("", False)])
def test_the_off_vocabulary(monkeypatch, value, off):
    monkeypatch.setenv("DBENCH_TEST_SWITCH", value)
    assert switched_off("DBENCH_TEST_SWITCH") is off


def test_unset_takes_the_default(monkeypatch):
    monkeypatch.delenv("DBENCH_TEST_SWITCH", raising=False)
    assert not switched_off("DBENCH_TEST_SWITCH")
    assert switched_off("DBENCH_TEST_SWITCH", default="0")
