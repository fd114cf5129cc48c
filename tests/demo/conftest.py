"""Fixtures for the demo-seed tests."""

from __future__ import annotations

import pytest

from apps.demo.services import demo_seed

from .helpers import AS_OF, SMALL


@pytest.fixture
def seeded(db):
    """The demo company at a small scale, as of a fixed day."""
    return demo_seed(seed=42, scale=SMALL, as_of=AS_OF, progress=None)
