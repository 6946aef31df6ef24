"""chatworld: a small deterministic chat world with oracle judges, the toolkit's built-in data.

Generate it with `python -m chatworld --out DIR`; stages use it with `data=builtin`.
"""

from chatworld.world import corpus_text, ensure_world, generate_world, write_world

__all__ = ["corpus_text", "ensure_world", "generate_world", "write_world"]
