"""Batch prediction: many configs (files, folders, JSONL, hub ids) → one table, optional plots."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from service.predictor import Predictor, warning_text


def _hub_config(model_id: str) -> dict[str, Any]:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_id).to_dict()
    except OSError as exc:
        raise ValueError(
            f"{model_id!r} is neither a local file or folder nor a reachable hub model "
            f"(offline, or no such repository): {str(exc).splitlines()[0]}"
        ) from None


def iter_configs(sources: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, config) for each source: a .json file, a folder (its config.json or *.json), a .jsonl
    file (one config per line; an optional "name" key names it), or a hub id."""
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files = [path / "config.json"] if (path / "config.json").exists() else sorted(path.glob("*.json"))
            if not files:
                raise ValueError(f"folder {path} holds no config.json or .json files")
            for f in files:
                yield (f.parent.name if f.name == "config.json" else f.stem), json.loads(f.read_text())
        elif path.suffix == ".jsonl" and path.exists():
            for n, line in enumerate(path.read_text().splitlines(), start=1):
                if line.strip():
                    config = json.loads(line)
                    yield str(config.pop("name", f"{path.stem}:{n}")), config
        elif path.exists():
            try:
                yield path.stem, json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} is not valid JSON ({exc})") from None
        else:
            yield source, _hub_config(source)


def to_rows(name: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for layer in result["layers"]:
        for metric, m in layer["metrics"].items():
            row = {
                "name": name,
                "model_type": result["model_type"],
                "layer": layer["layer"],
                "metric": metric,
                **m["params"],
                **m["derived"],
            }
            row.update({f"at_step_{int(s)}": v for s, v in zip(result["steps"], m["curve"], strict=True)})
            row["n_warnings"] = len(result["warnings"])
            row["warnings"] = warning_text(result["warnings"])
            rows.append(row)
    return rows


def warning_summary(name: str, result: dict[str, Any]) -> str | None:
    """One short line per config for the terminal: how many warnings of which kind."""
    if not result["warnings"]:
        return None
    codes: dict[str, int] = {}
    for w in result["warnings"]:
        codes[w["code"]] = codes.get(w["code"], 0) + 1
    kinds = ", ".join(f"{n} {code.replace('_', ' ')}" for code, n in codes.items())
    return f"{name}: {kinds} (see the warnings column)"


def write_table(frame: pd.DataFrame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    elif out.suffix == ".csv":
        frame.to_csv(out, index=False)
    elif out.suffix == ".json":
        # json.dumps keeps every float exactly (pandas' to_json rounds to 15 digits); NaN becomes null
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        out.write_text(json.dumps(records, indent=1))
    else:
        raise ValueError(f"--out must end in .parquet, .csv or .json, got {out.name!r}")


def predict_many(predictor: Predictor, sources: list[str], steps=None, metrics=None):
    """Yields (name, result) per config; a bad config raises with its name in the message."""
    for name, config in iter_configs(sources):
        try:
            yield name, predictor.predict(config, steps, metrics)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
