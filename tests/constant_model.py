"""A model whose score says which version answered, for tests that register several."""

from __future__ import annotations

from typing import Any


def tiny_model(bias: float = 0.0) -> Any:
    """A River logistic regression answering sigmoid(bias) whatever ``x`` is: it learns
    nothing (zero learning rates), so versions registered with different biases score
    apart."""
    from river import linear_model, optim

    model = linear_model.LogisticRegression(optimizer=optim.SGD(0.0), intercept_lr=0.0)
    model.learn_one({"x": 0.0}, True)
    model.learn_one({"x": 0.0}, False)
    model.intercept = bias
    return model
