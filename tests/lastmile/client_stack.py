"""What the tests of ``lastmile.Client`` on a running stack share: a small River model
and its data, and a wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from river import linear_model, preprocessing

FEATURES = {"amount", "age"}


def training_frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.normal(50.0 + shift, 10.0, n),
            "age": rng.integers(18, 80, n),
        }
    )


def trained_model(frame: pd.DataFrame) -> Any:
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for row in frame.to_dict("records"):
        model.learn_one(row, row["amount"] > 50.0)
    return model


def wait_for(what: Callable[[], Any], timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value is not None and value is not False:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {message}")
