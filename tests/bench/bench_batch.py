"""Batch prediction against featurisation, in one run: `archcast predict`'s path on 2,000 Llama-style configs.

Run: OMP_NUM_THREADS=1 python tests/bench/bench_batch.py
Targets: reading + predicting + writing the table (.parquet) <= 5x reading + featurising the same configs
(`read_spec` + `spec_matrix`), both from the same .jsonl; the served model is loaded before either is timed
(its load, reported apart, is paid once per command). The CSV writer is reported beside it.
And `archcast sweep` of 1,080 Llama designs (table and plot) in under 5 s, the whole command as a user runs it.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from features import read_spec, spec_matrix
from service.batch import iter_configs, predict_chunks, read_specs, write_table
from service.prediction_batch import concat_batches
from service.predictor import Predictor

COUNT = 2000
REPO = Path(__file__).resolve().parents[2]


def llama_configs(count: int, seed: int = 0) -> list[dict]:
    """Llama-style designs over widths, depths, head counts, GQA and FFN sizes (as a sweep would draw them)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        heads = rng.choice([4, 8, 12, 16, 32])
        d = heads * rng.choice([32, 64, 128])
        out.append({
            "name": f"llama-{i}", "model_type": "llama", "hidden_size": d, "num_attention_heads": heads,
            "num_key_value_heads": rng.choice([h for h in (1, 2, 4, heads) if heads % h == 0]),
            "num_hidden_layers": rng.randint(2, 32), "intermediate_size": int(d * rng.choice([2.0, 2.67, 3.5, 4.0])),
            "vocab_size": 32000, "max_position_embeddings": 2048, "hidden_act": "silu", "rms_norm_eps": 1e-5,
            "tie_word_embeddings": rng.random() < 0.5,
        })  # fmt: skip
    return out


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "configs.jsonl"
        source.write_text("\n".join(json.dumps(c) for c in llama_configs(COUNT)))
        load = timed(lambda: Predictor())
        predictor = Predictor()
        request = predictor.check_request(None, None, None)

        def featurise() -> None:
            for _, config in iter_configs([str(source)]):
                spec_matrix(read_spec(config))

        def predict(out: Path):
            def run() -> None:
                names, specs = read_specs([str(source)])
                batches = [batch for _, batch in predict_chunks(predictor, specs, request)]
                write_table(concat_batches(batches).to_frame(names), out)

            return run

        featurise()  # warm caches alike for both
        feature_s = min(timed(featurise) for _ in range(3))
        parquet_s = min(timed(predict(Path(tmp) / "out.parquet")) for _ in range(2))
        csv_s = timed(predict(Path(tmp) / "out.csv"))
    print(f"featurise {COUNT} configs: {feature_s:.3f} s ({COUNT / feature_s:,.0f} configs/s)")
    print(f"predict → parquet: {parquet_s:.3f} s ({COUNT / parquet_s:,.0f} configs/s) = "
          f"{parquet_s / feature_s:.2f}× featurising (target <= 5×)")  # fmt: skip
    print(f"predict → csv: {csv_s:.3f} s = {csv_s / feature_s:.2f}× featurising (the CSV writer's share)")
    print(f"model load (once per command): {load:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "archcast.cli", "sweep", str(REPO / "examples/configs/llama-2-7b.json"),
                   "--vary", "layers=4:32:2", "--vary", "width=512,1024,1536,2048,3072,4096", "--vary", "heads=8,16,32",
                   "--vary", "kv_bias=true,false", "--vary", "glu=true,false", "--out", f"{tmp}/sweep.parquet",
                   "--plot", f"{tmp}/sweep.png"]  # fmt: skip
        sweep_s = timed(lambda: subprocess.run(command, check=True, capture_output=True, cwd=REPO))
    print(f"archcast sweep, 1,080 designs with table and plot: {sweep_s:.2f} s (target < 5 s)")


if __name__ == "__main__":
    main()
