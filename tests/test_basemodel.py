"""The tiny Llama, model loading / saving, and the Llama-style tokenizer trainer."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import sentencepiece as spm
import torch
from sentencepiece import sentencepiece_model_pb2
from transformers import AutoModelForCausalLM

import basemodel
from basemodel.loading import (
    load_causal_lm,
    load_sequence_classifier,
    load_tokenizer_path,
    save_model,
)
from basemodel.tiny import tiny_llama_config
from basemodel.tokenizer_train import main as tokenizer_main
from basemodel.tokenizer_train import train_tokenizer, train_tokenizer_bytes
from pipeline.config import ModelConfig, PeftConfig

LLAMA2_TOKENIZER = (
    Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "llama2-tokenizer" / "tokenizer.model"
)
SMALL = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 128}
WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "a",
    "mat",
    "and",
    "ate",
    "fish",
    "while",
    "the",
    "dog",
    "barked",
    "at",
    "birds",
    "near",
    "12",
    "old",
    "trees",
]


def toy_corpus(n: int = 1500) -> list[str]:
    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(10)) for _ in range(n)]


def model_proto(data: bytes) -> sentencepiece_model_pb2.ModelProto:
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(data)
    return proto


@pytest.fixture(scope="module")
def toy_tokenizer_bytes() -> bytes:
    return train_tokenizer_bytes(toy_corpus(), vocab_size=300)


# --- tokenizer training -------------------------------------------------------------------------------


def test_training_twice_gives_byte_identical_models(tmp_path, toy_tokenizer_bytes):
    again = train_tokenizer(toy_corpus(), tmp_path, vocab_size=300)
    assert again == tmp_path / "tokenizer.model"
    assert again.read_bytes() == toy_tokenizer_bytes


def test_trained_tokenizer_has_llama_special_ids(toy_tokenizer_bytes):
    sp = spm.SentencePieceProcessor(model_proto=toy_tokenizer_bytes)
    assert sp.get_piece_size() == 300
    assert [sp.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, -1)
    # Byte-fallback pieces follow the specials, as in Llama 2 (<0x00> is id 3 there too).
    assert sp.id_to_piece(3) == "<0x00>"


def test_unseen_unicode_falls_back_to_bytes_and_round_trips(toy_tokenizer_bytes):
    sp = spm.SentencePieceProcessor(model_proto=toy_tokenizer_bytes)
    pieces = sp.encode("ж😀", out_type=str)
    # "ж" is 2 UTF-8 bytes, the emoji 4; neither is in the corpus, and <unk> must never appear.
    assert pieces == ["▁", "<0xD0>", "<0xB6>", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]
    text = "the cat ж😀 says  hi\n\tok"
    assert sp.decode(sp.encode(text)) == text  # identity normalization keeps runs of spaces, tabs, newlines


def test_digits_are_split_one_per_piece(toy_tokenizer_bytes):
    sp = spm.SentencePieceProcessor(model_proto=toy_tokenizer_bytes)
    # "12" is frequent in the corpus, yet split_digits forbids merging digits.
    assert sp.encode("12 2112", out_type=str) == ["▁", "1", "2", "▁", "2", "1", "1", "2"]


def test_trainer_options_match_llama2_tokenizer(toy_tokenizer_bytes):
    if not LLAMA2_TOKENIZER.is_file():
        pytest.skip(f"the Llama 2 tokenizer fixture is not at {LLAMA2_TOKENIZER}")
    ours, llama = model_proto(toy_tokenizer_bytes), model_proto(LLAMA2_TOKENIZER.read_bytes())
    for field in (
        "model_type",
        "byte_fallback",
        "split_digits",
        "split_by_unicode_script",
        "split_by_whitespace",
        "split_by_number",
        "allow_whitespace_only_pieces",
        "max_sentencepiece_length",
        "unk_id",
        "bos_id",
        "eos_id",
        "pad_id",
        "unk_piece",
        "bos_piece",
        "eos_piece",
        "unk_surface",
    ):
        assert getattr(ours.trainer_spec, field) == getattr(llama.trainer_spec, field), field
    for field in ("name", "add_dummy_prefix", "remove_extra_whitespaces", "escape_whitespaces"):
        assert getattr(ours.normalizer_spec, field) == getattr(llama.normalizer_spec, field), field
    assert ours.trainer_spec.user_defined_symbols == []


def test_too_large_vocabulary_is_a_clear_error():
    with pytest.raises(ValueError, match="vocab_size=5000"):
        train_tokenizer_bytes(toy_corpus(50), vocab_size=5000)


def test_non_string_corpus_item_is_named():
    with pytest.raises(TypeError, match="corpus item 2"):
        train_tokenizer_bytes(["a b", "c d", 3], vocab_size=300)


def test_cli_trains_on_the_world_corpus(tmp_path, monkeypatch, toy_tokenizer_bytes):
    import chatworld

    seeds = []

    def fake_corpus_text(seed):
        seeds.append(seed)
        return iter(toy_corpus())

    monkeypatch.setattr(chatworld, "corpus_text", fake_corpus_text, raising=False)
    tokenizer_main(["--out", str(tmp_path / "tok"), "--vocab-size", "300"])
    assert seeds == [0]
    assert (tmp_path / "tok" / "tokenizer.model").read_bytes() == toy_tokenizer_bytes


# --- the tiny Llama -----------------------------------------------------------------------------------


def test_tiny_config_is_llama2_with_grouped_query_attention():
    config = tiny_llama_config(ModelConfig(), vocab_size=3000)
    assert (config.num_attention_heads, config.num_key_value_heads) == (4, 2)
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (1, 2, None)
    assert config.tie_word_embeddings is False
    assert config.rope_parameters["rope_theta"] == 10000.0
    assert config.rms_norm_eps == 1e-5
    assert config.hidden_act == "silu"


def test_default_tiny_model_has_4_438_272_parameters_and_shared_kv_heads():
    model = load_causal_lm(ModelConfig(), None, vocab_size=3000)
    # embed + lm_head: 2*3000*256; per layer: q,o 256*256, k,v 256*128 (2 kv heads of 64),
    # gate/up/down 3*256*688, two norms 2*256; final norm 256.
    per_layer = 2 * 256 * 256 + 2 * 256 * 128 + 3 * 256 * 688 + 2 * 256
    assert sum(p.numel() for p in model.parameters()) == 2 * 3000 * 256 + 4 * per_layer + 256 == 4_438_272
    attention = model.model.layers[0].self_attn
    assert attention.k_proj.weight.shape == (128, 256)
    assert attention.q_proj.weight.shape == (256, 256)
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()


@pytest.mark.parametrize(
    ("sizes", "key"),
    [
        ({"num_heads": 3}, "model.hidden_size"),
        ({"num_kv_heads": 3}, "model.num_kv_heads"),
        ({"num_layers": 0}, "model.num_layers"),
    ],
)
def test_impossible_tiny_sizes_name_the_key(sizes, key):
    with pytest.raises(ValueError, match=key):
        tiny_llama_config(ModelConfig(**sizes), vocab_size=300)


def test_tiny_init_is_deterministic_per_seed_and_leaves_global_rng_alone():
    cfg = ModelConfig(**SMALL)
    rng_before = torch.get_rng_state()
    first, again = (
        load_causal_lm(cfg, None, seed=0, vocab_size=300),
        load_causal_lm(cfg, None, seed=0, vocab_size=300),
    )
    other = load_causal_lm(cfg, None, seed=1, vocab_size=300)
    assert torch.equal(torch.get_rng_state(), rng_before)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name
    assert not torch.equal(first.model.embed_tokens.weight, other.model.embed_tokens.weight)


def test_tiny_vocabulary_comes_from_the_tokenizer(tmp_path, toy_tokenizer_bytes):
    (tmp_path / "tokenizer.model").write_bytes(toy_tokenizer_bytes)
    model = load_causal_lm(ModelConfig(tokenizer=str(tmp_path), **SMALL))
    assert model.model.embed_tokens.weight.shape == (300, 64)
    with pytest.raises(FileNotFoundError, match="no tokenizer.model or tokenizer.json"):
        load_causal_lm(ModelConfig(tokenizer=str(tmp_path / "absent"), **SMALL))


def test_tokenizer_path_precedence():
    assert load_tokenizer_path(ModelConfig(path="ckpt", tokenizer="tok")) == "tok"
    assert load_tokenizer_path(ModelConfig(path="ckpt")) == "ckpt"
    assert load_tokenizer_path(ModelConfig()) == str(basemodel.TINY_TOKENIZER_DIR)
    assert basemodel.TINY_TOKENIZER_DIR.name == "tiny_tokenizer"
    assert basemodel.TINY_TOKENIZER_DIR.parent == Path(basemodel.__file__).parent


def test_dtype_and_gradient_checkpointing_are_applied():
    model = load_causal_lm(
        ModelConfig(dtype="bfloat16", gradient_checkpointing=True, **SMALL), vocab_size=300
    )
    assert model.model.embed_tokens.weight.dtype == torch.bfloat16
    assert all(layer.gradient_checkpointing for layer in model.model.layers)


# --- LoRA and saving ----------------------------------------------------------------------------------


def lora_model():
    model = load_causal_lm(
        ModelConfig(**SMALL), PeftConfig(method="lora", r=4, alpha=8, dropout=0.0), vocab_size=300
    )
    with torch.no_grad():  # LoRA's B starts at zero; make the adapters change the output
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    return model


def logits(model, ids=((1, 5, 9, 17, 33, 65),)) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids)).logits


def test_lora_trains_only_the_adapters():
    model = lora_model()
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    # 7 target modules x 2 layers, each with an A and a B matrix.
    assert len(trainable) == 7 * 2 * 2


def test_merge_at_save_gives_a_plain_checkpoint_with_the_same_logits(tmp_path):
    model = lora_model()
    base_logits = logits(load_causal_lm(ModelConfig(**SMALL), None, vocab_size=300))
    merged = save_model(model, tmp_path, merge_adapters=True)
    files = {p.name for p in tmp_path.iterdir()}
    assert "model.safetensors" in files and "config.json" in files
    assert not {"adapter_config.json", "pytorch_model.bin"} & files
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, local_files_only=True)
    assert torch.allclose(logits(reloaded), logits(merged), atol=1e-5)
    assert not torch.allclose(logits(reloaded), base_logits, atol=1e-3)  # the adapters were really folded in


def test_save_without_merge_writes_an_adapter_folder(tmp_path):
    from peft import PeftModel

    model = lora_model()
    expected = logits(model)
    save_model(model, tmp_path, merge_adapters=False)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in tmp_path.iterdir()}
    base = load_causal_lm(ModelConfig(**SMALL), None, vocab_size=300)
    assert torch.allclose(logits(PeftModel.from_pretrained(base, tmp_path)), expected, atol=1e-5)


def test_saved_checkpoint_loads_as_a_real_model(tmp_path):
    tiny = load_causal_lm(ModelConfig(**SMALL), None, vocab_size=300)
    save_model(tiny, tmp_path, merge_adapters=True)
    loaded = load_causal_lm(ModelConfig(path=str(tmp_path), attn_implementation="eager"))
    assert loaded.config._attn_implementation == "eager"
    assert torch.allclose(logits(loaded), logits(tiny), atol=1e-5)


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/no/such/checkpoint", "./missing-model", "runs/x/sft/model"])
def test_missing_local_checkpoint_is_a_clear_error(path):
    with pytest.raises(FileNotFoundError, match="model.path .*no such directory"):
        load_causal_lm(ModelConfig(path=path))


def test_directory_without_config_is_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_causal_lm(ModelConfig(path=str(tmp_path)))


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the CPU error; QLoRA may work on this GPU machine"
)
def test_qlora_on_cpu_names_the_option():
    with pytest.raises(RuntimeError, match="peft.method=qlora"):
        load_causal_lm(ModelConfig(**SMALL), PeftConfig(method="qlora"), vocab_size=300)


@pytest.mark.parametrize(("cfg", "key"), [({"dtype": "fp8"}, "model.dtype"), ({}, "peft.method")])
def test_unknown_options_name_the_key(cfg, key):
    peft = PeftConfig(method="ia3") if key == "peft.method" else None
    with pytest.raises(ValueError, match=key):
        load_causal_lm(ModelConfig(**SMALL, **cfg), peft, vocab_size=300)


# --- reward-model head --------------------------------------------------------------------------------


def test_sequence_classifier_scores_the_last_real_token():
    model = load_sequence_classifier(ModelConfig(**SMALL), pad_token_id=0, vocab_size=300).eval()
    assert model.config.num_labels == 1 and model.config.pad_token_id == 0
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([[1, 5, 9, 17]])).logits
        padded = model(
            input_ids=torch.tensor([[1, 5, 9, 17, 0, 0], [1, 40, 41, 42, 43, 44]]),
            attention_mask=torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]),
        ).logits
    assert padded.shape == (2, 1)
    assert torch.allclose(padded[0], alone[0], atol=1e-5)


def test_sequence_classifier_from_a_causal_checkpoint_has_a_seeded_head(tmp_path):
    save_model(load_causal_lm(ModelConfig(**SMALL), None, vocab_size=300), tmp_path, merge_adapters=True)
    first = load_sequence_classifier(str(tmp_path), pad_token_id=0, seed=3)
    again = load_sequence_classifier(tmp_path, pad_token_id=0, seed=3)
    assert torch.equal(first.score.weight, again.score.weight)
    assert first.score.weight.abs().sum() > 0
    lora = load_sequence_classifier(str(tmp_path), PeftConfig(method="lora", r=4), pad_token_id=0)
    trainable = [name for name, p in lora.named_parameters() if p.requires_grad]
    assert any("score" in name for name in trainable)  # the new head trains alongside the adapters


def test_bf16_autocast_only_where_the_hardware_computes_bf16(monkeypatch):
    from basemodel import precision

    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: True)
    assert precision.train_in_bf16(ModelConfig())
    assert not precision.train_in_bf16(ModelConfig(cpu_bf16_autocast=False))
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: False)
    assert not precision.train_in_bf16(ModelConfig()), "emulated bf16 is slower than float32"
    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: True)
    assert precision.train_in_bf16(ModelConfig(dtype="bfloat16"))
    assert not precision.train_in_bf16(ModelConfig(dtype="float32"))


def test_ppo_autocast_context_follows_the_trainers_bf16_flag(monkeypatch):
    from basemodel import precision

    layer = torch.nn.Linear(4, 4)
    x = torch.ones(2, 4)
    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: True)
    with precision.cpu_autocast(ModelConfig()):
        assert layer(x).dtype == torch.bfloat16
    with precision.cpu_autocast(ModelConfig(cpu_bf16_autocast=False)):
        assert layer(x).dtype == torch.float32
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: False)
    with precision.cpu_autocast(ModelConfig()):
        assert layer(x).dtype == torch.float32
    # On a GPU a bf16 checkpoint computes in its own dtype: no CPU autocast around it
    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: True)
    with precision.cpu_autocast(ModelConfig(dtype="bfloat16")):
        assert layer(x).dtype == torch.float32
