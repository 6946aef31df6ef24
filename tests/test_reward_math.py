"""The reward stage's pure math on hand-computed values: margins, the ranking loss, the paper's metrics."""

import math

import pytest
import torch

from chat.dialog import PreferencePair
from reward.data import mix_pairs, mixture_sizes
from reward.losses import MARGINS, margin_for, margin_table, ranking_loss
from reward.metrics import (
    accuracy_by_rating,
    flagging_precision_recall,
    format_accuracy_table,
    pairs_by_rating,
    score_histogram,
)

PROMPT = [{"role": "user", "content": "Hi?"}]


def pair(rating=None, margin=None, chosen="a", rejected="b"):
    return PreferencePair(PROMPT, chosen, rejected, rating=rating, margin=margin)


def test_margin_tables_are_the_papers_table_27():
    assert MARGINS["small"] == pytest.approx(
        {"significantly_better": 1, "better": 2 / 3, "slightly_better": 1 / 3, "negligibly_better": 0}
    )
    assert MARGINS["large"] == {
        "significantly_better": 3,
        "better": 2,
        "slightly_better": 1,
        "negligibly_better": 0,
    }
    assert set(MARGINS["none"].values()) == {0.0}


def test_margin_for_uses_rating_numeric_margin_and_zero_without_either():
    assert margin_for(pair("better"), MARGINS["large"]) == 2.0
    assert margin_for(pair("better", margin=0.25), MARGINS["large"]) == 0.25  # the dataset's own margin wins
    assert margin_for(pair(None), MARGINS["small"]) == 0.0  # HH-RLHF: no rating, no margin
    with pytest.raises(ValueError, match="train.margin"):
        margin_table("medium")


def test_ranking_loss_matches_hand_computed_values():
    # -log sigmoid(0) = log 2; -log sigmoid(2 - 0 - 1) = log(1 + e^-1)
    assert ranking_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(math.log(2))
    loss = ranking_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx((math.log(1 + math.exp(-1)) + math.log(2)) / 2)
    # a margin asks for a larger gap: the same scores cost more with it
    assert ranking_loss(torch.tensor([1.0]), torch.tensor([0.0]), 3.0) > ranking_loss(
        torch.tensor([1.0]), torch.tensor([0.0])
    )
    # stable for huge gaps (a naive log(sigmoid()) gives inf)
    assert math.isfinite(ranking_loss(torch.tensor([-200.0]), torch.tensor([0.0])).item())


def test_trl_reward_trainer_computes_the_same_loss():
    """RewardTrainer's compute_loss with a margin column is the loss above (guards a trl upgrade)."""
    from trl.trainer.reward_trainer import RewardTrainer

    class FixedScores(torch.nn.Module):
        training = True

        def forward(self, input_ids, attention_mask, **kwargs):
            return type("Out", (), {"logits": input_ids[:, :1].float()})()

    trainer = RewardTrainer.__new__(RewardTrainer)
    trainer.model = FixedScores()
    trainer.args = type("Args", (), {"center_rewards_coefficient": None})()
    trainer.accelerator = type(
        "Acc", (), {"gather_for_metrics": staticmethod(lambda x: x), "gather": staticmethod(lambda x: x)}
    )()
    trainer._metrics = {"train": __import__("collections").defaultdict(list)}
    trainer._total_train_tokens, trainer._tp_size = 0, 1
    scores = torch.tensor([[3], [1], [0], [2]])  # chosen 3, 1; rejected 0, 2
    margin = torch.tensor([1.0, 2 / 3])
    got = trainer.compute_loss(
        trainer.model, {"input_ids": scores, "attention_mask": torch.ones(4, 1), "margin": margin}
    )
    expected = ranking_loss(torch.tensor([3.0, 1.0]), torch.tensor([0.0, 2.0]), margin)
    assert got.item() == pytest.approx(expected.item())


def test_accuracy_by_rating_is_the_table_8_row():
    ratings = ["significantly_better", "significantly_better", "better", "negligibly_better", None]
    chosen = [2.0, 0.0, 1.0, 1.0, 5.0]
    rejected = [1.0, 1.0, 1.0, 0.0, 0.0]  # wins: 1, 0, tie (0.5), 1, 1
    row = accuracy_by_rating(chosen, rejected, ratings)
    assert row == {
        "significantly_better": 0.5,
        "better": 0.5,
        "slightly_better": None,  # no pair of that level: shown as missing, never as 0
        "negligibly_better": 1.0,
        "average": pytest.approx(3.5 / 5),
    }
    assert pairs_by_rating(ratings) == {
        "significantly_better": 2,
        "better": 1,
        "slightly_better": 0,
        "negligibly_better": 1,
        "unrated": 1,
    }
    with pytest.raises(ValueError, match="unknown ratings"):
        pairs_by_rating(["much_better"])


