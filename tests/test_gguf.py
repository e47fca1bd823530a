"""GGUF input: a file the test writes from a tiny random Llama is measured like the model it came from."""

from __future__ import annotations

import json

import gguf
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from archcast.cli import app
from extraction import gguf as gguf_source
from extraction.__main__ import main as extract_main

from .conftest import save_checkpoint, tiny_config
from .gguf_files import write_header_only, write_llama_gguf

EXTRACT = ["--seq-len", "40", "--n-seq", "4", "--batch-size", "2"]


@pytest.fixture(scope="module")
def llama_pair(tokenizer, tmp_path_factory):
    """(checkpoint folder, F32 GGUF, Q8_0 GGUF) of the same random weights."""
    root = tmp_path_factory.mktemp("gguf")
    model = save_checkpoint(root / "hf", tiny_config("llama", tokenizer), tokenizer, seed=3, step=0)
    f32 = write_llama_gguf(model, tokenizer, root / "tiny-llama-f32.gguf")
    q8 = write_llama_gguf(model, tokenizer, root / "tiny-llama-q8.gguf", quant=gguf.GGMLQuantizationType.Q8_0)
    return root / "hf", f32, q8


def extract(tmp_path, *source) -> pd.DataFrame:
    assert extract_main([*source, "--out", str(tmp_path), *EXTRACT]) == 0
    return pd.read_parquet(tmp_path / "metrics.parquet")


def test_gguf_is_measured_like_the_model_it_was_written_from(llama_pair, tmp_path):
    folder, f32, _ = llama_pair
    from_gguf = extract(tmp_path / "g", "--gguf", str(f32))
    from_folder = extract(tmp_path / "f", "--dirs", str(folder))
    assert len(from_gguf) == len(from_folder) == 3
    for column in ("ma_top1", "ma_median", "ma_ratio", "ma_ratio_nonbos", "linearity", "linearity_nores"):
        pd.testing.assert_series_equal(from_gguf[column], from_folder[column], rtol=1e-5, check_names=False)
    for column in ("top1_token", "top1_dim", "top1_bos_share", "top1_dim_mode"):
        assert list(from_gguf[column]) == list(from_folder[column])
    row = from_gguf.iloc[0]
    assert row["quantization"] == "ALL_F32"
    assert row["source_sha256"] == gguf_source.sha256_file(f32)
    assert (row["model_id"], row["step"]) == ("tiny-llama-f32", -1)


def test_quantised_gguf_records_its_type_and_stays_close(llama_pair, tmp_path):
    _, f32, q8 = llama_pair
    exact = extract(tmp_path / "f32", "--gguf", str(f32))
    quantised = extract(tmp_path / "q8", "--gguf", str(q8))
    assert set(quantised["quantization"]) == {"MOSTLY_Q8_0"}
    assert (quantised["weights_sha256"] != exact["weights_sha256"]).all()  # dequantised weights differ …
    pd.testing.assert_series_equal(quantised["ma_ratio"], exact["ma_ratio"], rtol=0.05)  # … a little


def test_gguf_files_are_found_by_a_dirs_glob(llama_pair, tmp_path):
    _, f32, _ = llama_pair
    frame = extract(tmp_path, "--dirs", str(f32.parent / "*f32.gguf"))
    assert set(frame["model_id"]) == {"tiny-llama-f32"}


