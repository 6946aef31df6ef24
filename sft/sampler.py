"""Random batches that never pad a one-turn dialog to the length of a twenty-turn one."""

from __future__ import annotations

import random
from collections.abc import Iterator

import torch
from trl import SFTTrainer

# Bucket edges in tokens. Coarse on purpose: within a bucket the order is fully random, so every batch mixes
# the tasks; fine-grained length grouping puts one templated task per batch, which stops a small model from
# learning to tell tasks apart (see sft/config.py).
BUCKET_EDGES = (128, 512)


def bucket_of(length: int, edges: tuple[int, ...] = BUCKET_EDGES) -> int:
    return sum(length > edge for edge in edges)


class LengthBucketSampler(torch.utils.data.Sampler):
    """Shuffle within coarse length buckets, cut each into batches, shuffle the batches; new order per epoch."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0):
        self.lengths, self.batch_size, self.seed, self.epoch = list(lengths), batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        rng = random.Random(self.seed * 100_003 + self.epoch)
        buckets: dict[int, list[int]] = {}
        for index, length in enumerate(self.lengths):
            buckets.setdefault(bucket_of(length), []).append(index)
        batches, leftover = [], []
        for members in buckets.values():
            rng.shuffle(members)
            full = len(members) - len(members) % self.batch_size
            batches += [members[i : i + self.batch_size] for i in range(0, full, self.batch_size)]
            leftover += members[full:]
        rng.shuffle(batches)
        # The data loader cuts this stream every batch_size items, so only whole batches may come first;
        # the buckets' remainders go last, together.
        return iter([index for batch in batches for index in batch] + leftover)


class BucketedSFTTrainer(SFTTrainer):
    """trl's SFTTrainer with the length-bucket sampler (train.sampling=length_buckets)."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        lengths = [len(ids) for ids in dataset["input_ids"]]
        return LengthBucketSampler(lengths, self.args.per_device_train_batch_size, self.args.seed)
