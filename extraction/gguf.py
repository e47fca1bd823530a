"""GGUF files (llama.cpp, Ollama) as extraction sources: what a file holds, and loading it through transformers.

transformers dequantises GGUF weights to float on load (it needs the `gguf` and `accelerate` packages);
the quantisation type and the file's sha256 are recorded beside the metrics, since the measured
model is the dequantised one. Dequantising takes most of a minute for a 135M model, so the dequantised model
and its tokenizer are kept in the cache ($ARCHCAST_CACHE/gguf/<sha256>/, float32 safetensors) and read back
from there by later loads of the same file.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from contracts import cache_root

SUFFIX = ".gguf"


@dataclass(frozen=True)
class GgufInfo:
    path: Path
    architecture: str  # general.architecture, e.g. gemma3, llama
    quantization: str  # general.file_type, e.g. MOSTLY_Q4_K_M
    name: str  # general.name, "" when absent
    sha256: str


def is_gguf(source: str | Path) -> bool:
    return str(source).lower().endswith(SUFFIX)


def _field(reader, key: str):
    field = reader.fields.get(key)
    return None if field is None else field.parts[field.data[0]]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(path: str | Path) -> GgufInfo:
    """Read a GGUF header; raises ValueError naming the file when it is missing or not GGUF."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"GGUF file {path} does not exist")
    try:
        import gguf
    except ImportError as exc:
        raise ValueError("reading GGUF needs the `gguf` package: pip install gguf accelerate") from exc
    try:
        reader = gguf.GGUFReader(path)
    except Exception as exc:  # the reader raises assorted errors on a corrupt header
        raise ValueError(f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc})") from exc
    arch = _field(reader, "general.architecture")
    file_type = _field(reader, "general.file_type")
    name = _field(reader, "general.name")
    try:
        quantization = gguf.LlamaFileType(int(file_type[0])).name if file_type is not None else "unknown"
    except ValueError:
        quantization = f"file_type {int(file_type[0])}"
    return GgufInfo(
        path=path,
        architecture=bytes(arch).decode() if arch is not None else "unknown",
        quantization=quantization,
        name=bytes(name).decode() if name is not None else "",
        sha256=sha256_file(path),
    )


def supported_architectures() -> list[str]:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return sorted(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer"))


def check_loadable(info: GgufInfo) -> None:
    known = supported_architectures()
    if info.architecture not in known:
        raise ValueError(
            f"{info.path}: transformers cannot load GGUF architecture {info.architecture!r}; "
            f"it reads {', '.join(known)}"
        )


def load(info: GgufInfo, dtype):
    """(model, tokenizer) from a GGUF file, dequantised to `dtype` (through the cache: dequantised_folder)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_loadable(info)
    folder = dequantised_folder(info)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    return model.eval(), tokenizer


def dequantised_folder(info: GgufInfo, cache: Path | None = None) -> Path:
    """The file's model and tokenizer as an ordinary float32 transformers folder, written on first use. Float32
    keeps every dequantised value exactly, so a load from it equals a load from the file (test)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = (cache or cache_root()) / "gguf" / info.sha256
    if (target / COMPLETE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    folder, name = str(info.path.parent), info.path.name
    part = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{info.sha256[:12]}-"))
    try:
        AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(part)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        # the weights are plain float32 once dequantised: saved as an ordinary model, not as a "gguf-quantised" one
        # (which transformers refuses to save)
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(part)
        (part / COMPLETE).write_text(info.path.name)
        if not (target / COMPLETE).exists():  # another command may have finished the same file meanwhile
            shutil.rmtree(target, ignore_errors=True)  # a copy without COMPLETE was cut short
            part.rename(target)  # whole or absent
    finally:
        shutil.rmtree(part, ignore_errors=True)
    return target


COMPLETE = "archcast_dequantised"  # written last: the folder holds the whole model
