"""Train one zoo run and save its checkpoint series (a folder per step); an interrupted run resumes.

Each checkpoint folder also holds `trainer_state.pt` (weights, optimizer, sampler and torch RNG states,
the losses so far) until the next checkpoint is complete, so a run killed at any moment continues from
its last complete checkpoint and ends with the weights an uninterrupted run would have (bit for bit, at
the same thread count and torch build).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import archmods
from contracts import STEP_FILE
from zoo.spec import Recipe, RunSpec

RUN_FILE = "run.json"  # written last: its presence marks a finished run
STATE_FILE = "trainer_state.pt"  # what a resumed run needs; kept in the latest checkpoint only


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


def save_checkpoint(
    model,
    tokenizer,
    folder: Path,
    step: int,
    loss: float | None,
    tokens_seen: int,
    state: dict | None = None,
    val_loss: float | None = None,
) -> None:
    """Write folder/ atomically (a hidden temporary folder renamed when complete: extraction skips it)."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    archmods.save_causal_lm(model, tmp)
    tokenizer.save_pretrained(tmp)
    record = {"step": step, "loss": loss, "tokens": tokens_seen}
    if val_loss is not None:
        record["val_loss"] = val_loss
    (tmp / STEP_FILE).write_text(json.dumps(record))
    if state is not None:
        torch.save(state, tmp / STATE_FILE)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def latest_state(run_dir: Path) -> Path | None:
    """The trainer state of the run's latest complete checkpoint, if any."""
    states = Path(run_dir).glob(f"step*/{STATE_FILE}")
    found = [(json.loads((f.parent / STEP_FILE).read_text())["step"], f) for f in states]
    return max(found)[1] if found else None


def _drop_older_states(run_dir: Path, keep: Path | None) -> None:
    for f in Path(run_dir).glob(f"step*/{STATE_FILE}"):
        if f != keep:
            f.unlink()


