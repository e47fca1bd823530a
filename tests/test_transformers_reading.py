"""Configs read as transformers reads them: where a family's config class takes two spellings of one fact (an
attribute_map alias, a legacy keyword), archcast reads the one transformers keeps."""

from __future__ import annotations

import json
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import SUPPORTED_MODEL_TYPES, read_spec
from features.families import REGISTRY

from .conftest import REPO

FIELDS = {"hidden": "hidden_size", "layers": "num_hidden_layers", "heads": "num_attention_heads"}
SPEC_FIELD = {"hidden": "d", "layers": "layers", "heads": "heads"}
BASES = {json.loads(p.read_text())["model_type"]: json.loads(p.read_text())
         for p in sorted((REPO / "tests" / "data" / "configs").glob("*.json"))}  # fmt: skip


def transformers_config(config: dict):
    from transformers import CONFIG_MAPPING

    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures", "archcast")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CONFIG_MAPPING[config["model_type"]](**fields)


def test_every_attribute_map_alias_comes_before_its_target():
    """An alias set in config.json overrides the attribute it maps to (PretrainedConfig.__setattr__)."""
    from transformers import CONFIG_MAPPING

    for model_type in SUPPORTED_MODEL_TYPES:
        adapter = REGISTRY[model_type]
        for alias, target in CONFIG_MAPPING[model_type].attribute_map.items():
            for name in ("hidden", "layers", "heads", "context", "experts"):
                keys = getattr(adapter, name)
                if target in keys:
                    assert alias in keys and keys.index(alias) < keys.index(target), (model_type, name, keys)


FAMILIES_WITH_TWO_SPELLINGS = [t for t in SUPPORTED_MODEL_TYPES if t in BASES and any(
    len(getattr(REGISTRY[t], f)) > 1 for f in FIELDS)]  # fmt: skip


@pytest.mark.parametrize("model_type", FAMILIES_WITH_TWO_SPELLINGS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_both_spellings_set_apart_read_as_transformers_reads_them(model_type, data):
    config = dict(BASES[model_type])
    heads = data.draw(st.sampled_from([1, 2, 4, 8]))
    wanted = {"hidden": heads * data.draw(st.sampled_from([16, 32, 64])), "layers": data.draw(st.integers(1, 40)),
              "heads": heads}  # fmt: skip
    # each field's first spelling gets the value, every other spelling a multiple of it: whichever one the reader
    # keeps shows in what it reads
    for name, value in wanted.items():
        for k, key in enumerate(getattr(REGISTRY[model_type], name)):
            config[key] = value * (k + 1)
    for key in ("num_key_value_heads", "num_kv_heads", "multi_query", "new_decoder_architecture", "head_dim"):
        config.pop(key, None)
    hf = transformers_config(config)
    spec = read_spec(config)
    for name, attribute in FIELDS.items():
        assert getattr(spec, SPEC_FIELD[name]) == getattr(hf, attribute), (name, config)


def test_the_defaults_table_is_what_the_installed_transformers_gives():
    """features/hf_defaults.json, read for every key a config leaves out, is regenerated from transformers
    (`python -m features.hf_defaults`) whenever its defaults change."""
    from features import hf_defaults

    for model_type in SUPPORTED_MODEL_TYPES:
        assert hf_defaults.table()[model_type] == hf_defaults.from_transformers(model_type), model_type


@pytest.mark.parametrize("model_type", sorted(BASES))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_a_config_with_keys_left_out_reads_as_transformers_fills_them_in(model_type, data):
    """Any subset of a real config's keys, read as it is and as transformers' config class completes it
    (to_dict of the config object: every default and derived value written out), gives one design."""
    from features import FeatureError

    base = BASES[model_type]
    keys = sorted(k for k in base if k not in ("model_type", "architectures", "archcast"))
    dropped = data.draw(st.sets(st.sampled_from(keys), max_size=len(keys)), label="dropped")
    sparse = {k: v for k, v in base.items() if k not in dropped}
    try:
        completed = transformers_config(sparse).to_dict()
    except Exception:  # noqa: BLE001 - transformers' own validation refuses this subset: nothing to compare
        return
    outcomes = []
    for config in (sparse, completed):
        try:
            outcomes.append(read_spec(config))
        except FeatureError as exc:
            outcomes.append(type(exc))
    assert outcomes[0] == outcomes[1], (sorted(dropped), outcomes)
