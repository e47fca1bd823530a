"""extraction.interventions: perplexity as the model's own loss, and interventions that change exactly the
massive entries (a planted one here)."""

from __future__ import annotations

import math

import pytest
import torch

import archmods
from extraction.interventions import edited_perplexity, find_entries, interventions, perplexity

from .conftest import tiny_config

TOKEN, DIM, POSITION, VALUE = 7, 5, 9, 3000.0


def planted(tokenizer):
    torch.manual_seed(0)
    model = archmods.build_model(tiny_config("llama", tokenizer)).eval()
    with torch.no_grad():
        model.model.embed_tokens.weight[TOKEN, DIM] = VALUE
    windows = torch.randint(10, len(tokenizer), (5, 24))
    windows[[1, 3], POSITION] = TOKEN  # the planted token in windows 1 and 3 only
    return model, windows


def medians(model, windows) -> list[float]:
    from extraction.measure import Settings, measure

    return [row["ma_median"] for row in measure(model, windows, Settings(batch_size=2, linearity=False))]


def test_perplexity_is_the_models_own_loss_with_labels(tokenizer):
    model, windows = planted(tokenizer)
    with torch.no_grad():
        own = math.exp(float(model(input_ids=windows, labels=windows).loss))
    assert perplexity(model, windows, batch_size=2) == pytest.approx(own, rel=1e-4)


@pytest.mark.parametrize("how", ["zero", "mean"])
def test_the_interventions_change_exactly_the_planted_entries(tokenizer, how):
    model, windows = planted(tokenizer)
    clean, found = find_entries(model, windows, medians(model, windows), batch_size=2)
    assert set(found) == set(range(model.config.num_hidden_layers))  # the residual stream carries it through
    for entries in found.values():
        assert sorted(entries.where) == [(1, POSITION, DIM), (3, POSITION, DIM)]
    seen = []  # what block 2 receives: block 1's output as every later layer sees it, edits included

    def grab(module, args, kwargs):
        seen.append((args[0] if args else kwargs["hidden_states"]).detach().clone())

    handle = archmods.decoder_blocks(model)[1].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            before = torch.cat([block_out(model, b, seen) for b in windows.split(2)])
        seen.clear()
        edited = edited_perplexity(model, windows, 2, {0: (found[0], how)})
    finally:
        handle.remove()
    after = torch.cat(seen)
    changed = (after != before).nonzero().tolist()
    assert changed == [[1, POSITION, DIM], [3, POSITION, DIM]]
    expected = 0.0 if how == "zero" else float(found[0].means()[DIM])
    assert float(after[1, POSITION, DIM]) == pytest.approx(expected, abs=1e-6)
    assert edited != clean


def block_out(model, batch, seen):
    seen.clear()
    model(input_ids=batch, use_cache=False)
    return seen[0].clone()


def test_the_report_holds_the_three_perplexities_and_what_changed(tokenizer):
    model, windows = planted(tokenizer)
    result = interventions(model, windows, medians(model, windows), batch_size=2)
    assert set(result["perplexity"]) == {"none", "zero", "mean", "own_mean"} and all(result["perplexity"].values())
    # both planted entries hold the same value: setting them to their own mean changes nothing
    assert result["perplexity"]["own_mean"] == pytest.approx(result["perplexity"]["none"], rel=1e-6)
    assert result["perplexity"]["zero"] != pytest.approx(result["perplexity"]["none"], rel=1e-3)
    assert {(c["window"], c["position"], c["dim"]) for c in result["changed"]} == {(1, POSITION, DIM),
                                                                                    (3, POSITION, DIM)}  # fmt: skip
    assert [entry["layer"] for entry in result["layers"]] == list(range(1, model.config.num_hidden_layers + 1))
    assert result["probe_tokens"] == windows.tolist()
    nothing = interventions(model, windows, [float("inf")] * model.config.num_hidden_layers, batch_size=2)
    assert nothing["perplexity"]["zero"] is None and "nothing to change" in nothing["note"]


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox", "qwen2", "opt", "phi"])
def test_replaying_the_clean_blocks_gives_the_full_passes_numbers(tokenizer, family):
    torch.manual_seed(0)
    model = archmods.build_model(tiny_config(family, tokenizer)).eval()
    with torch.no_grad():
        model.get_input_embeddings().weight[TOKEN, DIM] = 30.0  # massive for these weights, not ruinous
    windows = torch.randint(10, len(tokenizer), (5, 24))
    windows[[1, 3], POSITION] = TOKEN
    keep: dict = {}
    clean, found = find_entries(model, windows, medians(model, windows), 2, ratio=20.0, keep=keep)
    assert found and len(keep) == model.config.num_hidden_layers and all(len(k) == 3 for k in keep.values())
    for edits in [{i: (e, "zero") for i, e in found.items()}, *({i: (e, "mean")} for i, e in found.items())]:
        full = edited_perplexity(model, windows, 2, edits)
        assert math.isfinite(full)
        assert edited_perplexity(model, windows, 2, edits, keep) == full  # the same operations on the same numbers
    assert not any("forward" in vars(block) for block in archmods.decoder_blocks(model))  # put back
    assert perplexity(model, windows, 2) == clean
