"""Property tests: valid configs never crash or yield non-finite rows; invalid ones raise FeatureError."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import CONFIG_KEY
from features import SUPPORTED_MODEL_TYPES, FeatureError, featurize
from features.families import REGISTRY

sizes = st.integers(min_value=1, max_value=64)


@st.composite
def valid_configs(draw):
    model_type = draw(st.sampled_from(SUPPORTED_MODEL_TYPES))
    adapter = REGISTRY[model_type]
    heads = draw(sizes)
    kv_divisor = draw(st.sampled_from([d for d in range(1, heads + 1) if heads % d == 0]))
    head_dim = draw(st.integers(1, 256))
    config = {
        "model_type": model_type,
        adapter.hidden[0]: heads * head_dim,
        adapter.layers[0]: draw(st.integers(1, 1000)),
        adapter.heads[0]: heads,
        "vocab_size": draw(st.integers(1, 10_000_000)),
    }
    if adapter.kv_heads:
        config[adapter.kv_heads[0]] = heads // kv_divisor
    if adapter.ffn and draw(st.booleans()):
        config[adapter.ffn[0]] = draw(st.integers(1, 1_048_576))
    if adapter.context and draw(st.booleans()):
        config[adapter.context[0]] = draw(st.integers(1, 16_777_216))
    if adapter.experts:
        experts = draw(st.integers(1, 64))
        config[adapter.experts[0]] = experts
        config[adapter.experts_active[0]] = draw(st.integers(1, experts))
    if draw(st.booleans()):
        config[CONFIG_KEY] = {
            "norm": draw(st.sampled_from(["layernorm", "rmsnorm", "dyt"])),
            "kv_bias": draw(st.booleans()),
            "tvr": draw(st.booleans()),
        }
    return config


@settings(max_examples=300, deadline=None)
@given(valid_configs())
def test_valid_configs_give_finite_rows(config):
    frame = featurize(config)
    assert len(frame) == frame["n_layers"].iloc[0]
    assert np.isfinite(frame.to_numpy()).all()


bad_values = st.one_of(
    st.integers(max_value=0),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: x != int(x) if np.isfinite(x) else True),
    st.text(max_size=5),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.integers(min_value=20_000_000, max_value=10**12),
)


@settings(max_examples=300, deadline=None)
@given(valid_configs(), st.sampled_from(["hidden", "layers", "heads", "vocab"]), bad_values)
def test_a_bad_size_always_raises_feature_error(config, which, value):
    adapter = REGISTRY[config["model_type"]]
    key = {"hidden": adapter.hidden[0], "layers": adapter.layers[0], "heads": adapter.heads[0], "vocab": "vocab_size"}[
        which
    ]
    config[key] = value
    try:
        featurize(config)
    except FeatureError:
        return
    raise AssertionError(f"{key}={value!r} was accepted")


# the keys real configs carry (each family's own names), so that random dicts reach the family adapters
CONFIG_KEYS = sorted(
    {k for p in (Path(__file__).parent / "data" / "configs").glob("*.json") for k in json.loads(p.read_text())}
)
loose_values = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(), st.text(max_size=8))


MOSTLY = st.sampled_from([True] * 9 + [False])  # nine times in ten (integers(0, 9) leans to 0)


@st.composite
def arbitrary_dicts(draw):
    """Noise over a family's own key names: a supported model_type nine times in ten, then any of that family's
    size keys and of the keys real configs carry, each with a plausible size or any JSON-like value."""
    config = draw(st.dictionaries(st.one_of(st.sampled_from(CONFIG_KEYS), st.text(max_size=8)), loose_values))
    if draw(MOSTLY):
        model_type = draw(st.sampled_from(SUPPORTED_MODEL_TYPES))
        adapter = REGISTRY[model_type]
        sizes_like = st.one_of(st.sampled_from([1, 2, 4, 8, 64, 128, 256]), loose_values)  # mostly plausible
        for names in (adapter.hidden, adapter.layers, adapter.heads, adapter.kv_heads, adapter.ffn, ("vocab_size",)):
            if names and draw(MOSTLY):  # each size nine times in ten, under any of its names
                config[draw(st.sampled_from(names))] = draw(sizes_like)
        config["model_type"] = model_type
    return config


@settings(max_examples=200, deadline=None)
@given(arbitrary_dicts())
def test_arbitrary_dicts_raise_feature_error_or_featurise(config):
    try:
        frame = featurize(config)
    except FeatureError:
        return
    assert np.isfinite(frame.to_numpy()).all()


def test_arbitrary_dicts_reach_the_family_adapters():
    # the property above means something only if its dicts get past the model_type check and some featurise
    seen = {"past model_type": 0, "featurised": 0}

    @settings(max_examples=200, deadline=None, database=None)
    @given(arbitrary_dicts())
    def count(config):
        try:
            featurize(config)
            seen["featurised"] += 1
        except FeatureError as exc:
            seen["past model_type"] += "model_type" not in str(exc)

    count()
    assert seen["past model_type"] > 100 and seen["featurised"] > 5, seen


CONFIGS = sorted((Path(__file__).parent / "data" / "configs").glob("*.json"))
any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.sampled_from([10**30, 10**400, -(10**400)]),  # past float range: must not overflow into a 500
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(CONFIGS), st.data())
def test_real_configs_with_one_value_perturbed_featurise_or_name_the_key(path, data):
    # Every supported family, starting from its real config: change one of its keys to any JSON value.
    config = json.loads(path.read_text())
    key = data.draw(st.sampled_from(sorted(k for k in config if k != "model_type")), label="key")
    config[key] = data.draw(any_value, label="value")
    try:
        frame = featurize(config)
    except FeatureError as exc:
        assert exc.field in config or exc.field.split(".")[0] in config or exc.field == "config", exc
        return
    assert np.isfinite(frame.to_numpy()).all()


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("falcon-7b", "num_kv_heads", "8"),  # a string where a count belongs: was a 500 in the service
        ("falcon-7b", "num_kv_heads", -2),
        ("pythia-160m", "rotary_pct", 2.0),  # named as NeoX spells it, not partial_rotary_factor
        ("mixtral-8x7b", "num_local_experts", 10**9),
        ("qwen2-0.5b", "use_sliding_window", "yes"),
        ("opt-125m", "do_layer_norm_before", "no"),
    ],
)
def test_family_keys_are_checked_and_named_as_the_family_spells_them(name, key, value):
    config = json.loads((Path(__file__).parent / "data" / "configs" / f"{name}.json").read_text())
    config[key] = value
    if name == "falcon-7b":
        config["new_decoder_architecture"] = True
    with pytest.raises(FeatureError) as caught:
        featurize(config)
    assert caught.value.field == key


def test_the_perturbed_configs_cover_every_supported_family():
    assert {json.loads(p.read_text())["model_type"] for p in CONFIGS} == set(SUPPORTED_MODEL_TYPES)