def optimizer_for(model: torch.nn.Module, recipe: Recipe) -> torch.optim.AdamW:
    """AdamW with the recipe's weight decay on matrices only (norms, biases and scalars are not decayed)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.lr,
        betas=recipe.betas,
    )


def train_step(
    model, optimizer, batch: torch.Tensor, step: int, recipe: Recipe, name: str, lr: float | None = None
) -> float:
    """One optimiser step at the recipe's lr for `step` (or `lr`), gradients clipped; returns the batch's loss."""
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, recipe) if lr is None else lr
    loss = model(input_ids=batch, labels=batch).loss
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{name}: loss is {float(loss)} at step {step}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
    optimizer.step()
    return loss.item()


VALIDATION_WINDOWS = 16  # of the held-out probe text: each checkpoint's validation loss


def validation_windows(probe_tokens: np.ndarray, recipe: Recipe, bos_id: int) -> torch.Tensor:
    """(VALIDATION_WINDOWS, seq_len): windows spread evenly over the held-out text, BOS first as in training."""
    body = recipe.seq_len - 1 if recipe.bos else recipe.seq_len
    starts = np.linspace(0, len(probe_tokens) - body - 1, VALIDATION_WINDOWS).astype(np.int64)
    rows = np.stack([probe_tokens[s : s + body] for s in starts]).astype(np.int64)
    if recipe.bos:
        rows = np.concatenate([np.full((len(rows), 1), bos_id, dtype=np.int64), rows], axis=1)
    return torch.from_numpy(rows)


@torch.no_grad()
def validation_loss(model, windows: torch.Tensor, device: str) -> float:
    """Mean next-token loss on the held-out windows (the model in eval mode: no dropout, no RNG drawn)."""
    model.eval()
    loss = float(model(input_ids=windows.to(device), labels=windows.to(device)).loss)
    model.train()
    return loss


def train_run(
    spec: RunSpec,
    tokens: np.ndarray,
    tokenizer,
    run_dir: Path,
    device: str = "cpu",
    log=print,
    probe_tokens: np.ndarray | None = None,
    finetune_tokens: np.ndarray | None = None,
) -> dict:
    """Train `spec` and write run_dir/step{N}/ for each checkpoint step, then run.json. With `probe_tokens` (the
    held-out text), each checkpoint records its validation loss; a spec with a fine-tuning continuation trains
    on `finetune_tokens` after the recipe's steps.

    Continues from the latest complete checkpoint's trainer state when run_dir has one.
    """
    recipe, finetune = spec.recipe, spec.finetune
    if finetune is not None and finetune_tokens is None:
        raise ValueError(f"{spec.name} is fine-tuned after pretraining: it needs the fine-tuning text's tokens")
    torch.manual_seed(recipe.seed)
    config = spec.config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    model = archmods.build_model(config).to(device).train()
    optimizer = optimizer_for(model, recipe)
    batches = Batches(tokens, recipe, tokenizer.bos_token_id)
    tuning = None
    if finetune is not None:
        tuning = Batches(finetune_tokens, replace(recipe, batch_size=finetune.batch_size, seed=finetune.seed),
                         tokenizer.bos_token_id)  # fmt: skip
    held_out = None if probe_tokens is None else validation_windows(probe_tokens, recipe, tokenizer.bos_token_id)
    val_losses: dict[int, float] = {}
    last = recipe.steps + (finetune.steps if finetune else 0)
    checkpoints = set(spec.checkpoint_steps())
    use_tvr = bool(spec.changes.get("tvr"))
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_record = json.loads(json.dumps(spec.to_dict(), default=str))  # as it reads back from the state file
    first, losses, tvr_count, seconds_before, sittings = 0, [], 0, 0.0, []
    state_file = latest_state(run_dir)
    if state_file is not None:
        state = torch.load(state_file, map_location="cpu", weights_only=False)  # a GPU run resumes anywhere
        if state["spec"] != spec_record:
            raise ValueError(
                f"{spec.name}: {run_dir} holds a run of another spec; remove the folder to train this one afresh"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        batches.rng.bit_generator.state = state["sampler"]
        if tuning is not None:
            tuning.rng.bit_generator.state = state["finetune_sampler"]
        val_losses = {int(k): v for k, v in state.get("val_losses", {}).items()}
        torch.set_rng_state(state["torch_rng"])
        first, losses, tvr_count = state["step"], state["losses"], state["tvr_count"]
        seconds_before, sittings = state["seconds"], state["sittings"]
        log(f"{spec.name}: resuming from step {first}")
    sittings = [*sittings, {"from_step": first, "threads": torch.get_num_threads(), "torch": torch.__version__}]
    start = time.time()
    tokens_per_step = recipe.batch_size * recipe.seq_len
    for step in range(first, last + 1):
        if step in checkpoints and not (state_file is not None and step == first):  # not the one resumed from
            recent = float(np.mean(losses[-20:])) if losses else None
            if held_out is not None:
                val_losses[step] = validation_loss(model, held_out, device)
            folder = run_dir / f"step{step}"
            state = {
                "spec": spec_record,
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "sampler": batches.rng.bit_generator.state,
                **({"finetune_sampler": tuning.rng.bit_generator.state} if tuning is not None else {}),
                "val_losses": val_losses,
                "torch_rng": torch.get_rng_state(),
                "losses": losses,
                "tvr_count": tvr_count,
                "seconds": seconds_before + time.time() - start,
                "sittings": sittings,
            }
            tuned = max(0, step - recipe.steps) * (finetune.batch_size * recipe.seq_len if finetune else 0)
            seen = min(step, recipe.steps) * tokens_per_step + tuned
            save_checkpoint(model.eval().cpu(), tokenizer, folder, step, recent, seen, state, val_losses.get(step))
            _drop_older_states(run_dir, keep=folder / STATE_FILE)
            model.to(device).train()
        if step == last:
            break
        if step < recipe.steps:
            loss = train_step(model, optimizer, batches.next().to(device), step, recipe, spec.name)
        else:  # the fine-tuning continuation: other text, the constant lr the pretraining ended at
            loss = train_step(model, optimizer, tuning.next().to(device), step, recipe, spec.name, finetune.lr)
        if use_tvr and (step + 1) % recipe.tvr_every == 0:
            tvr_count += tvr_rescale_(model, recipe.tvr_sigma, recipe.tvr_threshold)
        losses.append(loss)
        if step % 100 == 0:
            log(f"{spec.name}: step {step}/{recipe.steps} loss {losses[-1]:.3f}")
    _drop_older_states(run_dir, keep=None)  # a finished run needs no trainer state
    summary = {
        "spec": spec.to_dict(),
        "n_params": sum(p.numel() for p in model.parameters()),
        "final_loss": float(np.mean(losses[-20:])),
        "initial_loss": losses[0],
        "seconds": round(seconds_before + time.time() - start, 1),
        "tokens_per_step": tokens_per_step,
        **(
            {"val_loss": val_losses[last], "val_losses": {str(k): v for k, v in sorted(val_losses.items())}}
            if last in val_losses
            else {}
        ),
        **({"pretrained_final_loss": float(np.mean(losses[recipe.steps - 20 : recipe.steps]))} if finetune else {}),
        "checkpoints": sorted(checkpoints),
        "tvr_rescales": tvr_count,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "sittings": sittings,
    }
    (run_dir / RUN_FILE).write_text(json.dumps(summary, indent=2, default=str))
    return summary
