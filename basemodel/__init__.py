"""The base model: the built-in tiny Llama, loading real checkpoints (plain, LoRA, QLoRA), saving.

Submodules: `tiny` (the tiny architecture), `loading` (load / save models), `tokenizer_train` (the
tokenizer-training script). This package file stays import-light: no torch or transformers here.
"""

from pathlib import Path

# The committed SentencePiece model of the tiny Llama, trained on the built-in world by
# `python -m basemodel.tokenizer_train --out basemodel/tiny_tokenizer`.
TINY_TOKENIZER_DIR = Path(__file__).resolve().parent / "tiny_tokenizer"

__all__ = ["TINY_TOKENIZER_DIR"]
