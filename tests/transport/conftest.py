"""Fixtures for the transport tests."""

from __future__ import annotations

import pytest

from tests.transport.helpers import Recorder


@pytest.fixture
def rec() -> Recorder:
    return Recorder()
