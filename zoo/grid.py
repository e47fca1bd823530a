"""The zoo's tiers: which architectures are trained, around three base designs.

Bases: a Llama-style design (RMSNorm, SwiGLU, rotary, no biases), a GPT-NeoX one
(LayerNorm, GELU, partial rotary, parallel residual, biases) and a GPT-2 one
(LayerNorm, GELU, learned positions, biases, tied embeddings). Each axis is
varied one factor at a time, at least twice, plus a few random combinations.
"""

from __future__ import annotations

import random
from dataclasses import replace

from zoo.spec import FineTune, Recipe, RunSpec

LLAMA = RunSpec("llama", "llama")
NEOX = RunSpec("neox", "gpt_neox")
GPT2 = RunSpec("gpt2", "gpt2")


def _variant(base: RunSpec, suffix: str, **kw) -> RunSpec:
    overrides = {**base.overrides, **kw.pop("overrides", {})}
    changes = {**base.changes, **kw.pop("changes", {})}
    return replace(base, name=f"{base.name}-{suffix}", overrides=overrides, changes=changes, **kw)


def one_factor_grid() -> list[RunSpec]:
    return [
        LLAMA, NEOX, GPT2,
        # depth
        _variant(LLAMA, "L2", layers=2), _variant(LLAMA, "L6", layers=6), _variant(NEOX, "L6", layers=6),
        # width
        _variant(LLAMA, "d48", d=48), _variant(LLAMA, "d96", d=96),
        # heads
        _variant(LLAMA, "H2", heads=2), _variant(LLAMA, "H8", heads=8),
        # FFN ratio
        _variant(LLAMA, "ffn2", ffn_ratio=2.0), _variant(LLAMA, "ffn8", ffn_ratio=8.0),
        # GLU vs not (inside the Llama family)
        _variant(LLAMA, "noglu", changes={"glu": False}),
        _variant(LLAMA, "noglu-ffn6", ffn_ratio=6.0, changes={"glu": False}),
        # norm: LayerNorm (neox, gpt2) vs RMSNorm (llama) vs DyT
        _variant(LLAMA, "dyt", changes={"norm": "dyt"}), _variant(NEOX, "dyt", changes={"norm": "dyt"}),
        # positions: learned (gpt2) vs rotary, full vs partial rotary
        _variant(GPT2, "L6", layers=6), _variant(NEOX, "rope1", overrides={"rotary_pct": 1.0}),
        # parallel residual (neox default) vs sequential
        _variant(NEOX, "seq", overrides={"use_parallel_residual": False}),
        _variant(NEOX, "seq-L6", layers=6, overrides={"use_parallel_residual": False}),
        # biases
        _variant(LLAMA, "bias", overrides={"attention_bias": True, "mlp_bias": True}),
        _variant(NEOX, "nobias", overrides={"attention_bias": False}),
        # tied embeddings
        _variant(LLAMA, "tied", overrides={"tie_word_embeddings": True}),
        _variant(GPT2, "untied", overrides={"tie_word_embeddings": False}),
        # mitigations: attention KV bias, target variance rescaling
        _variant(LLAMA, "kvbias", changes={"kv_bias": True}), _variant(NEOX, "kvbias", changes={"kv_bias": True}),
        _variant(LLAMA, "tvr", changes={"tvr": True}), _variant(NEOX, "tvr", changes={"tvr": True}),
    ]  # fmt: skip


def random_combinations(count: int, seed: int = 7) -> list[RunSpec]:
    """Llama-based designs with several factors changed at once."""
    rng = random.Random(seed)
    runs = []
    for i in range(count):
        layers, d = rng.choice([2, 3, 5]), rng.choice([48, 64, 96])
        heads = rng.choice([h for h in (2, 4, 8) if d % h == 0])
        changes = {"glu": rng.random() < 0.6, "kv_bias": rng.random() < 0.3}
        if rng.random() < 0.3:
            changes["norm"] = "dyt"
        overrides = {"tie_word_embeddings": rng.random() < 0.5}
        runs.append(
            replace(LLAMA, name=f"llama-mix{i}", layers=layers, d=d, heads=heads,
                    ffn_ratio=rng.choice([2.0, 3.0, 4.0, 6.0]), changes=changes, overrides=overrides)
        )  # fmt: skip
    return runs


