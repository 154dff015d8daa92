"""The gateway fixture: a running gateway role over a fresh set of topics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gateway_helpers import Gateway, gateway_settings, open_gateway


@pytest.fixture
def gateway(fresh_settings) -> Iterator[Gateway]:
    yield from open_gateway(gateway_settings(fresh_settings))
