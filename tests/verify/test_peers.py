"""The peers' real behaviour under `dbench verify` (slow; runs where the libraries are installed).

Each adapter declares the contract its library really has; the verifier must confirm its
drop rates under that contract and flag the departures from the paper.
"""

from __future__ import annotations

import importlib.util

import pytest
from dropblock_bench.implementations import peer_records

from dropblock_bench.registry import list_implementations
from dropblock_bench.spec import PAPER_CONTRACT
from dropblock_bench.verify import VerifySettings, verify_implementation

DROPBLOCK2D_PEERS = [p for p in peer_records.PEERS if p.record.family == "dropblock2d"]  # the others: test_family_peers.py
INSTALLED = {impl.name: impl for impl in list_implementations() if impl.name in {p.record.name for p in DROPBLOCK2D_PEERS}}
# torchvision refuses even block sizes (an API limit, reported by verify as raised errors).
ODD_BLOCKS_ONLY = {"torchvision"}


def test_only_installed_peers_are_registered(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert peer_records.installed_peers() == []
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "timm" else None)
    assert [r.name for r in peer_records.installed_peers()] == ["timm", "timm-per-channel", "timm-drop-path"]


def test_peer_contracts_are_what_the_libraries_do():
    contracts = {peer.record.name: peer.record.contract for peer in peer_records.PEERS}
    assert contracts["torchvision"] == PAPER_CONTRACT
    assert contracts["timm"].departures_from_paper() == ("mask", "seeds", "anchor", "clamp")
    assert contracts["timm-per-channel"].departures_from_paper() == ("seeds", "anchor", "clamp")
    assert contracts["dropblock-pkg"].departures_from_paper() == ("mask", "seeds", "gamma")


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.record.name for p in DROPBLOCK2D_PEERS])
def test_peer_rates_match_their_declared_contract(name):
    if name not in INSTALLED:
        pytest.skip(f"{name} is not installed ({peer_records.INSTALL_HINT})")
    report = verify_implementation(INSTALLED[name], VerifySettings())
    print(f"\n{name}: " + "; ".join(f"{c.check} {c.case}: {c.reason}" for c in report.failures))
    rates = [c for c in report.checks if c.check == "rate"]
    if name in ODD_BLOCKS_ONLY:
        rates = [c for c in rates if int(c.case.split("k=")[1].split()[0]) % 2 == 1]
    assert rates and all(c.verdict == "pass" for c in rates), [(c.case, c.reason) for c in rates if c.verdict != "pass"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["timm", "timm-per-channel", "dropblock-pkg"])
def test_peers_departing_from_the_paper_fail_its_contract(name):
    if name not in INSTALLED:
        pytest.skip(f"{name} is not installed ({peer_records.INSTALL_HINT})")
    as_paper = INSTALLED[name].with_contract(**PAPER_CONTRACT.as_dict())
    report = verify_implementation(as_paper, VerifySettings())
    failed_rate_cases = {c.case for c in report.failures if c.check == "rate"}
    assert "14x14 k=7 p=0.1" in failed_rate_cases
    assert verify_implementation(INSTALLED[name], VerifySettings.for_mode(quick=True)).paper_differences
