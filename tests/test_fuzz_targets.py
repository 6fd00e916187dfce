"""The coverage-guided fuzz targets (tests/fuzz/) replay their seeds cleanly, without atheris.

``.ci/fuzz.sh`` runs the targets under atheris after the tests; here every seed goes through both
targets as plain functions, so a change that breaks a target or its invariants on valid input
shows up in the test suite, not as a false finding of the fuzzer. Inputs the fuzzer found are
regression tests in ``test_fuzz.py``, each with its expected error and counters.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from corpus import all_sessions

sys.path.insert(0, str(Path(__file__).resolve().parent / "fuzz"))

import seeds
import targets

SEEDS = seeds.seeds()


def test_seeds_are_every_corpus_session_the_sample_and_encoder_output() -> None:
    assert set(SEEDS) == {f"corpus-{s.id}" for s in all_sessions()} | {
        "sample-flow-aggregator", "encoder"}
    assert all(seed[:targets.CONTROL] == bytes(targets.CONTROL) for seed in SEEDS.values())


@pytest.mark.parametrize("target", sorted(targets.TARGETS))
@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_passes_target(target: str, name: str) -> None:
    targets.TARGETS[target](SEEDS[name])


@pytest.mark.parametrize("control", [b"\x00\x00\x00\x01", b"\xff\x10\x20\x30", b"\x07\x07"])
def test_every_control_replays_the_encoder_seed(control: bytes) -> None:
    """Other splits, clocks and session bounds pass too, and so does a control that eats into
    the message header."""
    payload = SEEDS["encoder"][targets.CONTROL:]
    for target in targets.TARGETS.values():
        target(control + payload)
