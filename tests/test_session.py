"""The combined onnxruntime graph is built once and read back from the cache; a damaged cache costs a rebuild."""

from __future__ import annotations

from service.predictor import Predictor

from .conftest import REPO

CONFIG = {"model_type": "llama", "hidden_size": 128, "num_attention_heads": 4, "num_hidden_layers": 4,
          "intermediate_size": 344, "vocab_size": 4096}  # fmt: skip


def test_the_combined_graph_is_cached_and_a_damaged_copy_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHCAST_CACHE", str(tmp_path))
    first = Predictor(REPO / "models").predict(CONFIG).to_json()
    (cached,) = (tmp_path / "sessions").glob("*.onnx")
    built = cached.read_bytes()
    assert Predictor(REPO / "models").predict(CONFIG).to_json() == first  # read back: the same answers
    assert cached.read_bytes() == built
    cached.write_bytes(b"not an onnx graph")
    assert Predictor(REPO / "models").predict(CONFIG).to_json() == first
    assert cached.read_bytes() == built  # replaced, so the next command reads it again


def test_an_unwritable_cache_only_costs_the_rebuild(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("ARCHCAST_CACHE", str(blocker))
    assert Predictor(REPO / "models").predict(CONFIG).metrics["ma_ratio"].curves.values.size
