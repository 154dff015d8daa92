"""The model plane: versions on disk, what a request's features must be, loaded models,
and the control plane that says which version answers (and tells every worker).

- :mod:`~streams.models.registry`: :class:`Registry`, versions on disk, sha256 checks
- :mod:`~streams.models.durable`: the registry's fsynced writes
- :mod:`~streams.models.versions`: :class:`ModelVersion`, a version's ``meta.json``
- :mod:`~streams.models.features`: feature types, :func:`check_features`, :class:`FeatureProblem`
- :mod:`~streams.models.reference`: the reference profile (drift baseline)
- :mod:`~streams.models.flavors`: how each kind of model is saved, loaded and scored
- :mod:`~streams.models.loaded`: :class:`LoadedModel`, scoring every flavor, :func:`label_str`
- :mod:`~streams.models.state`: :class:`ModelState`, :class:`Pause` and the event carrying it
- :mod:`~streams.models.wire`: the event as Avro or JSON on ``models.events``
- :mod:`~streams.models.routing`: :class:`ModelTable`, the sticky split by entity hash
- :mod:`~streams.models.commands`: :class:`ControlPlane`, promote/split/shadow/rollback/pause
- :mod:`~streams.models.watcher`: :class:`ModelWatcher`, reading ``models.events``
- :mod:`~streams.models.errors`: the errors of all of the above
"""

from streams.models.commands import ControlEvent, ControlPlane
from streams.models.errors import (
    ArtifactIntegrityError,
    ControlError,
    ModelNotFoundError,
    PublishError,
    RegistryError,
    VersionNotFoundError,
)
from streams.models.features import (
    FEATURE_MISSING,
    FEATURE_TYPE,
    FEATURE_TYPES,
    FeatureChecker,
    FeatureProblem,
    check_features,
    feature_type,
    infer_features,
    normalize_features,
)
from streams.models.loaded import RIVER_BATCH_MIN_ROWS, LoadedModel, label_str
from streams.models.reference import fit_reference_profile
from streams.models.registry import FLAVORS, MAX_REFERENCE_ROWS, Registry
from streams.models.routing import CATCH_UP_S, ModelTable, load_table, route_hash
from streams.models.state import (
    CHALLENGER,
    CHAMPION,
    EVENT_KINDS,
    EVENT_META_KEYS,
    FALLBACK,
    FALLBACK_CONSTANT,
    HISTORY_LIMIT,
    SHADOW,
    ModelState,
    Pause,
    make_event,
)
from streams.models.versions import ARTIFACT, META, ModelVersion, default_actor
from streams.models.watcher import ModelWatcher, created_ms
from streams.models.wire import JSON_HEADERS, decode_event, encode_event, make_codec

__all__ = [
    "ARTIFACT",
    "CATCH_UP_S",
    "CHALLENGER",
    "CHAMPION",
    "EVENT_KINDS",
    "EVENT_META_KEYS",
    "FALLBACK",
    "FALLBACK_CONSTANT",
    "FEATURE_MISSING",
    "FEATURE_TYPE",
    "FEATURE_TYPES",
    "FLAVORS",
    "HISTORY_LIMIT",
    "JSON_HEADERS",
    "MAX_REFERENCE_ROWS",
    "META",
    "RIVER_BATCH_MIN_ROWS",
    "SHADOW",
    "ArtifactIntegrityError",
    "ControlError",
    "ControlEvent",
    "ControlPlane",
    "FeatureChecker",
    "FeatureProblem",
    "LoadedModel",
    "ModelNotFoundError",
    "ModelState",
    "ModelTable",
    "ModelVersion",
    "ModelWatcher",
    "Pause",
    "PublishError",
    "Registry",
    "RegistryError",
    "VersionNotFoundError",
    "check_features",
    "created_ms",
    "decode_event",
    "default_actor",
    "encode_event",
    "feature_type",
    "fit_reference_profile",
    "infer_features",
    "label_str",
    "load_table",
    "make_codec",
    "make_event",
    "normalize_features",
    "route_hash",
]
