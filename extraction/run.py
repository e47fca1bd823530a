"""Run extraction over a series of units: resumable, shardable, failures reported not fatal."""

from __future__ import annotations

import json
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import transformers
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from extraction.measure import Settings, measure_unit
from extraction.probe import probe_hash
from extraction.store import merge, unit_path, write_json, write_unit
from extraction.units import Unit


@dataclass
class Summary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def run(
    units: list[Unit],
    probe: Path,
    out_dir: Path,
    settings: Settings,
    overwrite: bool = False,
    console: Console | None = None,
) -> Summary:
    """Measure every unit not yet finished under out_dir, then merge all finished units."""
    console = console or Console(stderr=True)
    out_dir = Path(out_dir)
    summary = Summary()
    write_manifest(out_dir, units, probe, settings)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        all_units = progress.add_task("units", total=len(units))
        batches = progress.add_task("batches", total=None, visible=False)
        for unit in units:
            if unit_path(out_dir, unit.key).exists() and not overwrite:
                summary.skipped.append(unit.key)
                progress.advance(all_units)
                continue
            progress.update(all_units, description=f"units ({unit.model_id} @ {unit.revision})")
            progress.reset(batches, visible=True)
            try:
                frame = measure_unit(
                    unit,
                    probe,
                    settings,
                    on_batch=lambda: progress.advance(batches),
                    on_start=lambda n: progress.update(batches, total=n),
                )
                write_unit(out_dir, unit.key, frame)
                summary.done.append(unit.key)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # a broken unit is reported; the series goes on
                summary.failed[unit.key] = f"{type(exc).__name__}: {exc}"
                (out_dir / "failures").mkdir(parents=True, exist_ok=True)
                (out_dir / "failures" / f"{unit.key}.txt").write_text(traceback.format_exc())
            progress.advance(all_units)
    if summary.done or summary.skipped:
        merge(out_dir)
    report(summary, out_dir, console)
    return summary


def write_manifest(out_dir: Path, units: list[Unit], probe: Path, settings: Settings) -> None:
    """Record settings and units; a folder measured with other settings is refused, not mixed."""
    path = out_dir / "manifest.json"
    header = {"settings": asdict(settings), "probe": str(probe), "probe_sha256": probe_hash(probe)}
    known: dict[str, dict] = {}
    if path.exists():
        old = json.loads(path.read_text())
        if old["settings"] != header["settings"] or old["probe_sha256"] != header["probe_sha256"]:
            raise ValueError(
                f"{out_dir} holds units measured with other settings or another probe ({old['settings']}, "
                f"probe {old['probe_sha256'][:12]}); use another --out folder"
            )
        known = {Unit(u["model_id"], u["revision"], u["step"], u["path"]).key: u for u in old["units"]}
    known.update({u.key: asdict(u) for u in units})
    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    write_json(path, {**header, **versions, "units": [known[k] for k in sorted(known)]})


def report(summary: Summary, out_dir: Path, console: Console) -> None:
    console.print(
        f"[green]done {len(summary.done)}[/], skipped (already finished) {len(summary.skipped)}, "
        f"[red]failed {len(summary.failed)}[/]"
    )
    for key, reason in summary.failed.items():
        console.print(f"  [red]✗[/] {key}: {reason.splitlines()[0][:300]}")
    if summary.done or summary.skipped:
        console.print(f"metrics: {out_dir / 'metrics.parquet'}")
