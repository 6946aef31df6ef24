"""Train a small SentencePiece BPE tokenizer with the same options as Llama 2's.

The tiny base model needs a tokenizer that behaves like Llama's (byte fallback, split digits, identity
normalization, dummy prefix, <unk>/<s>/</s> at 0/1/2, no pad) so that every code path exercised on the tiny
model is the one a real Llama checkpoint takes. Training is deterministic: one thread, the corpus in the
given order, no sentence sampling or shuffling, so the same corpus gives a byte-identical model file.

    python -m basemodel.tokenizer_train --out DIR [--vocab-size 3000]
"""

from __future__ import annotations

import argparse
import io
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import sentencepiece as spm

log = logging.getLogger(__name__)

DEFAULT_VOCAB_SIZE = 3000
# SentencePiece drops longer sentences with only a log line; we count and report them ourselves.
MAX_SENTENCE_BYTES = 4192  # Llama 2's own trainer setting

# Options copied from the trainer_spec / normalizer_spec stored inside Llama 2's tokenizer.model, except the
# ones that would make training non-deterministic (threads, shuffling, sampling).
LLAMA_TRAINER_OPTIONS = {
    "model_type": "bpe",
    "byte_fallback": True,
    "split_digits": True,
    "split_by_unicode_script": True,
    "split_by_whitespace": True,
    "split_by_number": True,
    "allow_whitespace_only_pieces": True,
    "max_sentencepiece_length": 16,
    "character_coverage": 0.99995,
    "normalization_rule_name": "identity",
    "remove_extra_whitespaces": False,
    "add_dummy_prefix": True,
    "unk_id": 0,
    "bos_id": 1,
    "eos_id": 2,
    "pad_id": -1,
    "unk_piece": "<unk>",
    "bos_piece": "<s>",
    "eos_piece": "</s>",
    "unk_surface": " \u2047 ",
    "vocabulary_output_piece_score": True,
    "hard_vocab_limit": True,
    "max_sentence_length": MAX_SENTENCE_BYTES,
    # Determinism: a single thread, every sentence used, in the order given.
    "num_threads": 1,
    "input_sentence_size": 0,
    "shuffle_input_sentence": False,
    "minloglevel": 1,  # warnings only: the per-merge progress lines drown everything else
}


def usable_sentences(corpus: Iterable[str]) -> Iterator[str]:
    """Yield the corpus strings SentencePiece will accept, logging a count of those it would drop silently."""
    skipped_empty = skipped_long = 0
    for index, text in enumerate(corpus):
        if not isinstance(text, str):
            raise TypeError(f"corpus item {index}: expected a string, got {type(text).__name__}")
        if not text:
            skipped_empty += 1
        elif len(text.encode("utf-8")) > MAX_SENTENCE_BYTES:
            skipped_long += 1
        else:
            yield text
    if skipped_empty or skipped_long:
        log.warning(
            "tokenizer corpus: skipped %d empty and %d over-long (> %d bytes) strings",
            skipped_empty,
            skipped_long,
            MAX_SENTENCE_BYTES,
        )


def train_tokenizer_bytes(
    corpus: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE, seed: int = 0
) -> bytes:
    """Train on `corpus` (strings, used in order) and return the serialized tokenizer.model."""
    if vocab_size <= 259:
        # 3 special pieces + 256 byte-fallback pieces leave no room for a single learned piece.
        raise ValueError(f"vocab_size must be > 259 (specials + 256 byte pieces), got {vocab_size}")
    spm.set_random_generator_seed(seed)
    model = io.BytesIO()
    corpus_errors: list[Exception] = []

    def sentences() -> Iterator[str]:
        # SentencePiece turns an exception raised by the iterator into an opaque RuntimeError: keep ours.
        try:
            yield from usable_sentences(corpus)
        except Exception as error:
            corpus_errors.append(error)
            raise

    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=sentences(),
            model_writer=model,
            vocab_size=vocab_size,
            **LLAMA_TRAINER_OPTIONS,
        )
    except RuntimeError as error:
        if corpus_errors:
            raise corpus_errors[0] from None
        # e.g. "Vocabulary size too high (3000). Please set it to a value <= 1234." on a small corpus.
        raise ValueError(f"tokenizer training failed with vocab_size={vocab_size}: {error}") from error
    return model.getvalue()


def train_tokenizer(corpus: Iterable[str], out_dir: str | Path, vocab_size: int = DEFAULT_VOCAB_SIZE) -> Path:
    """Train and write `out_dir/tokenizer.model`; return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "tokenizer.model"
    path.write_bytes(train_tokenizer_bytes(corpus, vocab_size))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory to write tokenizer.model into")
    parser.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE)
    parser.add_argument("--seed", type=int, default=0, help="seed of the built-in chat world corpus")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Imported here so that training from a custom corpus does not need the world generator.
    from chatworld import corpus_text

    path = train_tokenizer(corpus_text(seed=args.seed), args.out, args.vocab_size)
    processor = spm.SentencePieceProcessor(model_file=str(path))
    log.info("wrote %s (%d pieces)", path, processor.get_piece_size())


if __name__ == "__main__":
    main()