# 400 steps of 8 × 256 tokens, lr 1.5e-2, no weight decay, BOS first: ~1 h on 2 cores. Pilots on the base
# Llama (d=64, data/zoo/pilots): strongest-layer ratio end/init 1.3× at lr 6e-3 over 800 steps, 2.3× at
# 1.5e-2 and 2.0× at 3e-2 over 400 steps (3e-2 also costs loss: 5.1 vs 4.4); d=128 at 6e-3 grew only 1.2×.
GPU_ONLY = {"gpt2-L6", "neox-rope1"}
CPU_RECIPE = Recipe(steps=400, batch_size=8, seq_len=256, lr=1.5e-2, n_linear_checkpoints=64)
SMOKE_RECIPE = Recipe(steps=24, batch_size=2, seq_len=32, warmup=2, n_linear_checkpoints=8)
GPU_RECIPE = Recipe(steps=20_000, batch_size=64, seq_len=512, lr=3e-3, warmup=500, n_linear_checkpoints=40)


# cpu2: d >= 128, where the BOS-anchored mechanism forms on CPU (pilots in data/zoo/cpu2/pilots/README.md).
# 1,000 steps of 32 × 128 tokens (BOS first), lr 6e-3, no weight decay: ~10 single-thread minutes at d=128, L=4.
CPU2_RECIPE = Recipe(steps=1000, batch_size=32, seq_len=128, lr=6e-3, warmup=50, n_linear_checkpoints=40, log_until=32)
# DyT as the paper sets it up for LLMs (α larger before attention than elsewhere, an embedding scale), with α
# sized for this recipe's lr: at α 1.0 (and 0.8/0.2/0.2) the residual stream outgrows tanh within 50 steps (94–100 %
# of inputs past |tanh| 0.99 from layer 1's second norm on) and the model stalls at the unigram loss (6.7);
# at 0.05/0.01/0.01 nothing saturates and the loss falls with the others' (data/zoo/cpu2/pilots/README.md).
DYT_LLM = {"norm": "dyt", "dyt_alpha": [0.05, 0.01, 0.01], "embed_scale": True}
# 3 seeds each: the three base families, a mitigation on two of them and GLU's absence, then (added once the
# first six had trained) one design of the fourth family and one of the third norm, which had none
CPU2_SEEDED = ("llama", "neox", "gpt2", "llama-kvbias", "neox-kvbias", "llama-noglu", "qwen2", "llama-dyt",
               # then (once all 85 runs had trained) the single-run designs whose one run formed the mechanism,
               # cheapest first: seeds disagree on the onset layer in a third of pairs, so one run's onset is a
               # noisy truth to score a design on
               "llama-L2", "mix9-llama", "mix7-qwen2", "mix3-qwen2", "llama-H2", "llama-H8", "llama-bias",
               "llama-kv2",
               # the next eight of them, in the same order (2026-12-03)
               "llama-tvr", "llama-tied", "llama-tvr-kvbias", "neox-nobias", "neox-tvr", "qwen2-kvbias",
               "mix19-qwen2", "llama-ffn6",
               # the last seven of them, in the same order (2026-12-03, third session)
               "mix13-llama", "llama-noglu-ffn6", "llama-L6", "mix18-neox", "mix17-llama", "llama-L8",
               "qwen2-L8")  # fmt: skip
# a fourth seed (2026-12-04) where the three seeds' onset layers all differ, so that the design has no most common
# onset to be scored on (and is left out of the per-design score): cheapest first
CPU2_TIED = ("llama-H8", "llama-tied", "neox-nobias", "neox-tvr", "llama-L8", "qwen2-L8")
FAMILIES = {"llama": "llama", "qwen2": "qwen2", "neox": "gpt_neox", "gpt2": "gpt2"}


