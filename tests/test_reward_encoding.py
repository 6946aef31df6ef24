"""Encoding pairs for the reward model (truncation, skips) and batched scoring (padding invariance, EOS)."""

import logging
from pathlib import Path

import pytest
import torch

from chat.dialog import PreferencePair
from chat.format import ChatEncoder
from reward.encoding import AnswerTooLong, encode_pair, encode_pairs, fit_prompt, split_prompt_answer
from reward.losses import MARGINS
from reward.scoring import RewardScorer, pad_right, reward_pad_id

SHARED = Path(__file__).resolve().parents[2] / "shared"
LLAMA2_TOKENIZER = SHARED / "fixtures" / "llama2-tokenizer" / "tokenizer.model"

PROMPT = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
]


@pytest.fixture(scope="module")
def encoder():
    if not LLAMA2_TOKENIZER.is_file():
        pytest.skip(f"the Llama 2 tokenizer fixture is not at {LLAMA2_TOKENIZER}")
    return ChatEncoder.from_path(LLAMA2_TOKENIZER)


def test_fit_prompt_cuts_from_the_left_and_keeps_bos():
    prompt = [1, 10, 11, 12, 13]
    assert fit_prompt(prompt, longest_answer=3, max_length=8) == prompt  # fits as is
    assert fit_prompt(prompt, longest_answer=5, max_length=8) == [1, 12, 13]
    assert fit_prompt(prompt, longest_answer=7, max_length=8) == [1]
    with pytest.raises(AnswerTooLong):
        fit_prompt(prompt, longest_answer=8, max_length=8)  # BOS + the answer would be 9


def test_a_pair_is_the_llama2_training_encoding_of_each_side(encoder):
    pair = PreferencePair(PROMPT, "Rome.", "I think it is Milan, but I am not sure.")
    chosen, rejected, truncated = encode_pair(encoder, pair, max_length=4096)
    assert not truncated
    assert (
        chosen
        == encoder.encode_for_training([*PROMPT, {"role": "assistant", "content": "Rome."}])["input_ids"]
    )
    assert chosen[0] == encoder.bos_id and chosen[-1] == encoder.eos_id and rejected[-1] == encoder.eos_id
    assert chosen[:-4] == rejected[: len(chosen) - 4]  # same prompt before the answers


def test_long_pairs_lose_prompt_tokens_from_the_left_and_keep_both_answers_whole(encoder):
    pair = PreferencePair(PROMPT, "Rome.", "I think it is Milan, but I am not sure.")
    prompt_ids, chosen_answer = split_prompt_answer(encoder, PROMPT, pair.chosen)
    _, rejected_answer = split_prompt_answer(encoder, PROMPT, pair.rejected)
    max_length = len(rejected_answer) + 6  # room for BOS + the last 5 prompt tokens
    chosen, rejected, truncated = encode_pair(encoder, pair, max_length)
    assert truncated
    assert len(rejected) == max_length and len(chosen) < max_length
    assert (
        rejected[-len(rejected_answer) :] == rejected_answer
        and chosen[-len(chosen_answer) :] == chosen_answer
    )
    kept_prompt = [encoder.bos_id, *prompt_ids[-5:]]  # BOS, then the end of the prompt ("... [/INST]")
    assert chosen[:6] == kept_prompt and rejected[:6] == kept_prompt
    assert encoder.decode(prompt_ids[-5:]).endswith("[/INST]")


def test_pairs_whose_answers_do_not_fit_are_skipped_counted_and_logged(encoder, caplog):
    short = PreferencePair(PROMPT, "Rome.", "Milan.", rating="better")
    long = PreferencePair(PROMPT, "Rome. " * 40, "Milan.", rating="better", meta={"origin": "pairs.jsonl:7"})
    with caplog.at_level(logging.WARNING):
        rows, report = encode_pairs(encoder, [short, long, short], 60, MARGINS["large"], "train")
    assert len(rows) == 2 and report.kept == 2 and report.skipped_answer_too_long == 1
    assert rows[0]["margin"] == 2.0 and rows[0]["rating"] == "better"
    assert "skipped 1 of 3 pairs" in caplog.text and "pairs.jsonl:7" in caplog.text


def tiny_reward_model(vocab_size: int, pad_id: int):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=1,
        pad_token_id=pad_id,
    )
    return LlamaForSequenceClassification(config).eval()


def test_pad_is_never_eos_so_the_score_is_read_at_the_eos(encoder):
    pad = reward_pad_id(encoder, unk_id=0)
    assert encoder.pad_id == encoder.eos_id and pad == 0  # Llama 2 pads with EOS; reward batches use <unk>
    model = tiny_reward_model(32000, pad)
    ids = encoder.encode_for_training([*PROMPT, {"role": "assistant", "content": "Rome."}])["input_ids"]
    with torch.no_grad():
        hidden = model.model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1]
        expected = model.score(hidden).item()  # the head applied at the final token, the EOS
    scorer = RewardScorer(model, encoder, batch_size=4)
    assert scorer.score([PROMPT], ["Rome."]).item() == pytest.approx(expected, abs=1e-5)


def test_scores_do_not_change_with_padding_or_batch_order(encoder):
    model = tiny_reward_model(32000, 0)
    answers = ["Rome.", "I think it is Milan, but I am not sure. " * 5, "Turin.", "Naples, of course."]
    alone = [RewardScorer(model, encoder, batch_size=1).score([PROMPT], [a]).item() for a in answers]
    batched = RewardScorer(model, encoder, batch_size=4).score([PROMPT] * 4, answers)
    assert batched.tolist() == pytest.approx(alone, abs=1e-5)
    assert len(set(round(s, 6) for s in alone)) == 4  # the answers really get different scores
    ids, mask = pad_right([[5, 6], [7]], pad_id=0)
    assert ids.tolist() == [[5, 6], [7, 0]] and mask.tolist() == [[1, 1], [1, 0]]


def test_scorer_refuses_a_model_that_pads_with_eos(encoder):
    model = tiny_reward_model(32000, encoder.eos_id)
    with pytest.raises(ValueError, match="pad_token_id"):
        RewardScorer(model, encoder)
    with pytest.raises(ValueError, match="2 prompts but 1 answers"):
        RewardScorer(tiny_reward_model(32000, 0), encoder).score([PROMPT, PROMPT], ["Rome."])
