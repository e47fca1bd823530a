"""Extraction cost vs a bare forward pass over the same batches, and peak memory as depth grows.

Run: python tests/bench/bench_extraction.py
Times: the modes interleaved in one process per depth; peak memory: each mode in a fresh process.
"bare" is the model's full forward (with the LM head); "body" is the decoder without the LM head, which is
what extraction runs, so extract / body is the cost of the measurement alone.
Model: Llama-style, d=256, vocab 4096, L = 4, 8, 16 (L=8 ≈ 8.4M parameters);
probe N=10 windows of S=512 tokens, batch 2.
Targets: time ratio <= 1.3 with linearity, <= 1.15 without; peak memory flat as L grows.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

import torch


def setup(layers: int, device: str):
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

    def bare():
        with torch.no_grad():
            for batch in windows.split(2):
                model(input_ids=batch.to(device), use_cache=False)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def body():
        with torch.no_grad():
            for batch in windows.split(2):
                model.base_model(input_ids=batch.to(device), use_cache=False)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def extract(linearity: bool):
        measure(model, windows, Settings(batch_size=2, linearity=linearity, device=device))
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    runs = {"bare": bare, "body": body, "extract": lambda: extract(True), "no-linearity": lambda: extract(False)}
    return model, windows, runs


def timing(layers: int, device: str) -> dict:
    """The three modes interleaved in one process (min of 5 each), so the ratios share machine state."""
    model, windows, runs = setup(layers, device)
    times = {mode: [] for mode in runs}
    for run in runs.values():
        run()  # warm-up
    for _ in range(5):
        for mode, run in runs.items():
            start = time.perf_counter()
            run()
            times[mode].append(time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters())
    return {"params": params, "tokens": windows.numel(), **{mode: min(t) for mode, t in times.items()}}


def peak_memory(layers: int, mode: str, device: str) -> dict:
    """Peak RSS of one mode in a fresh process (peak RSS is per process)."""
    _, _, runs = setup(layers, device)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runs[mode]()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_rss_mb": peak / 1024, "rss_growth_mb": (peak - base) / 1024}


# glibc raises its mmap threshold after each freed large block, so later multi-MB temporaries come from
# the heap and peak RSS then reflects fragmentation more than what is held; a fixed threshold returns
# freed blocks to the OS, so the peak measures retained memory. Both are reported.
FIXED_MMAP = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}


def child(*args: str, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--time":
        print(json.dumps(timing(int(sys.argv[2]), sys.argv[3])))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--memory":
        print(json.dumps(peak_memory(int(sys.argv[2]), sys.argv[3], sys.argv[4])))
        return
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device {device}; tokens per pass 5120 (10 windows x 512, batch 2); min of 5 interleaved passes")
    print("L  params   bare s  body s  extract s  ratio (to body)  no-lin ratio (to body)  linearity s  "
          "tokens/s(extract)  peak RSS MB bare/extract (growth)*")  # fmt: skip
    for layers in (4, 8, 16):
        t = child("--time", str(layers), device)
        b, e = (child("--memory", str(layers), mode, device, env=FIXED_MMAP) for mode in ("bare", "extract"))
        e_default = child("--memory", str(layers), "extract", device)
        print(
            f"{layers:<2d} {t['params'] / 1e6:5.1f}M  {t['bare']:6.2f}  {t['body']:6.2f}  {t['extract']:8.2f}  "
            f"{t['extract'] / t['bare']:5.2f} ({t['extract'] / t['body']:.2f})  "
            f"{t['no-linearity'] / t['bare']:12.2f} ({t['no-linearity'] / t['body']:.2f})  "
            f"{t['extract'] - t['no-linearity']:11.2f}  "
            f"{t['tokens'] / t['extract']:17,.0f}  {b['peak_rss_mb']:7.0f} / {e['peak_rss_mb']:.0f} "
            f"(+{b['rss_growth_mb']:.0f} / +{e['rss_growth_mb']:.0f}; default malloc +{e_default['rss_growth_mb']:.0f})"
        )
    print("* growth over the loaded model; MALLOC_MMAP_THRESHOLD_=131072 unless 'default malloc'")


if __name__ == "__main__":
    main()
