"""Fixtures for the policy engine tests: paths of the default and the test-only policy."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(name="policy_dir")
def fx_policy_dir() -> Path:
    """The shipped policy directory."""
    return Path(__file__).resolve().parents[3] / "policies"


@pytest.fixture(name="deep_policy_dir")
def fx_deep_policy_dir() -> Path:
    """A test-only policy whose folders nest in folders."""
    return Path(__file__).resolve().parent / "deep_policy"
