"""The generation interface, on tiny models: batching with left padding, order, samples, EOS, seeds."""

from __future__ import annotations

import math
import random
from functools import partial

import pytest
import torch
from transformers import GenerationConfig

from basemodel.loading import load_causal_lm, save_model
from basemodel.tokenizer_train import train_tokenizer
from chat.dialog import DialogError
from chat.format import ChatEncoder
from generation import (
    Completion,
    HFGenerator,
    SamplingParams,
    generate_answers,
    make_generator,
    vllm_available,
)
from generation.hf_generator import (
    generation_config,
    left_padded,
    length_sorted_batches,
    next_token_processors,
)
from generation.sampling import completion_from_ids
from pipeline.config import ModelConfig, PeftConfig

SMALL = ModelConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128)
WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "the", "dog", "ran", "to", "12", "red", "birds"]

# Prompts of different lengths, deliberately not in length order, one with a system message and one with
# a finished earlier turn.
DIALOGS = [
    [{"role": "user", "content": "the cat"}],
    [
        {"role": "system", "content": "a dog and a cat"},
        {"role": "user", "content": "the cat sat on the mat and the dog ran to 12 red birds"},
    ],
    [{"role": "user", "content": "a"}],
    [
        {"role": "user", "content": "the dog"},
        {"role": "assistant", "content": "ran to the mat"},
        {"role": "user", "content": "and the cat?"},
    ],
    [{"role": "user", "content": "red birds sat on a mat"}],
]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> ChatEncoder:
    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(10)) for _ in range(1500)]
    directory = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(corpus, directory, vocab_size=300)
    return ChatEncoder.from_path(directory)


@pytest.fixture(scope="module")
def random_model(encoder):
    return load_causal_lm(SMALL, None, seed=0, vocab_size=encoder.tokenizer.vocab_size)


class WithPad:
    """The encoder with a pad id other than EOS, so that padding leaking into a completion would show."""

    def __init__(self, encoder, pad_id: int):
        self.encoder, self.pad_id = encoder, pad_id
        self.bos_id, self.eos_id = encoder.bos_id, encoder.eos_id

    def encode_for_generation(self, messages):
        return self.encoder.encode_for_generation(messages)

    def decode(self, ids):
        return self.encoder.decode(ids)


def bigram_model(vocab_size: int, after: dict[int, list[int]], otherwise: list[int]):
    """A Llama whose next token depends only on the current one: after token t, the tokens in after[t]
    (any other token: `otherwise`) are equally likely and everything else has probability ~e^-80.

    The decoder layers are silenced (o_proj and down_proj zero), so the final hidden state is the token's
    embedding: one-hot on the token's own dimension for the tokens in `after`, on dimension 0 for the rest.
    """
    model = load_causal_lm(SMALL, None, vocab_size=vocab_size)
    hidden = SMALL.hidden_size
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embedding = torch.zeros(vocab_size, hidden)
        embedding[:, 0] = 1.0
        head = torch.zeros(vocab_size, hidden)
        head[otherwise, 0] = 10.0  # RMSNorm scales a one-hot to sqrt(64) = 8: logit 80
        for dim, (token, successors) in enumerate(after.items(), start=1):
            embedding[token] = 0.0
            embedding[token, dim] = 1.0
            head[successors, dim] = 10.0
        model.model.embed_tokens.weight.copy_(embedding)
        model.model.norm.weight.fill_(1.0)
        model.lm_head.weight.copy_(head)
    return model


def word_id(encoder, word: str) -> int:
    """The id of the single piece "▁word" (the dummy prefix supplies the "▁")."""
    ids = encoder.tokenizer.encode(word)
    assert len(ids) == 1, f"{word!r} is not one piece in the test vocabulary: {ids}"
    return ids[0]


