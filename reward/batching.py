"""The order reward-model training rows are batched in: random, with batches of similar length.

A batch is padded to its longest sequence; with the built-in world's 0-3 earlier turns a random batch of
16 pairs pads to about twice the tokens it holds. Sorting a whole epoch by length would fix that but puts
one task template per batch, and a small model then stops learning to tell the tasks apart. So lengths are
only coarsely grouped: rows are shuffled, each window of a few batches is sorted by length *bin*
(ties stay in random order, so a batch still mixes tasks), cut into batches, and the batches shuffled.
"""

from __future__ import annotations

import random


def length_grouped_order(
    lengths: list[int], batch_size: int, rng: random.Random, bin_width: int = 16, window_batches: int = 8
) -> list[int]:
    """A permutation of range(len(lengths)): batch_size-sized runs of similar length, in random order.

    bin_width 0 returns a plain shuffle. Every index appears exactly once; only the last batch may be short.
    """
    if bin_width < 0:
        raise ValueError(f"train.length_bin_width must be >= 0 (0: random batches), got {bin_width}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if bin_width == 0:
        return order
    window = batch_size * window_batches
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i] // bin_width)
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    tail = batches.pop() if batches and len(batches[-1]) < batch_size else None
    rng.shuffle(batches)  # no trend from short to long within an epoch
    if tail:
        batches.append(tail)
    return [i for batch in batches for i in batch]


def epochs_order(
    lengths: list[int], epochs: float, batch_size: int, rng: random.Random, bin_width: int = 16
) -> list[int]:
    """Indices for `epochs` passes over the rows, each pass in its own length-grouped order; a fractional
    last pass is the first part of one. Materialised so a curriculum can precede it in one sequential run."""
    if epochs <= 0:
        raise ValueError(f"train.epochs must be > 0, got {epochs}")
    total = max(1, round(epochs * len(lengths))) if lengths else 0
    order: list[int] = []
    while len(order) < total:
        order += length_grouped_order(lengths, batch_size, rng, bin_width)
    return order[:total]
