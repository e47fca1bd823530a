"""The model store: resolving, verifying and promoting versions of the committed model."""

from __future__ import annotations

import json
import shutil
import threading

import pytest

from features import FEATURES
from modelstore import MANIFEST, ModelError, current_version, promote, read_manifest, resolve, verify

from .conftest import REPO


@pytest.fixture
def store(tmp_path):
    copy = tmp_path / "models"
    version = current_version(REPO / "models")
    copy.mkdir()
    shutil.copytree(REPO / "models" / version, copy / version)
    (copy / "CURRENT").write_text(version + "\n")
    return copy


def test_the_committed_model_verifies_with_its_reference_feature_rows():
    folder = resolve(REPO / "models")
    manifest = read_manifest(folder)
    assert manifest.reference_rows, "the served manifest keeps reference feature rows"
    blobs = verify(folder, manifest)
    assert sorted(blobs) == sorted(t.name for t in manifest.targets)
    assert read_manifest(folder).to_json() == json.loads((folder / MANIFEST).read_text())


def test_the_committed_model_card_is_the_one_its_manifest_gives():
    """MODEL_CARD.md is generated from manifest.json: a card edited by hand, or left behind by a change to the
    card's code, disagrees with it (retrain, or regenerate the card)."""
    from modelstore import CARD
    from training.model_card import model_card

    folder = resolve(REPO / "models")
    assert (folder / CARD).read_text() == model_card(read_manifest(folder).to_json())


def test_a_feature_computed_differently_since_training_is_refused(store):
    folder = resolve(store)
    data = json.loads((folder / MANIFEST).read_text())
    name = next(iter(data["reference_rows"]))
    column = FEATURES.index("log_d")
    for row in data["reference_rows"][name]["rows"]:
        row[column] += 0.5  # what a change in how log d is computed would leave behind
    (folder / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(ModelError, match=rf"reference config '{name}'.*log_d"):
        verify(folder, read_manifest(folder))


def test_a_missing_file_or_manifest_is_named(store):
    folder = resolve(store)
    onnx_file = next(folder.glob("*.onnx"))
    onnx_file.unlink()
    with pytest.raises(ModelError, match=f"{onnx_file.name} is missing"):
        verify(folder, read_manifest(folder))
    with pytest.raises(ModelError, match="no-such-version"):
        resolve(store, "no-such-version")


def test_promote_switches_the_pointer_and_never_rewrites_the_served_folder(store, tmp_path):
    served = current_version(store)
    candidate = tmp_path / "work" / "20990101-new"
    shutil.copytree(store / served, candidate)
    promote(candidate, store)
    assert current_version(store) == "20990101-new" and (store / served / MANIFEST).exists()
    promote(candidate, store)  # the same files again: nothing to copy, still served
    assert current_version(store) == "20990101-new"
    (candidate / "MODEL_CARD.md").write_text("different")
    with pytest.raises(ModelError, match="never rewritten in place"):
        promote(candidate, store)
    assert (store / "20990101-new" / "MODEL_CARD.md").read_text() != "different"
    assert not list(store.glob(".*"))  # no temporary folder or pointer left behind


def test_readers_always_find_a_whole_model_while_versions_are_promoted(store, tmp_path):
    served = current_version(store)
    candidates = []
    for i in range(3):
        candidate = tmp_path / "work" / f"20990101-v{i}"
        shutil.copytree(store / served, candidate)
        candidates.append(candidate)
    errors, done = [], threading.Event()

    def read():
        while not done.is_set():
            try:
                folder = resolve(store)
                verify(folder, read_manifest(folder))
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(3):
        for candidate in candidates:
            promote(candidate, store)
    done.set()
    reader.join()
    assert not errors, errors[:3]
