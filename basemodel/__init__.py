"""The base model: the built-in tiny Llama, loading real checkpoints (plain, LoRA, QLoRA), saving.

Submodules: `tiny` (the tiny architecture), `loading` (load / save models), `tokenizer_train` (the
tokenizer-training script). This package file stays import-light: no torch or transformers here.
"""

from pathlib import Path

# The committed SentencePiece model of the tiny Llama, trained on the built-in world (FORMAT_VERSION 2) by
# `python -m basemodel.tokenizer_train --out basemodel/tiny_tokenizer`. Like a real base model's tokenizer
# it stays put when the fine-tuning data changes: a retrained one renumbers the pieces and sends the tiny
# SFT down another trajectory (world v3 with a retrained tokenizer: GAtt's base then followed few turn-1
# constraints, and GAtt reached 0.50 instead of 1.00 at turn 2). Retrain it when the world gains words or
# characters it spells out in bytes (tests/test_chatworld_world.py checks).
TINY_TOKENIZER_DIR = Path(__file__).resolve().parent / "tiny_tokenizer"

__all__ = ["TINY_TOKENIZER_DIR"]
