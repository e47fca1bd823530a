"""Train one zoo run from scratch and save its checkpoint series (a folder per step)."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch

import archmods
from contracts import STEP_FILE
from zoo.spec import Recipe, RunSpec

RUN_FILE = "run.json"  # written last: its presence marks a finished run


def lr_at(step: int, recipe: Recipe) -> float:
    """Linear warmup, then cosine decay to lr · min_lr_frac at the last step."""
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return recipe.lr * (recipe.min_lr_frac + (1 - recipe.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress)))


class Batches:
    """Random windows of the token stream, deterministic given the seed; BOS first if asked."""

    def __init__(self, tokens: np.ndarray, recipe: Recipe, bos_id: int):
        self.tokens, self.recipe, self.bos_id = tokens, recipe, bos_id
        self.body = recipe.seq_len - 1 if recipe.bos else recipe.seq_len
        if len(tokens) <= self.body:
            raise ValueError(f"the corpus has {len(tokens)} tokens; a sequence needs {self.body + 1}")
        self.rng = np.random.default_rng(recipe.seed)

    def next(self) -> torch.Tensor:  # (batch_size, seq_len) int64
        starts = self.rng.integers(0, len(self.tokens) - self.body, size=self.recipe.batch_size)
        rows = np.stack([self.tokens[s : s + self.body] for s in starts]).astype(np.int64)
        if self.recipe.bos:
            rows = np.concatenate([np.full((len(rows), 1), self.bos_id, dtype=np.int64), rows], axis=1)
        return torch.from_numpy(rows)


@torch.no_grad()
def tvr_rescale_(model: torch.nn.Module, sigma: float, threshold: float) -> int:
    """Target variance rescaling: a 2-D block weight whose std exceeds threshold·σ is scaled back to σ.

    Returns how many matrices were rescaled.
    """
    count = 0
    for block in archmods.decoder_blocks(model):
        for param in block.parameters():
            if param.ndim == 2:
                std = float(param.std())
                if std > threshold * sigma:
                    param.mul_(sigma / std)
                    count += 1
    return count


def save_checkpoint(model, tokenizer, folder: Path, step: int, loss: float | None, tokens_seen: int) -> None:
    tmp = folder.with_name(f".{folder.name}.tmp")  # hidden until complete: extraction skips it
    shutil.rmtree(tmp, ignore_errors=True)
    archmods.save_causal_lm(model, tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / STEP_FILE).write_text(json.dumps({"step": step, "loss": loss, "tokens": tokens_seen}))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def optimizer_for(model: torch.nn.Module, recipe: Recipe) -> torch.optim.AdamW:
    """AdamW with the recipe's weight decay on matrices only (norms, biases and scalars are not decayed)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.lr,
        betas=recipe.betas,
    )


def train_step(model, optimizer, batch: torch.Tensor, step: int, recipe: Recipe, name: str) -> float:
    """One optimiser step at the recipe's lr for `step`, gradients clipped; returns the batch's loss."""
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, recipe)
    loss = model(input_ids=batch, labels=batch).loss
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{name}: loss is {float(loss)} at step {step}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
    optimizer.step()
    return loss.item()


def train_run(spec: RunSpec, tokens: np.ndarray, tokenizer, run_dir: Path, device: str = "cpu", log=print) -> dict:
    """Train `spec` and write run_dir/step{N}/ for each checkpoint step, then run.json."""
    recipe = spec.recipe
    torch.manual_seed(recipe.seed)
    config = spec.config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    model = archmods.build_model(config).to(device).train()
    optimizer = optimizer_for(model, recipe)
    batches = Batches(tokens, recipe, tokenizer.bos_token_id)
    checkpoints = set(recipe.checkpoint_steps())
    use_tvr = bool(spec.changes.get("tvr"))
    run_dir.mkdir(parents=True, exist_ok=True)
    start, losses, tvr_count = time.time(), [], 0
    tokens_per_step = recipe.batch_size * recipe.seq_len
    for step in range(recipe.steps + 1):
        if step in checkpoints:
            recent = float(np.mean(losses[-20:])) if losses else None
            save_checkpoint(
                model.eval().cpu(), tokenizer, run_dir / f"step{step}", step, recent, step * tokens_per_step
            )
            model.to(device).train()
        if step == recipe.steps:
            break
        loss = train_step(model, optimizer, batches.next().to(device), step, recipe, spec.name)
        if use_tvr and (step + 1) % recipe.tvr_every == 0:
            tvr_count += tvr_rescale_(model, recipe.tvr_sigma, recipe.tvr_threshold)
        losses.append(loss)
        if step % 100 == 0:
            log(f"{spec.name}: step {step}/{recipe.steps} loss {losses[-1]:.3f}")
    summary = {
        "spec": spec.to_dict(),
        "n_params": sum(p.numel() for p in model.parameters()),
        "final_loss": float(np.mean(losses[-20:])),
        "initial_loss": losses[0],
        "seconds": round(time.time() - start, 1),
        "tokens_per_step": tokens_per_step,
        "checkpoints": sorted(checkpoints),
        "tvr_rescales": tvr_count,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    (run_dir / RUN_FILE).write_text(json.dumps(summary, indent=2, default=str))
    return summary
