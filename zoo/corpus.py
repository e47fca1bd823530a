"""The offline corpus: English prose of the Python 3.11 docs (Debian's python3.11-doc, pinned).

The package's reStructuredText sources are split by file into train and probe
text (every 20th file, by sorted path, is probe), so the probe never appears in
training. A small slice of both is committed under data/ for tests and the smoke tier.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "python3.11-doc"
VERSION = "3.11.2-6+deb12u8"
PROBE_EVERY = 20
REPO_DATA = Path(__file__).resolve().parents[1] / "data"
SLICE_TRAIN = REPO_DATA / "corpus" / "train_slice.txt"
PROBE_TEXT = REPO_DATA / "probe" / "probe.txt"


@dataclass(frozen=True)
class Corpus:
    train: Path
    probe: Path
    sha256: str  # of the train text
    source: str


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def split_sources(root: Path) -> tuple[str, str]:
    files = sorted(root.rglob("*.rst.txt"))
    if not files:
        raise ValueError(f"no .rst.txt sources under {root}")
    train = [f for i, f in enumerate(files) if i % PROBE_EVERY]
    probe = [f for i, f in enumerate(files) if not i % PROBE_EVERY]
    read = lambda fs: "\n\n".join(f.read_text(encoding="utf-8", errors="replace") for f in fs)  # noqa: E731
    return read(train), read(probe)


def unpacked(package: str, version: str, tmp: Path, hint: str = "") -> Path:
    """The pinned Debian package downloaded into tmp and unpacked there; needs apt-get and dpkg-deb."""
    try:
        subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=tmp, check=True, capture_output=True)
        deb = next(tmp.glob("*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "x")], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError, StopIteration) as exc:
        raise RuntimeError(f"could not fetch {package}={version} with apt-get ({exc}){hint}") from exc
    return tmp / "x"


def fetch(cache: Path) -> Corpus:
    """Download the pinned Debian package (once) and split it; needs apt-get and dpkg-deb."""
    cache.mkdir(parents=True, exist_ok=True)
    train, probe = cache / "train.txt", cache / "probe.txt"
    if not train.exists():
        with tempfile.TemporaryDirectory() as tmp:
            root = unpacked(PACKAGE, VERSION, Path(tmp), "; the smoke tier needs no download")
            train_text, probe_text = split_sources(root)
        probe.write_text(probe_text)
        train.write_text(train_text)
    return Corpus(train, probe, sha256_of(train), f"debian:{PACKAGE}={VERSION}")


# Fine-tuning text of another kind than the corpus: the Debian FAQ, question-and-answer formatted prose about an
# operating system (the finetune tier continues pretrained runs on it).
FINETUNE_PACKAGE = "debian-faq"
FINETUNE_VERSION = "11.1"
FINETUNE_FILE = "usr/share/doc/debian/FAQ/debian-faq.en.txt.gz"


def fetch_finetune(cache: Path) -> tuple[Path, str, str]:
    """(text file, sha256, source) of the fine-tuning text: the pinned Debian package, downloaded once."""
    import gzip

    cache.mkdir(parents=True, exist_ok=True)
    text = cache / "finetune.txt"
    if not text.exists():
        with tempfile.TemporaryDirectory() as tmp:
            root = unpacked(FINETUNE_PACKAGE, FINETUNE_VERSION, Path(tmp))
            text.write_bytes(gzip.decompress((root / FINETUNE_FILE).read_bytes()))
    return text, sha256_of(text), f"debian:{FINETUNE_PACKAGE}={FINETUNE_VERSION} ({FINETUNE_FILE})"


def committed_slice() -> Corpus:
    """The slice kept in the repo: enough for tests and the smoke tier."""
    return Corpus(SLICE_TRAIN, PROBE_TEXT, sha256_of(SLICE_TRAIN), f"debian:{PACKAGE}={VERSION} (committed slice)")
