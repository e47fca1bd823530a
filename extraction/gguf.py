"""GGUF files (llama.cpp, Ollama) as extraction sources: what a file holds, and loading it through transformers.

transformers dequantises GGUF weights to float on load (it needs the `gguf` and `accelerate` packages);
the quantisation type and the file's sha256 are recorded beside the metrics, since the measured
model is the dequantised one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

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
    """(model, tokenizer) from a GGUF file, dequantised to `dtype`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_loadable(info)
    folder, name = str(info.path.parent), info.path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
    return model.eval(), tokenizer