def test_unsupported_gguf_architecture_is_named_with_the_known_ones(tmp_path):
    path = write_header_only(tmp_path / "odd.gguf", "rwkv6")
    info = gguf_source.describe(path)
    with pytest.raises(ValueError, match=r"architecture 'rwkv6'.*it reads .*llama"):
        gguf_source.check_loadable(info)
    result = CliRunner().invoke(app, ["measure", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "rwkv6" in str(result.exception) + result.output


def test_a_file_that_is_not_gguf_gets_a_clear_error(tmp_path):
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"not a gguf file at all")
    with pytest.raises(ValueError, match="not a readable GGUF file"):
        gguf_source.describe(path)


def test_measure_writes_metrics_and_a_report_for_a_gguf(llama_pair, tmp_path):
    _, f32, _ = llama_pair
    result = CliRunner().invoke(app, ["measure", str(f32), "--out", str(tmp_path), *EXTRACT])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(tmp_path / "metrics.parquet")
    assert len(frame["dim_max"].iloc[0]) == 32  # one largest value per feature dimension
    assert (tmp_path / "report.png").stat().st_size > 10_000
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page and "http" not in page.replace("http-equiv", "")
    assert "layer" in result.output and "report:" in result.output
    # the quantizer's list: each layer's channels past 20× its median, as the metrics give them
    found = json.loads((tmp_path / "outliers.json").read_text())
    assert [entry["layer"] for entry in found["layers"]] == frame["layer"].tolist()
    for entry, row in zip(found["layers"], frame.itertuples(), strict=True):
        expected = sorted((d for d, v in enumerate(row.dim_max) if v > 20 * row.ma_median),
                          key=lambda d: -row.dim_max[d])  # fmt: skip
        assert [c["dim"] for c in entry["channels"]] == expected
        assert all([c["window"], c["position"]] == list(row.dim_where[c["dim"]]) for c in entry["channels"])
        assert entry["over"]["100x"] == sum(c["ratio"] > 100 for c in entry["channels"])
    assert "outlier channels" in result.output
    again = CliRunner().invoke(app, ["measure", str(f32), "--out", str(tmp_path / "attn"), "--attention", *EXTRACT])
    assert again.exit_code == 0, again.output
    heads = pd.read_parquet(tmp_path / "attn" / "attention.parquet")
    rows = pd.read_parquet(tmp_path / "attn" / "metrics.parquet")
    assert rows["attn_bos_share"].between(0, 1).all() and len(heads) == len(rows) * heads["head"].nunique()
    means = heads.groupby("layer")["attn_bos_share"].mean()
    np.testing.assert_allclose(means.to_numpy(), rows.sort_values("layer")["attn_bos_share"], rtol=1e-9)
    assert "attention on the first token" in again.output
    third = CliRunner().invoke(app, ["measure", str(f32), "--out", str(tmp_path / "iv"), "--interventions",
                                     "--intervention-ratio", "5", *EXTRACT])  # fmt: skip
    assert third.exit_code == 0, third.output
    found = json.loads((tmp_path / "iv" / "interventions.json").read_text())
    assert found["perplexity"]["none"] > 1 and "perplexity on the probe" in third.output


def test_weights_of_the_gguf_model_equal_the_original(llama_pair):
    folder, f32, _ = llama_pair
    import archmods

    original = archmods.load_causal_lm(folder)
    loaded, _ = gguf_source.load(gguf_source.describe(f32), torch.float32)
    ids = torch.arange(5, 25)[None]
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, original(input_ids=ids).logits, rtol=1e-5, atol=1e-5)


def test_a_gguf_is_dequantised_once_and_read_back_from_the_cache_as_the_file_loads(llama_pair, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from extraction.measure import weights_sha256

    _, _, q8 = llama_pair
    monkeypatch.setenv("ARCHCAST_CACHE", str(tmp_path))
    info = gguf_source.describe(q8)
    direct = AutoModelForCausalLM.from_pretrained(str(q8.parent), gguf_file=q8.name, dtype=torch.float32)
    direct_tokenizer = AutoTokenizer.from_pretrained(str(q8.parent), gguf_file=q8.name)
    model, tokenizer = gguf_source.load(info, torch.float32)
    folder = tmp_path / "gguf" / info.sha256
    assert (folder / gguf_source.COMPLETE).exists()
    assert weights_sha256(model) == weights_sha256(direct)
    text = "the cat sat on the mat"
    assert tokenizer(text)["input_ids"] == direct_tokenizer(text)["input_ids"]
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    torch.testing.assert_close(model(ids).logits, direct(ids).logits, rtol=0, atol=0)
    # a second load reads the folder (the file is not opened again); a copy cut short is rebuilt
    stamp = (folder / "config.json").stat().st_mtime_ns
    gguf_source.load(info, torch.float32)
    assert (folder / "config.json").stat().st_mtime_ns == stamp
    (folder / gguf_source.COMPLETE).unlink()
    again, _ = gguf_source.load(info, torch.float32)
    assert (folder / gguf_source.COMPLETE).exists() and weights_sha256(again) == weights_sha256(direct)
    assert [p.name for p in (tmp_path / "gguf").iterdir()] == [info.sha256]  # no partial copy left behind
