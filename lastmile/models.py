"""``client.models``: register versions and steer which one answers, from Python.

Each method is the ``lastmile models`` command of the same name, on the same
:class:`~streams.models.ControlPlane` and :class:`~streams.models.Registry`: the change is
written to the registry and announced on ``models.events``, where running scorers pick it
up within a second. Tables (``list``, ``show``) are the CLI's rows as DataFrames.

>>> import tempfile
>>> from river import linear_model
>>> from lastmile import Client
>>> client = Client(registry=tempfile.mkdtemp(), publish=False)  # no broker needed
>>> v = client.models.register(linear_model.LinearRegression(), name="price", features=["x"])
>>> v.version, v.flavor
(1, 'river')
>>> client.models.promote("price", 1).state.champion
1
>>> client.models.list()[["model", "champion", "versions"]]
   model  champion  versions
0  price         1         1
>>> client.models.promote("price", 9)
Traceback (most recent call last):
...
streams.models.errors.ControlError: model 'price' has no version 9
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from lastmile.scoring import as_rows
from streams.cli.models import model_rows, version_rows
from streams.models import (
    CHAMPION,
    ControlEvent,
    ControlPlane,
    LoadedModel,
    ModelState,
    ModelVersion,
    Registry,
)

if TYPE_CHECKING:
    from lastmile.client import Client

__all__ = ["Models"]


class Models:
    """The model registry and control plane of one :class:`~lastmile.Client`.

    Versions are immutable and numbered 1, 2, 3...; aliases (``champion``,
    ``challenger``, ...) point at them, a split shares traffic between aliases, a shadow
    version scores beside the answer without being used.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    @property
    def plane(self) -> ControlPlane:
        """The control plane every change goes through."""
        return self._client.control_plane

    @property
    def registry(self) -> Registry:
        return self.plane.registry

    # -- reading

    def list(self) -> pd.DataFrame:
        """Every model: champion, challenger, split, shadow, versions (``lastmile models list``)."""
        rows = model_rows(self.plane.states())
        return pd.DataFrame(rows, columns=list(rows[0]) if rows else ["model"])

    def show(self, name: str) -> pd.DataFrame:
        """A model's versions with their aliases and metrics (``lastmile models show NAME``)."""
        return pd.DataFrame(version_rows(self.state(name), self.registry.versions(name)))

    def state(self, name: str) -> ModelState:
        """Aliases, split and shadow of a model, as on disk."""
        return self.plane.state(name)

    def get(self, name: str, version: int | str | None = None) -> ModelVersion:
        """A version's metadata (``meta.json``): the latest when ``version`` is None."""
        if version is None:
            return self.registry.latest(name)
        return self.registry.get(name, version)

    def load(self, name: str, version: int | str | None = None) -> LoadedModel:
        """The version's model, its sha256 checked, to score rows in this process."""
        return self.registry.load(name, self.get(name, version).version)

    # -- changes

    def register(
        self,
        model: Any,
        name: str,
        reference: Any = None,
        features: Any = None,
        flavor: str | None = None,
        promote: str | None = None,
        **options: Any,
    ) -> ModelVersion:
        """Register ``model`` as the next version of ``name``, and announce it.

        ``reference`` is a sample of the training features (a DataFrame or rows): the
        drift baseline, and the features and their types when ``features`` is not given.
        ``flavor`` is inferred from the object unless given. ``promote`` names an alias
        to point at the new version. Other options (``labels``, ``positive_label``,
        ``metrics``, ``parent``, ``description``, ``task``) go to the registry as they are.
        """
        rows = as_rows(reference)[1] if reference is not None else None
        mv = self.plane.register_and_publish(
            name, model, flavor, features=features, reference_rows=rows, **options
        )
        if promote:
            self.plane.promote(name, mv.version, promote)
        return mv

    def promote(self, name: str, version: int | str, alias: str = CHAMPION) -> ControlEvent:
        """Point ``alias`` (default: champion) at ``version``."""
        return self.plane.promote(name, version, alias)

    def split(
        self, name: str, weights: Mapping[str, float] | None = None, **by_alias: float
    ) -> ControlEvent:
        """Share traffic between aliases, sticky per entity: ``split("m", champion=90,
        challenger=10)``; no weights clear the split (all traffic to the champion)."""
        return self.plane.split(name, {**(weights or {}), **by_alias})

    def shadow(self, name: str, version: int | str | None) -> ControlEvent:
        """Score ``version`` beside the answer on every request (None: stop)."""
        return self.plane.shadow(name, version)

    def rollback(self, name: str, alias: str = CHAMPION) -> ControlEvent:
        """Point ``alias`` back at the live version it pointed at before."""
        return self.plane.rollback(name, alias)

    def retire(self, name: str, version: int | str, force: bool = False) -> ControlEvent:
        """Take ``version`` out of service (the champion only with ``force``)."""
        return self.plane.retire(name, version, force=force)

    def pause(
        self,
        name: str,
        fallback_score: float | None = None,
        fallback_label: str | None = None,
        fallback_version: int | None = None,
    ) -> ControlEvent:
        """Stop scoring ``name``: requests get the fallback score/label, or the fallback
        version's answer (``lastmile models pause``)."""
        return self.plane.pause(
            name,
            fallback_score=fallback_score,
            fallback_label=fallback_label,
            fallback_version=fallback_version,
        )

    def resume(self, name: str) -> ControlEvent:
        """Score ``name`` again after :meth:`pause`."""
        return self.plane.resume(name)

    def compare(
        self,
        name: str,
        metric: str | None = None,
        alpha: float = 0.05,
        since: float | dt.timedelta = dt.timedelta(days=1),
    ) -> Any:
        """The champion against its challenger (split) or shadow (paired), on the
        outcomes of the last ``since`` joined in ClickHouse (``lastmile models compare``):
        each arm's metric, the lift with its always-valid bounds, and the decision."""
        from streams.cli.compare import compare_model

        seconds = since.total_seconds() if isinstance(since, dt.timedelta) else float(since)
        return compare_model(
            self._client.settings,
            name,
            metric=metric,
            alpha=alpha,
            since=seconds,
            client=self._client.clickhouse,
        )

    def publish(self, name: str | None = None) -> Sequence[ControlEvent]:
        """Announce one model's state (or every model's) on ``models.events`` again."""
        return self.plane.announce(name)