def cpu2_one_factor() -> list[RunSpec]:
    base = dict(d=128, layers=4, heads=4)
    llama, neox, gpt2 = (replace(b, **base) for b in (LLAMA, NEOX, GPT2))
    qwen2 = RunSpec("qwen2", "qwen2", **base)
    v = _variant
    return [
        llama, neox, gpt2, qwen2,
        # mitigations and their hybrids
        v(llama, "kvbias", changes={"kv_bias": True}), v(neox, "kvbias", changes={"kv_bias": True}),
        v(gpt2, "kvbias", changes={"kv_bias": True}),
        v(llama, "tvr", changes={"tvr": True}), v(neox, "tvr", changes={"tvr": True}),
        v(llama, "tvr-kvbias", changes={"tvr": True, "kv_bias": True}),
        v(neox, "tvr-kvbias", changes={"tvr": True, "kv_bias": True}),
        v(llama, "dyt", changes=DYT_LLM), v(neox, "dyt", changes=DYT_LLM), v(gpt2, "dyt", changes=DYT_LLM),
        v(llama, "tvr-dyt", changes={**DYT_LLM, "tvr": True}),
        # GLU vs not
        v(llama, "noglu", changes={"glu": False}), v(llama, "noglu-ffn6", ffn_ratio=6.0, changes={"glu": False}),
        # depth (a few large ones)
        v(llama, "L2", layers=2), v(llama, "L6", layers=6), v(llama, "L8", layers=8), v(llama, "L10", layers=10),
        v(neox, "L2", layers=2), v(neox, "L8", layers=8), v(gpt2, "L8", layers=8),
        # width
        v(llama, "d192", d=192, heads=6), v(llama, "d256", d=256, heads=8), v(neox, "d192", d=192, heads=6),
        v(gpt2, "d256", d=256, heads=8),
        # heads and KV heads
        v(llama, "H2", heads=2), v(llama, "H8", heads=8), v(llama, "kv2", overrides={"num_key_value_heads": 2}),
        v(neox, "H8", heads=8),
        # FFN ratio
        v(llama, "ffn2", ffn_ratio=2.0), v(llama, "ffn6", ffn_ratio=6.0), v(neox, "ffn2", ffn_ratio=2.0),
        # positions: partial / full rotary (neox default 0.25), learned (gpt2)
        v(neox, "rope1", overrides={"rotary_pct": 1.0}), v(neox, "rope05", overrides={"rotary_pct": 0.5}),
        # parallel vs sequential residual
        v(neox, "seq", overrides={"use_parallel_residual": False}),
        v(neox, "seq-L8", layers=8, overrides={"use_parallel_residual": False}),
        # biases
        v(llama, "bias", overrides={"attention_bias": True, "mlp_bias": True}),
        v(neox, "nobias", overrides={"attention_bias": False}),
        # tied embeddings
        v(llama, "tied", overrides={"tie_word_embeddings": True}),
        v(gpt2, "untied", overrides={"tie_word_embeddings": False}),
        # the fourth family
        v(qwen2, "kvbias", changes={"kv_bias": True}), v(qwen2, "L8", layers=8),
        # past the edge once the grid above had trained (2026-12-04): a width beyond 256, so that the width slope
        # can be tested held out (with two designs at the widest width, neither lies past the others' range), and
        # a depth nearer real models' (the real anchors have 18 and 30 layers)
        v(llama, "d320", d=320, heads=10), v(llama, "L16", layers=16),
        # then the depth of the two other families with a learned or rotary position and LayerNorm (GPT-2 forms the
        # mechanism last layer first, NeoX from a middle layer at 8 layers: where does it start at 16?)
        v(neox, "L16", layers=16), v(gpt2, "L16", layers=16),
        # past 16 layers (2026-12-04), so that the depth slopes, untested while three designs share the edge at 16,
        # are tested held out, and nearer the real anchors' depth: does NeoX's top-1 reach BOS at two thirds of
        # the depth again, or at a fixed layer?
        v(llama, "L24", layers=24), v(neox, "L24", layers=24),
    ]  # fmt: skip