def manual_greedy(model, prompt: list[int], steps: int) -> list[int]:
    """Greedy decoding by hand (full forward pass every step, no cache, no padding): the reference."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt) :]


def test_greedy_batched_equals_one_at_a_time_and_keeps_order(random_model, encoder):
    params = SamplingParams(max_new_tokens=10)
    batched = HFGenerator(random_model, encoder, batch_size=5).generate(DIALOGS, params)
    one_by_one = [HFGenerator(random_model, encoder, batch_size=1).generate([d], params)[0] for d in DIALOGS]
    random_model.eval()
    for dialog, together, alone in zip(DIALOGS, batched, one_by_one, strict=True):
        assert len(together) == 1
        assert together[0].token_ids == alone[0].token_ids
        # A random model never emits EOS in 10 steps, so the reference needs no truncation.
        reference = manual_greedy(random_model, encoder.encode_for_generation(dialog), 10)
        assert together[0].token_ids == reference
        assert together[0].finished is False
        assert together[0].text == encoder.decode(reference)
    assert len({tuple(c[0].token_ids) for c in batched}) > 1  # the prompts really lead to different answers


def test_the_checkpoints_own_generation_defaults_do_not_leak_in(random_model, encoder):
    # Llama-2-chat ships do_sample/temperature/top_p in generation_config.json; other checkpoints set more.
    original = random_model.generation_config
    random_model.generation_config = GenerationConfig(
        do_sample=True, temperature=0.05, top_k=1, top_p=0.5, repetition_penalty=5.0, no_repeat_ngram_size=2
    )
    try:
        [[greedy]] = HFGenerator(random_model, encoder).generate(
            DIALOGS[:1], SamplingParams(max_new_tokens=6)
        )
        [sampled] = HFGenerator(random_model, encoder).generate(
            DIALOGS[:1], SamplingParams(max_new_tokens=6, temperature=1.0, num_samples=4)
        )
    finally:
        random_model.generation_config = original
    random_model.eval()
    assert greedy.token_ids == manual_greedy(random_model, encoder.encode_for_generation(DIALOGS[0]), 6)
    assert len({tuple(c.token_ids) for c in sampled}) > 1  # top_k=1 from the checkpoint would make them equal


def test_batches_group_similar_lengths_longest_first():
    assert length_sorted_batches([3, 9, 1, 9, 5], 2) == [[1, 3], [4, 0], [2]]


def test_num_samples_gives_that_many_completions_per_dialog(random_model, encoder):
    sampled = HFGenerator(random_model, encoder, batch_size=4).generate(
        DIALOGS[:3], SamplingParams(max_new_tokens=5, temperature=1.0, num_samples=3)
    )
    assert [len(samples) for samples in sampled] == [3, 3, 3]
    assert all(isinstance(c, Completion) and len(c.token_ids) == 5 for s in sampled for c in s)
    assert len({tuple(c.token_ids) for c in sampled[0]}) > 1  # independent samples, not copies
    greedy = HFGenerator(random_model, encoder).generate(
        DIALOGS[:2], SamplingParams(max_new_tokens=5, num_samples=2)
    )
    assert [len(samples) for samples in greedy] == [2, 2]
    assert greedy[0][0] == greedy[0][1]


def test_eos_ends_a_completion_and_sets_finished(encoder):
    red, birds = word_id(encoder, "red"), word_id(encoder, "birds")
    model = bigram_model(encoder.tokenizer.vocab_size, {red: [birds], birds: [encoder.eos_id]}, [red])
    generator = HFGenerator(model, WithPad(encoder, pad_id=0), batch_size=8)
    [[finished]] = generator.generate(DIALOGS[:1], SamplingParams(max_new_tokens=8))
    assert finished == Completion(text="red birds", token_ids=[red, birds, encoder.eos_id], finished=True)
    [[cut]] = generator.generate(DIALOGS[:1], SamplingParams(max_new_tokens=2))
    assert cut == Completion(text="red birds", token_ids=[red, birds], finished=False)


def test_rows_that_stop_early_lose_their_padding(encoder):
    cat, eos = word_id(encoder, "cat"), encoder.eos_id
    # After the prompt and after "cat": "cat" or EOS, 50/50, so samples stop after different lengths and
    # generate() pads the rows that stopped first (with id 0 here) until the batch is done.
    model = bigram_model(encoder.tokenizer.vocab_size, {cat: [cat, eos]}, [cat, eos])
    generator = HFGenerator(model, WithPad(encoder, pad_id=0), batch_size=48)
    sampled = generator.generate(
        DIALOGS[:3], SamplingParams(max_new_tokens=6, temperature=1.0, num_samples=16)
    )
    lengths = set()
    for completion in (c for samples in sampled for c in samples):
        cats = completion.token_ids.count(cat)
        if completion.finished:
            assert completion.token_ids == [cat] * cats + [eos]
        else:
            assert completion.token_ids == [cat] * 6
        assert completion.text == " ".join(["cat"] * cats)
        lengths.add(len(completion.token_ids))
    assert len(lengths) >= 3


def test_sampling_is_reproducible_per_seed_and_leaves_global_rng_alone(random_model, encoder):
    generator = HFGenerator(random_model, encoder, batch_size=2)
    params = SamplingParams(max_new_tokens=8, temperature=1.0, top_p=0.9, num_samples=2, seed=5)
    rng_state = torch.get_rng_state()
    first, again = generator.generate(DIALOGS, params), generator.generate(DIALOGS, params)
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert first == again
    other = generator.generate(DIALOGS, SamplingParams(**{**vars(params), "seed": 6}))
    assert other != first


def test_samples_share_their_prompts_prefill_and_draw_as_from_separate_copies(random_model, encoder):
    params = SamplingParams(max_new_tokens=8, temperature=1.0, num_samples=3, seed=4)
    shapes = []
    hook = random_model.model.register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    try:
        shared = HFGenerator(random_model, encoder, batch_size=15).generate(DIALOGS, params)
    finally:
        hook.remove()
    prompts = [encoder.encode_for_generation(dialog) for dialog in DIALOGS]
    width = max(len(prompt) for prompt in prompts)
    # One prefill of the 5 prompts (all but their last token), then decoding of 5 x 3 rows one token a step.
    assert shapes == [(5, width - 1)] + [(15, 1)] * 8

    # The reference: every copy through generate's own prefill, the same rows in the same order and seed.
    [order] = length_sorted_batches([len(prompt) for prompt in prompts], 5)
    input_ids, attention_mask = left_padded([prompts[i] for i in order for _ in range(3)], encoder.eos_id)
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(4)
        output = random_model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            generation_config=generation_config(params, encoder, encoder.eos_id),
            logits_processor=next_token_processors(params),
        )
    expected = [completion_from_ids(encoder, row) for row in output[:, width:].tolist()]
    assert [shared[i][k] for i in order for k in range(3)] == expected
    assert len({tuple(c.token_ids) for c in expected}) == 15  # real samples, not copies


def test_recorded_log_probs_are_the_models_and_stop_with_each_answer(encoder):
    cat, eos = word_id(encoder, "cat"), encoder.eos_id
    # "cat" or EOS, 50/50 after the prompt and after "cat": answers of different lengths in one batch.
    model = bigram_model(encoder.tokenizer.vocab_size, {cat: [cat, eos]}, [cat, eos])
    sampled = HFGenerator(model, WithPad(encoder, pad_id=0), batch_size=12).generate(
        DIALOGS[:3], SamplingParams(max_new_tokens=5, temperature=1.0, num_samples=4, logprobs=True)
    )
    completions = [c for samples in sampled for c in samples]
    assert len({len(c.token_ids) for c in completions}) >= 2
    for c in completions:
        assert len(c.token_logprobs) == len(c.token_entropies) == len(c.token_ids)
        # Every step chooses between two tokens of probability 1/2 (the bigram model's logits).
        assert c.token_logprobs == pytest.approx([math.log(0.5)] * len(c.token_ids), abs=1e-4)
        assert c.token_entropies == pytest.approx([math.log(2)] * len(c.token_ids), abs=1e-4)
    plain = HFGenerator(model, encoder).generate(
        DIALOGS[:1], SamplingParams(max_new_tokens=3, temperature=1.0)
    )
    assert plain[0][0].token_logprobs is None and plain[0][0].token_entropies is None


def test_decoding_runs_in_the_compute_context(random_model, encoder):
    seen = []
    hook = random_model.model.register_forward_pre_hook(
        lambda module, args: seen.append(torch.is_autocast_enabled("cpu"))
    )
    bf16 = partial(torch.autocast, "cpu", dtype=torch.bfloat16)
    try:
        HFGenerator(random_model, encoder, compute=bf16).generate(
            DIALOGS[:2], SamplingParams(max_new_tokens=2)
        )
        assert seen and all(seen)
        seen.clear()
        make_generator("hf", model=random_model, encoder=encoder, compute=bf16).generate(
            DIALOGS[:1], SamplingParams(max_new_tokens=2)
        )
        assert seen and all(seen)
        seen.clear()
        HFGenerator(random_model, encoder).generate(DIALOGS[:2], SamplingParams(max_new_tokens=2))
        assert seen and not any(seen)
    finally:
        hook.remove()


def test_generation_runs_in_eval_mode_without_grad_and_restores_training(random_model, encoder):
    seen = []
    hook = random_model.model.register_forward_pre_hook(
        lambda module, args: seen.append((module.training, torch.is_grad_enabled()))
    )
    random_model.train()
    random_model.model.layers[1].eval()  # a submodule the caller froze stays frozen
    try:
        HFGenerator(random_model, encoder).generate(DIALOGS[:2], SamplingParams(max_new_tokens=3))
    finally:
        hook.remove()
    assert seen and set(seen) == {(False, False)}
    assert random_model.training and random_model.model.layers[0].training
    assert not random_model.model.layers[1].training
    random_model.eval()


def test_a_bad_dialog_is_named_by_index(random_model, encoder):
    dialogs = [DIALOGS[0], [{"role": "assistant", "content": "hi"}]]
    with pytest.raises(DialogError, match="dialog 1"):
        HFGenerator(random_model, encoder).generate(dialogs, SamplingParams())


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": -1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"logprobs": True}, "logprobs needs sampling"),
    ],
)
def test_impossible_sampling_params_are_refused(kwargs, error):
    with pytest.raises(ValueError, match=error):
        SamplingParams(**kwargs)


def test_generate_answers_returns_the_first_texts(random_model, encoder):
    answers = generate_answers(
        random_model, encoder, DIALOGS[:2], SamplingParams(max_new_tokens=4), batch_size=1
    )
    expected = HFGenerator(random_model, encoder).generate(DIALOGS[:2], SamplingParams(max_new_tokens=4))
    assert answers == [samples[0].text for samples in expected]


def test_make_generator_chooses_and_refuses_clearly(random_model, encoder, tmp_path):
    assert isinstance(make_generator("hf", model=random_model, encoder=encoder), HFGenerator)
    with pytest.raises(ValueError, match="unknown 'sglang'"):
        make_generator("sglang", model=random_model, encoder=encoder)
    with pytest.raises(ValueError, match="pass model"):
        make_generator("hf", encoder=encoder)
    if not vllm_available():
        # Without vLLM, "auto" falls back to the in-memory model even when a checkpoint path is given.
        auto = make_generator("auto", model=random_model, encoder=encoder, model_path=tmp_path)
        assert isinstance(auto, HFGenerator)
        with pytest.raises(RuntimeError, match="needs the vllm package and a CUDA device"):
            make_generator("vllm", encoder=encoder, model_path=tmp_path)


@pytest.mark.skipif(
    not vllm_available(), reason="vLLM needs the vllm package and a CUDA device; this machine has neither"
)
def test_vllm_greedy_matches_hf_greedy(random_model, encoder, tmp_path):
    save_model(random_model, tmp_path, merge_adapters=True)
    params = SamplingParams(max_new_tokens=8)
    vllm = make_generator("vllm", encoder=encoder, model_path=tmp_path, dtype="float32").generate(
        DIALOGS, params
    )
    hf = HFGenerator(random_model, encoder).generate(DIALOGS, params)
    assert [c[0].token_ids for c in vllm] == [c[0].token_ids for c in hf]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_lora_model_generates_like_its_merged_checkpoint(encoder, tmp_path, temperature):
    lora = load_causal_lm(
        SMALL, PeftConfig(method="lora", r=4, dropout=0.0), vocab_size=encoder.tokenizer.vocab_size
    )
    with torch.no_grad():  # B starts at zero: give the adapters an effect
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    # Sampled: several samples per prompt, which share the prompt's prefill through the peft wrapper.
    params = SamplingParams(max_new_tokens=6, temperature=temperature, num_samples=2)
    through_peft = HFGenerator(lora, encoder).generate(DIALOGS, params)
    merged = save_model(lora, tmp_path, merge_adapters=True)
    assert HFGenerator(merged, encoder).generate(DIALOGS, params) == through_peft
    base = load_causal_lm(SMALL, None, vocab_size=encoder.tokenizer.vocab_size)  # same seed, no adapters
    assert HFGenerator(base, encoder).generate(DIALOGS, params) != through_peft