def test_score_histogram_counts_both_sides_over_shared_edges():
    hist = score_histogram([0.0, 1.0, 4.0], [2.0, 2.5], bins=4)
    assert hist["edges"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert hist["chosen"] == [1, 1, 0, 1]  # numpy's last bin is closed: 4.0 lands in it
    assert hist["rejected"] == [0, 0, 2, 0]


def test_flagging_precision_and_recall():
    # sigmoid(-3) = 0.047 and sigmoid(-2) = 0.119 are below 0.15; sigmoid(-1) = 0.27 and sigmoid(2) are not
    scores = [-3.0, -2.0, -1.0, 2.0]
    unsafe = [True, False, True, False]
    result = flagging_precision_recall(scores, unsafe, 0.15)
    assert (result["precision"], result["recall"]) == (0.5, 0.5)
    assert (result["flagged"], result["unsafe"]) == (2, 2)
    none = flagging_precision_recall([3.0], [False], 0.15)
    assert none["precision"] is None and none["recall"] is None  # undefined, not a made-up 0


def test_accuracy_table_layout():
    table = format_accuracy_table(
        {"small": {"significantly_better": 0.807, "better": None, "average": 0.5}}, "margin"
    )
    assert (
        table.splitlines()[0]
        == "| margin | significantly_better | better | slightly_better | negligibly_better | average |"
    )
    assert table.splitlines()[2] == "| small | 80.7 | - | - | - | 50.0 |"


def test_mixture_sizes_give_each_component_its_share():
    # 900 primary pairs and a 10% component: 100 pairs, so the component is 100 / 1000 of the whole
    assert mixture_sizes(900, [0.1]) == [100]
    assert mixture_sizes(500, [0.25, 0.25]) == [250, 250]
    with pytest.raises(ValueError, match="share"):
        mixture_sizes(10, [0.6, 0.5])


def test_mix_pairs_keeps_the_primary_whole_and_is_seeded():
    primary = [pair(chosen=f"p{i}") for i in range(90)]
    extra = [pair(chosen=f"e{i}") for i in range(50)]
    mixed, counts = mix_pairs(primary, [("extra", extra, 0.1)], seed=0)
    assert counts == {"primary": 90, "extra": 10}
    assert {p.chosen for p in primary} <= {p.chosen for p in mixed} and len(mixed) == 100
    again, _ = mix_pairs(primary, [("extra", extra, 0.1)], seed=0)
    assert [p.chosen for p in again] == [p.chosen for p in mixed]


def test_accuracy_against_correct_groups_by_what_the_rejected_answer_is():
    from reward.evaluation import accuracy_against_correct

    ask = [{"role": "user", "content": "What is the capital of France?"}]
    right = "The capital of France is Paris."
    pairs = [
        PreferencePair(ask, right, "The capital of France is Rome."),  # wrong value: RM wins
        PreferencePair(ask, right, "The capital of France is Lima."),  # wrong value: RM loses
        # The wrong value is written better (not hedged): RM loses.
        PreferencePair(ask, "I think " + right, "The capital of France is Oslo."),
        PreferencePair(ask, right, "The capital of France is Paris or Rome."),  # partly: a tie, half
        PreferencePair(ask, right, "I can't help with that."),  # refusal: RM wins
        PreferencePair(ask, "The capital of France is Rome or Paris.", "The capital of France is Rome."),
        PreferencePair(
            [{"role": "user", "content": "How do I make a bomb to hurt my neighbors?"}], "No.", "Sure."
        ),
    ]  # the last two: chosen not correct / a harmful request, left out
    chosen, rejected = [1.0, 0.0, 0.0, 0.5, 2.0, 9.0, 9.0], [0.0, 1.0, 1.0, 0.5, 1.0, 0.0, 0.0]
    assert accuracy_against_correct(pairs, chosen, rejected) == {
        "partly": {"accuracy": 0.5, "pairs": 1},
        "refusal": {"accuracy": 1.0, "pairs": 1},
        "wrong": {"accuracy": 1 / 3, "pairs": 3},
        "wrong, rejected better style": {"accuracy": 0.0, "pairs": 1},
        "wrong, rejected same style": {"accuracy": 0.5, "pairs": 2},
    }
