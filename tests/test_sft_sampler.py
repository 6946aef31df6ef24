"""The length-bucket sampler: random batches, mixed tasks, no short dialog padded to a long one."""

from sft.sampler import LengthBucketSampler, bucket_of


def test_bucket_edges():
    assert [bucket_of(n) for n in (1, 128, 129, 512, 513, 5000)] == [0, 0, 1, 1, 2, 2]


def batches(sampler, size):
    order = list(sampler)
    return [order[i : i + size] for i in range(0, len(order), size)]


def test_every_index_once_per_epoch_and_batches_stay_in_one_bucket():
    lengths = [40] * 50 + [300] * 13 + [900] * 7
    sampler = LengthBucketSampler(lengths, batch_size=8, seed=0)
    order = list(sampler)
    assert sorted(order) == list(range(70))
    whole = batches(sampler, 8)[: 50 // 8 + 13 // 8 + 7 // 8]  # the buckets' remainders come last
    for batch in whole:
        assert len({bucket_of(lengths[i]) for i in batch}) == 1


def test_short_items_of_different_lengths_share_batches():
    # Two "tasks" whose templates differ in length but fall in one bucket must be mixed within batches.
    lengths = [40, 60] * 40
    mixed = [len({lengths[i] for i in b}) == 2 for b in batches(LengthBucketSampler(lengths, 16, seed=1), 16)]
    assert sum(mixed) >= 4, "a length-sorted sampler would give single-length batches"


def test_order_is_seeded_and_changes_with_the_epoch():
    lengths = [40] * 64
    a, b = LengthBucketSampler(lengths, 8, seed=3), LengthBucketSampler(lengths, 8, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
