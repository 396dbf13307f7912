"""End-to-end tests run function_app.py in-process, which builds its service (and store) once per worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.service import reset_service


@pytest.fixture(autouse=True)
def _fresh_service() -> Iterator[None]:
    """One service (and store) per test, built from that test's settings."""
    reset_service()
    yield
    reset_service()
