"""The one onnxruntime session over every served target: the per-target ONNX graphs put side by side in one
graph, so that a request costs one onnxruntime call.

Combining needs the `onnx` package, whose import costs about a second (ml_dtypes); the combined graph depends
only on the target files and the onnx version, so it is built once and kept in the cache
($ARCHCAST_CACHE/sessions, default ~/.cache/archcast), and later commands read it back as bytes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from importlib.metadata import version
from pathlib import Path

import onnxruntime

from contracts import cache_root

CURVE_INPUT = "curve_features"  # the combined graph's input for the curve regressors' (features, log1p step) rows
LAYER_INPUT = "features"  # ... and for the per-layer targets' feature rows
COMBINE_VERSION = "1"  # bump when combined_model changes what it builds


def combined_model(models: list[tuple[bytes, str]]):
    """The per-target models (ONNX bytes, the graph input each reads) side by side in one graph: each model
    (renamed apart by a prefix) reads the graph input named beside it, and output i is target i's."""
    import onnx
    import onnx.compose

    nodes, initializers, outputs, inputs = [], [], [], {}
    first = None
    for i, (blob, input_name) in enumerate(models):
        model = onnx.load_from_string(blob)
        first = first or model
        graph = onnx.compose.add_prefix(model, f"t{i}_").graph
        (source,) = graph.input
        if input_name not in inputs:
            inputs[input_name] = onnx.helper.make_value_info(input_name, model.graph.input[0].type)
        nodes.append(onnx.helper.make_node("Identity", [input_name], [source.name]))
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
        outputs.append(graph.output[0])
    graph = onnx.helper.make_graph(nodes, "archcast", list(inputs.values()), outputs, initializers)
    combined = onnx.helper.make_model(graph, opset_imports=first.opset_import)
    combined.ir_version = first.ir_version
    return combined


def cache_path(models: list[tuple[bytes, str]], cache: Path | None = None) -> Path:
    """Where the combined graph of these models is kept: named by their bytes, inputs and the onnx version."""
    key = hashlib.sha256(f"{COMBINE_VERSION} onnx {version('onnx')}".encode())
    for blob, input_name in models:
        key.update(hashlib.sha256(blob).digest() + input_name.encode())
    return (cache or cache_root()) / "sessions" / f"{key.hexdigest()}.onnx"


def combined_bytes(models: list[tuple[bytes, str]], path: Path) -> bytes:
    """combined_model(models) serialised, read from `path` when an earlier command built it. A cache that cannot
    be written (a read-only home) only costs the rebuild."""
    if path.is_file():
        return path.read_bytes()
    data = combined_model(models).SerializeToString()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as part:
            part.write(data)
        os.replace(part.name, path)  # whole or absent: two commands starting at once each write a full copy
    except OSError:
        pass
    return data


def session(models: list[tuple[bytes, str]], threads: int, cache: Path | None = None):
    """An onnxruntime session over the combined graph; a cached graph that does not load is built afresh."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    path = cache_path(models, cache)
    try:
        return onnxruntime.InferenceSession(combined_bytes(models, path), options, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - a damaged cache file (onnxruntime raises its own types): replace it
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
        return onnxruntime.InferenceSession(combined_bytes(models, path), options, providers=["CPUExecutionProvider"])
