"""Extraction cost vs a bare forward pass over the same batches, and peak memory as depth grows.

Run: python tests/bench/bench_extraction.py
Each measurement runs in a fresh process (peak RSS is per process). Model: Llama-style, d=256,
vocab 4096, L = 4, 8, 16 (L=8 ≈ 8.4M parameters); probe N=10 windows of S=512 tokens, batch 2.
Targets: time ratio <= 1.15; peak memory flat as L grows.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import torch


def one(layers: int, mode: str, device: str) -> dict:
    from transformers import LlamaConfig

    import archmods
    from extraction.measure import Settings, measure

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=256,
        num_hidden_layers=layers,
        num_attention_heads=8,
        intermediate_size=688,
        vocab_size=4096,
        max_position_embeddings=1024,
    )
    model = archmods.build_model(config).eval().to(device)
    windows = torch.randint(0, 4096, (10, 512))
    settings = Settings(batch_size=2, linearity=mode != "no-linearity", device=device)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def bare():
        with torch.no_grad():
            for batch in windows.split(2):
                model(input_ids=batch.to(device), use_cache=False)

    run = bare if mode == "bare" else (lambda: measure(model, windows, settings))
    run()  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    params = sum(p.numel() for p in model.parameters())
    return {
        "layers": layers,
        "mode": mode,
        "seconds": min(times),
        "peak_rss_mb": peak / 1024,
        "rss_growth_mb": (peak - base_rss) / 1024,
        "params": params,
        "tokens": windows.numel(),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        print(json.dumps(one(int(sys.argv[2]), sys.argv[3], sys.argv[4])))
        return
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = {}
    for layers in (4, 8, 16):
        for mode in ("bare", "extract", "no-linearity"):
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(layers), mode, device],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results[(layers, mode)] = json.loads(out.strip().splitlines()[-1])
    print(f"device {device}; tokens per pass {results[(4, 'bare')]['tokens']}")
    print("L  params   bare s  extract s  ratio  no-lin ratio  tokens/s(extract)  peak RSS MB bare/extract")
    for layers in (4, 8, 16):
        b, e, n = (results[(layers, m)] for m in ("bare", "extract", "no-linearity"))
        print(
            f"{layers:<2d} {b['params'] / 1e6:5.1f}M  {b['seconds']:6.2f}  {e['seconds']:8.2f}  "
            f"{e['seconds'] / b['seconds']:5.2f}  {n['seconds'] / b['seconds']:12.2f}  "
            f"{e['tokens'] / e['seconds']:17,.0f}  {b['peak_rss_mb']:7.0f} / {e['peak_rss_mb']:.0f}"
        )


if __name__ == "__main__":
    main()
