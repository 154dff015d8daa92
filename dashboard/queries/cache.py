"""The cache every query function shares (see the package docstring for the tick)."""

from __future__ import annotations

from typing import Any

import streamlit as st

# Eviction only: a tick older than the longest interval is never asked for again.
CACHE_TTL_S = 600
CACHE_ENTRIES = 512


def cached(func: Any) -> Any:
    return st.cache_data(ttl=CACHE_TTL_S, max_entries=CACHE_ENTRIES, show_spinner=False)(func)
