"""Shared fixtures: where the real tapes live, and how to miss them."""

import json
import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _need(path: Path) -> Path:
    """The shared data file, or skip (fail under CI) naming what is missing."""
    if path.exists():
        return path
    message = f"shared data missing: {path} (tests read ../shared/data beside the project)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def tape_path():
    """Returns a function: tape file name -> its path under ../shared/data/tapes."""
    return lambda name: _need(SHARED_DATA / "tapes" / name)


@pytest.fixture(scope="session")
def tape_filters():
    """Returns a function: filters.json key (e.g. XRPUSDT-2019) -> its dict."""
    filters = json.loads(_need(SHARED_DATA / "tapes" / "filters.json").read_text())
    return lambda key: filters[key]