def cpu2_random(count: int, seed: int = 11) -> list[RunSpec]:
    """Designs with several factors changed at once, over all four families, so effects are not confounded."""
    rng = random.Random(seed)
    runs = []
    for i in range(count):
        key = sorted(FAMILIES)[i % len(FAMILIES)]  # families in turn, the other factors at random
        d = rng.choice([128, 160, 192])
        heads = rng.choice([h for h in (2, 4, 8) if d % h == 0 and d // h >= 16])
        changes: dict = {"kv_bias": rng.random() < 0.3, "tvr": rng.random() < 0.25}
        if rng.random() < 0.2:
            changes.update(DYT_LLM)
        if key in ("llama", "qwen2") and rng.random() < 0.3:
            changes["glu"] = False
        overrides = {"tie_word_embeddings": rng.random() < 0.5}
        if key == "neox":
            overrides["use_parallel_residual"] = rng.random() < 0.5
        runs.append(
            RunSpec(f"mix{i}-{key}", FAMILIES[key], d=d, layers=rng.choice([2, 3, 4, 5, 6]), heads=heads,
                    ffn_ratio=rng.choice([2.0, 3.0, 4.0]), changes=changes, overrides=overrides)
        )  # fmt: skip
    return runs


def cpu2_tier() -> list[RunSpec]:
    """In training order: bases and their seed replicates first (the noise floor), then the rest."""
    designs = cpu2_one_factor() + cpu2_random(24)  # 12, then 4 and 8 more as the earlier ones had trained
    by_name = {r.name: r for r in designs}
    seeded = [replace(by_name[n], name=f"{n}-s{s}", recipe=replace(CPU2_RECIPE, seed=s))
              for s, names in ((1, CPU2_SEEDED), (2, CPU2_SEEDED), (3, CPU2_TIED)) for n in names]  # fmt: skip
    runs = [replace(r, recipe=CPU2_RECIPE) for r in designs]
    return runs[:4] + seeded[:3] + runs[4:8] + seeded[3:] + runs[8:]


# The token axis (ground truth v3): 4× the cpu2 tokens (4,000 steps of 32 × 128), cosine over each run's own
# length, so that a long run differs from its cpu2 run by its length alone (the length is a recipe feature);
# a warmup-stable-decay schedule would change the schedule's shape as well. 40 linear checkpoints, every 100 steps.
LONG_RECIPE = replace(CPU2_RECIPE, steps=4000)


def long_tier() -> list[RunSpec]:
    """The designs whose mechanism had not formed by step 1,000 in cpu2, their bases, and a wide mitigation."""
    by_name = {r.name: r for r in cpu2_one_factor()}
    names = ("llama", "neox", "llama-d192", "llama-d256", "llama-d320", "llama-L10", "llama-L16", "neox-L16",
             "gpt2-L16", "gpt2-d256", "qwen2-L8")  # fmt: skip
    runs = [by_name[n] for n in names]
    neox_wide = replace(by_name["neox"], name="neox-d256", d=256, heads=8)
    runs += [neox_wide, _variant(neox_wide, "kvbias", changes={"kv_bias": True})]
    return [replace(r, name=f"{r.name}-t4", recipe=LONG_RECIPE) for r in runs]


# The recipe axis (ground truth v3): one change to the cpu2 recipe at a time, at the cpu2 length in tokens.
RECIPE_VARIANTS = {
    "lr0.5": dict(lr=CPU2_RECIPE.lr * 0.5),
    "lr2": dict(lr=CPU2_RECIPE.lr * 2),
    "wd0.1": dict(weight_decay=0.1),
    "nobos": dict(bos=False),
    "b128": dict(batch_size=CPU2_RECIPE.batch_size * 4, steps=CPU2_RECIPE.steps // 4, warmup=CPU2_RECIPE.warmup // 4),
}
RECIPE_DESIGNS = ("llama", "neox", "gpt2", "qwen2", "llama-kvbias", "llama-noglu")


def recipe_tier() -> list[RunSpec]:
    """Six designs × five recipe changes, and the base Llama's second seed under each (against seed noise)."""
    by_name = {r.name: r for r in cpu2_one_factor()}
    runs = []
    for design, seed in [("llama", 0), ("llama", 1), *((d, 0) for d in RECIPE_DESIGNS[1:])]:
        for key, change in RECIPE_VARIANTS.items():
            name = f"{design}-{key}" + (f"-s{seed}" if seed else "")
            runs.append(replace(by_name[design], name=name, recipe=replace(CPU2_RECIPE, seed=seed, **change)))
    return runs


# Fine-tuning (measurement v3): the base Llama and its TVR mitigations at the cpu2 recipe (the same runs as cpu2's,
# bit for bit), then continued on the Debian FAQ; every checkpoint records its validation loss.
FINETUNE_DESIGNS = ("llama", "llama-tvr", "llama-tvr-kvbias", "llama-tvr-dyt")


def finetune_tier() -> list[RunSpec]:
    by_name = {r.name: r for r in cpu2_one_factor()}
    return [replace(by_name[n], name=f"{n}-ft", recipe=CPU2_RECIPE, finetune=FineTune()) for n in FINETUNE_DESIGNS]


def tier(name: str) -> list[RunSpec]:
    if name == "smoke":
        small = dict(d=32, layers=2, heads=2)
        picks = [LLAMA, NEOX, GPT2, _variant(LLAMA, "noglu", changes={"glu": False}),
                 _variant(LLAMA, "dyt", changes={"norm": "dyt"}), _variant(NEOX, "kvbias", changes={"kv_bias": True}),
                 _variant(LLAMA, "tvr", changes={"tvr": True})]  # fmt: skip
        return [replace(r, recipe=SMOKE_RECIPE, **small) for r in picks]
    if name == "cpu":  # sized to finish in ~1 h on 2 cores: two of the one-factor runs go to the gpu tier only
        runs = [r for r in one_factor_grid() if r.name not in GPU_ONLY] + random_combinations(1)
        return [replace(r, recipe=CPU_RECIPE) for r in runs]
    if name == "cpu2":
        return cpu2_tier()
    if name == "long":
        return long_tier()
    if name == "recipe":
        return recipe_tier()
    if name == "finetune":
        return finetune_tier()
    if name == "gpu":  # wider and deeper, longer runs
        runs = one_factor_grid() + random_combinations(12)
        return [replace(r, name=f"{r.name}-g", d=r.d * 4, layers=r.layers * 2, heads=r.heads * 2 if r.heads < 8
                        else r.heads, recipe=GPU_RECIPE) for r in runs]  # fmt: skip
    raise ValueError(f"unknown tier {name!r}; choose one of {', '.join(TIERS)}")


TIERS = ("smoke", "cpu", "cpu2", "long", "recipe", "finetune", "gpu")
