"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

# The real data sits beside the repository (`../shared/data`), never inside it.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to the real annotation files (`../shared/data` relative to the repo root)."""
    assert SHARED_DATA.is_dir(), f"missing {SHARED_DATA}: clone the repo with shared/ beside it"
    return SHARED_DATA
