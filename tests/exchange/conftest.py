"""Fixtures of the exchange tests: Binance payloads from ../shared/data/binance."""

import os
from pathlib import Path

import pytest

BINANCE_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "binance"


@pytest.fixture(scope="session")
def binance_data():
    """Returns a function: path under ../shared/data/binance -> that file (skip, or fail under CI, if missing)."""
    def need(name: str) -> Path:
        path = BINANCE_DATA / name
        if not path.exists():
            message = f"shared data missing: {path} (tests read ../shared/data beside the project)"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        return path
    return need
