"""Do the massive activations matter? Perplexity on the probe windows with them left alone, set to zero, and set
to their mean, as Sun et al. intervene (`archcast measure --interventions` writes DIR/interventions.json).

What counts as a massive activation here: an entry of a decoder block's output h_ℓ (the residual stream) whose
|h| is at least RATIO × the layer's median |h| over the probe (ma_median), in every layer that holds one. Sun
et al. ask for > 100 in value and ≥ 1000× the median; small models rarely reach that, so the ratio is an option
and the absolute floor is left out. The entries are found once, in a clean pass, and the interventions change
exactly those entries (window, token position, dimension): to 0, or to the mean of that dimension over the
probe's other tokens in that layer, or to the mean of the massive values themselves at that (position,
dimension) over the windows (Sun et al.'s own intervention: the size stays, the variation goes). Each carrying
layer is also changed alone (zeroed).

Perplexity: exp of the mean next-token loss over positions ≥ 1 of every window (the token at position t
predicted from positions < t), which equals the model's own loss with labels = the window.

An edited pass changes nothing before the first layer it edits, so the clean pass keeps every block's output
(where they fit in CACHE_BYTES) and an edited pass replays them up to that layer instead of computing them:
each layer zeroed alone then costs the layers after it, about half a pass on average. The perplexities are the
same numbers as full passes give (test).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

import archmods
from extraction.hooks import block_output

RATIO = 100.0  # × the layer's median |h|: outliers.json's upper threshold
CACHE_BYTES = 2 << 30  # the clean pass's block outputs kept for replay, at most (a 135M model's take 0.2 GB)


@dataclass
class Entries:
    """One layer's massive entries: where they are, their values and the dimension means that replace them."""

    threshold: float
    where: list[tuple[int, int, int]] = field(default_factory=list)  # (window, position, dim)
    values: list[float] = field(default_factory=list)
    dim_sum: torch.Tensor | None = None  # (d,) float64, over the entries that are not massive
    dim_count: torch.Tensor | None = None

    def means(self) -> torch.Tensor:
        return self.dim_sum / self.dim_count.clamp(min=1)

    def own_means(self) -> list[float]:
        """Per entry, the mean of the massive values at its (position, dimension) over the windows that have one
        there: Sun et al.'s mean intervention, which keeps the activation's size and only its variation goes."""
        groups: dict[tuple[int, int], list[float]] = {}
        for (_, p, d), value in zip(self.where, self.values, strict=True):
            groups.setdefault((p, d), []).append(value)
        return [sum(groups[(p, d)]) / len(groups[(p, d)]) for _, p, d in self.where]


def _replace_output(output, h: torch.Tensor):
    if isinstance(output, torch.Tensor):
        return h
    return (h, *output[1:])


@contextmanager
def _on_blocks(model, hook_for: Callable[[int], Callable | None]):
    blocks = archmods.decoder_blocks(model)
    handles = [block.register_forward_hook(hook) for i, block in enumerate(blocks) if (hook := hook_for(i))]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def perplexity(model, windows: torch.Tensor, batch_size: int, on_batch=None) -> float:
    """exp(mean next-token loss over positions ≥ 1), in float64 sums."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for batch in windows.split(batch_size):
        batch = batch.to(device)
        logits = model(input_ids=batch, use_cache=False).logits[:, :-1].float()
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="sum")
        total += float(loss.double())
        count += batch[:, 1:].numel()
        if on_batch:
            on_batch()
    mean = total / count
    return math.exp(mean) if mean < OVERFLOW_NATS else math.inf  # a broken model's loss can pass exp's range


OVERFLOW_NATS = 709.0  # exp() of more is past the largest float


@torch.no_grad()
def find_entries(model, windows: torch.Tensor, medians: list[float], batch_size: int, ratio: float = RATIO,
                 keep: dict[int, list] | None = None):  # fmt: skip
    """(clean perplexity, {layer index: Entries}) for the layers that hold an entry ≥ ratio × their median.
    `keep`: filled with every block's outputs, batch by batch (block index → [output of batch 0, …]), to replay."""
    found = {i: Entries(ratio * m) for i, m in enumerate(medians) if math.isfinite(m) and m > 0}
    start = {"window": 0}

    def hook_for(i: int):
        if keep is not None:
            keep[i] = []
        if i not in found:
            return None if keep is None else (lambda module, args, output: keep[i].append(output))
        entries = found[i]

        def hook(module, args, output):
            if keep is not None:
                keep[i].append(output)
            h = block_output(output)
            massive = h.abs().float() >= entries.threshold  # (B, S, d)
            for w, p, d in massive.nonzero().tolist():
                entries.where.append((start["window"] + w, p, d))
                entries.values.append(float(h[w, p, d]))
            rest = torch.where(massive, 0.0, h.double())
            sums, counts = rest.sum((0, 1)).cpu(), (~massive).sum((0, 1)).double().cpu()
            entries.dim_sum = sums if entries.dim_sum is None else entries.dim_sum + sums
            entries.dim_count = counts if entries.dim_count is None else entries.dim_count + counts

        return hook

    def advance():
        start["window"] += batch_size

    with _on_blocks(model, hook_for):
        clean = perplexity(model, windows, batch_size, on_batch=advance)
    return clean, {i: e for i, e in found.items() if e.where}


