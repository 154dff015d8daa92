"""The ``onnx`` flavor: an ONNX graph run by onnxruntime, its inputs fed from the features.

The artifact is the ``.onnx`` graph itself. Two input layouts are fed: one tensor
``[batch, n]`` taking the whole float matrix (skl2onnx's and onnxmltools' default),
or one ``[batch, 1]`` tensor per feature, matched by name. A graph with two or more
outputs is a classifier (its label and its probabilities, as a tensor or as
skl2onnx's ZipMap list of dicts; pass ``zipmap=False`` to the converter for the fast
one); one with a single output a regressor. The class labels are read from the
graph's ``classlabels_*`` attributes. A string (or any non-numeric) input cannot be
fed from the checked float matrix and is refused at registration.

>>> import numpy as np
>>> from onnx import TensorProto, helper
>>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
>>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
>>> w = helper.make_tensor("w", TensorProto.FLOAT, [2, 1], [1.0, 10.0])
>>> graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [w])
>>> proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
>>> flavor = OnnxFlavor()
>>> facts = flavor.facts(proto)
>>> facts.task, facts.n_features, facts.feature_names
('regression', 2, None)
>>> session = flavor.load(flavor.dump(proto))
>>> meta = {"task": "regression", "features": [{"name": "a"}, {"name": "b"}]}
>>> flavor.predictor(session, meta)(np.array([[1.0, 2.0], [3.0, 4.0]]))
array([21., 43.])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from streams.models.flavors.base import Flavor, ModelFacts, Predictor, loaded_module, require
from streams.models.flavors.errors import FlavorMismatchError, UnsupportedModelError

__all__ = ["OnnxFlavor"]

# onnxruntime's input types lastmile can feed from a float matrix.
_NUMERIC = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


@dataclass(frozen=True)
class _Plan:
    """How the matrix goes in and the scores come out of one session."""

    inputs: tuple[tuple[str, Any], ...]  # (name, numpy dtype)
    columns: bool  # one input per feature
    n_features: int | None
    output: str  # the probabilities (classifier) or the value (regressor)
    classifier: bool
    zipmap: bool  # probabilities as a list of {class: p}


def _plan(session: Any) -> _Plan:
    inputs = session.get_inputs()
    fed = []
    for arg in inputs:
        dtype = _NUMERIC.get(arg.type)
        if dtype is None:
            raise UnsupportedModelError(
                f"ONNX input {arg.name!r} is {arg.type}: lastmile feeds numeric tensors only "
                "(encode strings before the graph, or convert with numeric inputs)"
            )
        fed.append((arg.name, dtype))
    if len(inputs) == 1:
        last = inputs[0].shape[-1] if inputs[0].shape else None
        n_features = last if isinstance(last, int) and last > 0 else None
        columns = False
    else:
        n_features, columns = len(inputs), True
    outputs = session.get_outputs()
    if len(outputs) == 1:
        return _Plan(tuple(fed), columns, n_features, outputs[0].name, False, False)
    probs = [o for o in outputs if o.type.startswith("seq(map(") or len(o.shape or ()) == 2]
    if not probs:
        names = ", ".join(f"{o.name} {o.type}" for o in outputs)
        raise UnsupportedModelError(f"ONNX outputs {names}: none is a probability matrix")
    out = probs[-1]
    return _Plan(tuple(fed), columns, n_features, out.name, True, out.type.startswith("seq("))


def _class_labels(proto: Any) -> list[Any] | None:
    for node in proto.graph.node:
        for attr in node.attribute:
            if attr.name == "classlabels_int64s" and attr.ints:
                return list(attr.ints)
            if attr.name == "classlabels_strings" and attr.strings:
                return [s.decode() for s in attr.strings]
    return None


class OnnxFlavor(Flavor):
    """ONNX graphs through onnxruntime's CPU provider."""

    name: ClassVar[str] = "onnx"
    wants: ClassVar[str] = "an onnx.ModelProto"
    artifact: ClassVar[str] = "model.onnx"
    extra: ClassVar[str | None] = "onnx"

    def owns(self, obj: Any) -> bool:
        onnx = loaded_module("onnx")
        return onnx is not None and isinstance(obj, onnx.ModelProto)

    def sniff(self, path: Path, head: bytes) -> bool:
        return path.suffix.lower() == ".onnx"  # protobuf has no magic number

    def read_file(self, path: Path) -> Any:
        onnx = require("onnx", "onnx")
        try:
            proto = onnx.load_model_from_string(path.read_bytes())
        except Exception as err:  # protobuf's DecodeError and onnx's own: not a graph either way
            raise FlavorMismatchError(f"{path} is not an ONNX model: {err}") from None
        if not proto.graph.node:
            raise FlavorMismatchError(f"{path} is not an ONNX model: it has no graph")
        return proto

    def dump(self, obj: Any) -> bytes:
        return obj.SerializeToString()

    def load(self, data: bytes) -> Any:
        ort = require("onnxruntime", "onnx")
        try:
            options = ort.SessionOptions()
            # Idle pool threads spinning for work steal the cores the Kafka client and the
            # broker need: off, the scorer ran ONNX at 0.94x River's rate, against 0.78x.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped Fail/InvalidGraph errors
            raise FlavorMismatchError(f"onnxruntime cannot load the graph: {err}") from None

    def facts(self, obj: Any) -> ModelFacts:
        plan = _plan(self.load(self.dump(obj)))
        names = [name for name, _ in plan.inputs] if plan.columns else None
        if not plan.classifier:
            return ModelFacts("regression", None, names, plan.n_features)
        return ModelFacts("classification", _class_labels(obj), names, plan.n_features)

    def predictor(self, model: Any, meta: Mapping[str, Any]) -> Predictor:
        plan = _plan(model)
        run = model.run
        outputs = [plan.output]
        if plan.columns:
            features = [f["name"] for f in meta.get("features") or []]
            at = [(name, features.index(name), dtype) for name, dtype in plan.inputs]

            def feed(X: np.ndarray) -> dict[str, np.ndarray]:
                return {name: X[:, i : i + 1].astype(dtype) for name, i, dtype in at}
        else:
            ((name, dtype),) = plan.inputs

            def feed(X: np.ndarray) -> dict[str, np.ndarray]:
                return {name: np.asarray(X).astype(dtype, copy=False)}

        if not plan.classifier:
            return lambda X: np.asarray(run(outputs, feed(X))[0], dtype=float).reshape(-1)
        if plan.zipmap:
            classes: Sequence[Any] = meta.get("class_columns") or []

            def zipped(X: np.ndarray) -> np.ndarray:
                maps = run(outputs, feed(X))[0]
                keys = list(classes) or (list(maps[0]) if maps else [])
                return np.array([[m[k] for k in keys] for m in maps], dtype=float)

            return zipped
        return lambda X: run(outputs, feed(X))[0]

    def runtime_version(self) -> dict[str, str]:
        return {"onnxruntime": require("onnxruntime", "onnx").__version__}
