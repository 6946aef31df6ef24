import random

import pytest

from reward.batching import epochs_order, length_grouped_order


def _batches(order, size):
    return [order[i : i + size] for i in range(0, len(order), size)]


def _padded_tokens(order, lengths, size):
    return sum(max(lengths[i] for i in b) * len(b) for b in _batches(order, size))


def test_every_row_once_and_the_short_batch_last():
    lengths = [random.Random(i).randint(5, 200) for i in range(203)]
    order = length_grouped_order(lengths, 16, random.Random(0), bin_width=16, window_batches=4)
    assert sorted(order) == list(range(203))
    assert [len(b) for b in _batches(order, 16)][-1] == 203 % 16


def test_batches_hold_one_length_bin_except_where_a_window_changes_bin():
    rng = random.Random(1)
    lengths = [5] * 32 + [50] * 32
    rng.shuffle(lengths)
    order = length_grouped_order(lengths, 4, random.Random(0), bin_width=16, window_batches=8)
    mixed = [b for b in _batches(order, 4) if len({lengths[i] // 16 for i in b}) > 1]
    assert len(mixed) <= 2  # at most one straddling batch per window of 8 batches (64 rows / 32)
    shuffled = length_grouped_order(lengths, 4, random.Random(0), bin_width=0)
    assert _padded_tokens(order, lengths, 4) < 0.75 * _padded_tokens(shuffled, lengths, 4)


def test_rows_of_one_bin_keep_their_random_order():
    # Equal lengths: the same batches as a plain shuffle, so a batch still mixes whatever the rows are.
    lengths = [30] * 64
    grouped = length_grouped_order(lengths, 8, random.Random(3), bin_width=16)
    plain = length_grouped_order(lengths, 8, random.Random(3), bin_width=0)
    assert sorted(map(sorted, _batches(grouped, 8))) == sorted(map(sorted, _batches(plain, 8)))
    assert grouped != sorted(grouped)


def test_bin_width_zero_is_a_seeded_shuffle():
    lengths = list(range(50))
    a = length_grouped_order(lengths, 8, random.Random(7), bin_width=0)
    b = length_grouped_order(lengths, 8, random.Random(7), bin_width=0)
    assert a == b and sorted(a) == lengths and a != lengths


def test_a_negative_bin_width_or_empty_batch_is_refused_by_name():
    with pytest.raises(ValueError, match="train.length_bin_width"):
        length_grouped_order([1, 2, 3], 2, random.Random(0), bin_width=-16)
    with pytest.raises(ValueError, match="batch_size"):
        length_grouped_order([1, 2, 3], 0, random.Random(0))


def test_epochs_are_whole_passes_each_in_its_own_order_and_a_fraction_is_a_prefix():
    lengths = [random.Random(i).randint(5, 80) for i in range(40)]
    order = epochs_order(lengths, 2.5, 8, random.Random(0), bin_width=16)
    assert len(order) == 100
    first, second, half = order[:40], order[40:80], order[80:]
    assert sorted(first) == sorted(second) == list(range(40)) and first != second
    assert len(half) == 20 and len(set(half)) == 20
    assert epochs_order(lengths, 2.5, 8, random.Random(0), bin_width=16) == order  # seeded: resumable
    assert epochs_order([], 2.0, 8, random.Random(0)) == []
    with pytest.raises(ValueError, match="train.epochs"):
        epochs_order(lengths, 0, 8, random.Random(0))