@torch.no_grad()
def edited_perplexity(model, windows: torch.Tensor, batch_size: int, edits: dict[int, tuple[Entries, str]],
                      clean: dict[int, list] | None = None) -> float:  # fmt: skip
    """Perplexity with each layer's entries set to 0 ("zero"), to their dimension's mean over the other tokens
    ("mean"), or to the mean of the massive values at their (position, dimension) over the windows
    ("own_mean", as Sun et al.). `clean` (find_entries' `keep`): the blocks up to the first edited one replay
    their clean outputs instead of computing them."""
    start = {"window": 0}
    if clean:
        with _replaying(model, clean, min(edits), start, batch_size):
            return _edited(model, windows, batch_size, edits, start)
    return _edited(model, windows, batch_size, edits, start)


@contextmanager
def _replaying(model, clean: dict[int, list], upto: int, start: dict, batch_size: int):
    """Blocks 0…upto answer the current batch with their kept clean output (their hooks still run on it)."""
    blocks = archmods.decoder_blocks(model)

    def replay(i: int):
        return lambda *args, **kwargs: clean[i][start["window"] // batch_size]

    for i in range(upto + 1):
        blocks[i].forward = replay(i)  # an instance attribute: nn.Module.__call__ calls it instead
    try:
        yield
    finally:
        for i in range(upto + 1):
            del blocks[i].forward


def _edited(model, windows, batch_size, edits, start) -> float:
    def hook_for(i: int):
        if i not in edits:
            return None
        entries, how = edits[i]
        where = torch.tensor(entries.where, dtype=torch.long)
        means = entries.means()
        own = torch.tensor(entries.own_means(), dtype=torch.float64)

        def hook(module, args, output):
            h = block_output(output)
            inside = (where[:, 0] >= start["window"]) & (where[:, 0] < start["window"] + len(h))
            w, p, d = where[inside].unbind(1)
            h = h.clone()
            if how == "zero":
                h[w - start["window"], p, d] = 0.0
            else:
                value = means[d] if how == "mean" else own[inside]
                h[w - start["window"], p, d] = value.to(h.dtype).to(h.device)
            return _replace_output(output, h)

        return hook

    def advance():
        start["window"] += batch_size

    with _on_blocks(model, hook_for):
        return perplexity(model, windows, batch_size, on_batch=advance)


def interventions(model, windows: torch.Tensor, medians: list[float], batch_size: int, ratio: float = RATIO,
                  limit: int = 2000, per_layer: bool = True) -> dict:  # fmt: skip
    """Everything interventions.json holds (perplexities, what was changed, the probe's tokens). `per_layer`:
    also each carrying layer zeroed alone, a forward pass per layer (most of the cost)."""
    blocks = len(archmods.decoder_blocks(model))
    kept_bytes = 4 * blocks * windows.numel() * model.get_input_embeddings().embedding_dim  # float32 outputs
    keep = {} if kept_bytes <= CACHE_BYTES else None
    clean, found = find_entries(model, windows, medians, batch_size, ratio, keep)
    out: dict = {
        "rule": f"entries of a block's output with |h| >= {ratio:g}x the layer's median |h| over the probe",
        "perplexity": {"none": clean, "zero": None, "mean": None, "own_mean": None},
        "layers": [],
        "changed": [],
        "probe_tokens": windows.tolist(),
    }
    if not found:
        out["note"] = f"no layer holds an entry {ratio:g}x its median: nothing to change"
        return out
    for how in ("zero", "mean", "own_mean"):
        edits = {i: (e, how) for i, e in found.items()}
        out["perplexity"][how] = edited_perplexity(model, windows, batch_size, edits, keep)
    for i, entries in found.items():
        alone = edited_perplexity(model, windows, batch_size, {i: (entries, "zero")}, keep) if per_layer else None
        dims = sorted({d for _, _, d in entries.where})
        positions = sorted({p for _, p, _ in entries.where})
        out["layers"].append({"layer": i + 1, "threshold": entries.threshold, "entries": len(entries.where),
                              "dims": dims, "positions": positions, "perplexity_zeroed_alone": alone})  # fmt: skip
        means = entries.means()
        for (w, p, d), value, own in zip(entries.where, entries.values, entries.own_means(), strict=True):
            if len(out["changed"]) < limit:
                out["changed"].append({"layer": i + 1, "window": w, "position": p, "dim": d, "value": value,
                                       "mean": float(means[d]), "own_mean": own})  # fmt: skip
    total = sum(len(e.where) for e in found.values())
    if total > limit:
        out["changed_note"] = f"{total} entries changed; the first {limit} are listed"
    overflowed = [how for how, value in out["perplexity"].items() if value == math.inf]
    overflowed += [
        f"layer {e['layer']} zeroed alone" for e in out["layers"] if e["perplexity_zeroed_alone"] == math.inf
    ]
    if overflowed:  # JSON has no infinity
        finite = lambda v: None if v == math.inf else v  # noqa: E731
        out["perplexity"] = {how: finite(v) for how, v in out["perplexity"].items()}
        for e in out["layers"]:
            e["perplexity_zeroed_alone"] = finite(e["perplexity_zeroed_alone"])
        out["overflow_note"] = (f"perplexity past the largest float (mean loss ≥ {OVERFLOW_NATS:g} nats), null: "
                                f"{', '.join(overflowed)}")  # fmt: skip
    return out
