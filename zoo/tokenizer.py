"""Byte-level BPE trained on the corpus, saved so that AutoTokenizer loads it like a hub tokenizer."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

BOS, EOS = "<|bos|>", "<|endoftext|>"


def train_tokenizer(text_path: Path, vocab_size: int = 4096, max_chars: int = 4_000_000) -> PreTrainedTokenizerFast:
    """A byte-level BPE of `vocab_size` with BOS and EOS, from the first `max_chars` of the text."""
    text = Path(text_path).read_text(encoding="utf-8", errors="replace")[:max_chars]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    chunks = (text[i : i + 10_000] for i in range(0, len(text), 10_000))
    tok.train_from_iterator(chunks, trainer=trainer, length=len(text) // 10_000 + 1)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS)


def load_or_train(folder: Path, text_path: Path, vocab_size: int) -> PreTrainedTokenizerFast:
    folder = Path(folder)
    if (folder / "tokenizer.json").exists():
        return PreTrainedTokenizerFast.from_pretrained(folder)
    tokenizer = train_tokenizer(text_path, vocab_size)
    tokenizer.save_pretrained(folder)
    return tokenizer
