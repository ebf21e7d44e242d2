"""Fixtures for the policy engine tests: paths of the default and the test-only policy, a copy to break."""

from __future__ import annotations

import shutil
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


@pytest.fixture(name="copy")
def fx_copy(policy_dir: Path, tmp_path: Path) -> Path:
    """A copy of the shipped policy (its tables and invariants too) to break."""
    target = tmp_path / "policies"
    shutil.copytree(policy_dir, target, ignore=shutil.ignore_patterns("*.md"))
    return target
