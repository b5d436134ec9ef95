"""Placeholder until the synthetic corpus lands."""

import pytest


@pytest.fixture(scope="session")
def synthetic() -> None:
    pytest.skip("synthetic corpus not built yet")
