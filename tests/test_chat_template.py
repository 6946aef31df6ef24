"""LLAMA2_CHAT_TEMPLATE through transformers' apply_chat_template, measured against ChatEncoder's ids.

With the tokenizer from chat.tokenizer (rebuilt to match SentencePiece) the ids are equal in every case
below, the 1,200 HH-RLHF transcripts included, except literal "<s>"/"</s>" inside a message, which a
string template cannot keep as text. The tests also pin the differences of transformers' own conversion
of a tokenizer.model, which is why chat.tokenizer rebuilds it.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from chat.dialog import DialogError, validate_dialog
from chat.format import ChatEncoder
from chat.template import LLAMA2_CHAT_TEMPLATE
from chat.tokenizer import load_hf_tokenizer, save_tokenizer
from tests.test_chat_format import DIALOGS, LLAMA2_MODEL, train_tiny_sentencepiece, turn

HH_DIR = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "hh-rlhf"
PLAIN_DIALOGS = {name: dialog for name, dialog in DIALOGS.items() if name != "literal_bos_eos_text"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return train_tiny_sentencepiece(tmp_path_factory.mktemp("tiny") / "tiny.model")


@pytest.fixture(scope="module", params=["llama2", "tiny"])
def model_file(request, tiny_model) -> Path:
    if request.param == "tiny":
        return tiny_model
    if not LLAMA2_MODEL.exists():
        pytest.skip(f"Llama 2 tokenizer fixture not found at {LLAMA2_MODEL}")
    return LLAMA2_MODEL


@pytest.fixture(scope="module")
def pair(model_file):
    """(Hugging Face tokenizer with the template, reference ChatEncoder) for one SentencePiece model."""
    return load_hf_tokenizer(model_file), ChatEncoder.from_path(model_file)


@pytest.fixture(scope="module")
def llama2_pair():
    if not LLAMA2_MODEL.exists():
        pytest.skip(f"Llama 2 tokenizer fixture not found at {LLAMA2_MODEL}")
    return load_hf_tokenizer(LLAMA2_MODEL), ChatEncoder.from_path(LLAMA2_MODEL)


def template_ids_and_mask(tokenizer, dialog: list[dict]) -> tuple[list[int], list[int]]:
    out = tokenizer.apply_chat_template(
        dialog, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    return out["input_ids"], out["assistant_masks"]


def label_mask(labels: list[int]) -> list[int]:
    return [int(label != -100) for label in labels]


def stock_transformers_tokenizer(model_file: Path, directory: Path, *, legacy: bool):
    """What transformers 5 builds from a bare tokenizer.model named LlamaTokenizer, with our template."""
    shutil.copyfile(model_file, directory / "tokenizer.model")
    config = {"tokenizer_class": "LlamaTokenizer", "legacy": legacy}
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    tokenizer.chat_template = LLAMA2_CHAT_TEMPLATE
    return tokenizer


def test_renders_the_reference_strings(tiny_model):
    tokenizer = load_hf_tokenizer(tiny_model)
    dialog = [
        turn("system", " Be brief. "),
        turn("user", "  Hi  "),
        turn("assistant", " Hello! "),
        turn("user", "Bye"),
    ]
    expected = "<s>[INST] <<SYS>>\n Be brief. \n<</SYS>>\n\n  Hi [/INST] Hello! </s><s>[INST] Bye [/INST]"
    assert tokenizer.apply_chat_template(dialog, tokenize=False, add_generation_prompt=True) == expected


@pytest.mark.parametrize("name", PLAIN_DIALOGS)
def test_template_ids_and_assistant_mask_equal_chat_encoder(pair, name):
    tokenizer, encoder = pair
    expected = encoder.encode_for_training(PLAIN_DIALOGS[name])
    ids, mask = template_ids_and_mask(tokenizer, PLAIN_DIALOGS[name])
    assert ids == expected["input_ids"]
    assert mask == label_mask(expected["labels"])


@pytest.mark.parametrize("name", PLAIN_DIALOGS)
def test_generation_prompt_ids_equal_chat_encoder(pair, name):
    tokenizer, encoder = pair
    prompt = PLAIN_DIALOGS[name][:-1]
    ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=False)
    assert ids == encoder.encode_for_generation(prompt)


def test_prompt_ids_are_a_prefix_of_prompt_plus_answer(pair):
    """TRL's DPO/SFT split a conversation where the prompt's and the whole dialog's ids diverge."""
    tokenizer, _ = pair
    dialog = DIALOGS["multi_turn"]
    prompt_ids = tokenizer.apply_chat_template(dialog[:-1], add_generation_prompt=True, return_dict=False)
    assert tokenizer.apply_chat_template(dialog, return_dict=False)[: len(prompt_ids)] == prompt_ids


def test_literal_bos_eos_text_becomes_special_ids(pair):
    """Documented difference: the rendered "</s>" text is re-parsed as the EOS token."""
    tokenizer, encoder = pair
    dialog = DIALOGS["literal_bos_eos_text"]
    ids, _ = template_ids_and_mask(tokenizer, dialog)
    expected = encoder.encode_for_training(dialog)["input_ids"]
    assert ids != expected
    assert (expected.count(encoder.bos_id), expected.count(encoder.eos_id)) == (1, 1)
    assert (ids.count(encoder.bos_id), ids.count(encoder.eos_id)) == (1 + 2, 1 + 3)


def test_sanitized_control_tokens_still_differ(llama2_pair):
    """Documented difference: sanitize_control_tokens keeps "</s>" as text but encodes it apart from " "."""
    tokenizer, encoder = llama2_pair
    dialog = [turn("user", "a </s> b"), turn("assistant", "ok")]
    ids = tokenizer.apply_chat_template(dialog, sanitize_control_tokens=True, return_dict=False)
    expected = encoder.encode_for_training(dialog)["input_ids"]
    assert ids.count(2) == expected.count(2) == 1
    assert expected[5:8] == [1533, 29879, 29958]  # "▁</", "s", ">" as SentencePiece encodes " </s>"
    assert ids[5:9] == [29871, 829, 29879, 29958]  # "▁", "</", "s", ">": the space is cut off the text


def test_string_then_tokenize_with_special_tokens_doubles_bos(llama2_pair):
    """Documented pitfall: the rendered string already holds BOS, so add_special_tokens=True adds another."""
    tokenizer, encoder = llama2_pair
    rendered = tokenizer.apply_chat_template(DIALOGS["single_turn"], tokenize=False)
    assert tokenizer(rendered)["input_ids"][:2] == [1, 1]
    expected = encoder.encode_for_training(DIALOGS["single_turn"])["input_ids"]
    assert tokenizer(rendered, add_special_tokens=False)["input_ids"] == expected


def test_stock_conversion_without_legacy_changes_inst_after_bos(tmp_path):
    if not LLAMA2_MODEL.exists():
        pytest.skip(f"Llama 2 tokenizer fixture not found at {LLAMA2_MODEL}")
    stock = stock_transformers_tokenizer(LLAMA2_MODEL, tmp_path, legacy=False)
    ids = stock.apply_chat_template(DIALOGS["single_turn"], return_dict=False)
    assert ids[:4] == [1, 29961, 25580, 29962]  # "[" without the "▁" of SentencePiece's 518


def test_stock_conversion_splits_runs_of_spaces_differently(tmp_path, llama2_pair):
    """Why chat.tokenizer rebuilds the fast tokenizer: transformers ranks "▁▁" merges above real words."""
    if not LLAMA2_MODEL.exists():
        pytest.skip(f"Llama 2 tokenizer fixture not found at {LLAMA2_MODEL}")
    stock = stock_transformers_tokenizer(LLAMA2_MODEL, tmp_path, legacy=True)
    _, encoder = llama2_pair
    single = stock.apply_chat_template(DIALOGS["single_turn"], return_dict=False)
    assert single == encoder.encode_for_training(DIALOGS["single_turn"])["input_ids"]
    spaced = [turn("user", "hi  there"), turn("assistant", "ok")]
    expected = encoder.encode_for_training(spaced)["input_ids"]
    assert stock.apply_chat_template(spaced, return_dict=False) != expected
    assert expected[4:7] == [7251, 29871, 727]  # "▁hi" "▁" "▁there" (SentencePiece)
    assert stock.encode("hi  there", add_special_tokens=False) == [7251, 259, 12711]  # "▁hi" "▁▁" "there"


@pytest.mark.parametrize(
    ("dialog", "message"),
    [
        ([turn("assistant", "Hi"), turn("user", "Hello")], "Message 0: expected role user, got assistant"),
        ([turn("user", "Hi"), turn("user", "Hello")], "Message 1: expected role assistant, got user"),
        ([turn("user", "Hi"), turn("system", "Be nice.")], "Message 1: expected role assistant, got system"),
        (
            [turn("system", "S"), turn("user", "Hi"), turn("assistant", "Yo"), turn("system", "T")],
            "Message 3: expected role user, got system",
        ),
        ([turn("system", "Be nice.")], "at least one user message"),
        ([turn("user", "Hi"), turn("assistant", " \n ")], r"Message 1 \(assistant\): empty content"),
        ([turn("user", "Hi [/INST] there")], r"Message 0 contains the special tag \[/INST\]"),
        ([turn("system", "<<SYS>>"), turn("user", "Hi")], "Message 0 contains the special tag <<SYS>>"),
    ],
)
def test_template_rejects_what_validate_dialog_rejects(tiny_model, dialog, message):
    with pytest.raises(DialogError):
        validate_dialog(dialog)
    with pytest.raises(Exception, match=message):
        load_hf_tokenizer(tiny_model).apply_chat_template(dialog, tokenize=False)


def test_generation_prompt_after_an_answer_is_refused(tiny_model):
    tokenizer = load_hf_tokenizer(tiny_model)
    assert tokenizer.apply_chat_template(DIALOGS["single_turn"], tokenize=False).endswith(" Hello! </s>")
    with pytest.raises(Exception, match="add_generation_prompt needs a dialog that ends with a user message"):
        tokenizer.apply_chat_template(DIALOGS["single_turn"], tokenize=False, add_generation_prompt=True)


def hh_dialogs() -> list[list[dict]]:
    """Every chosen/rejected HH-RLHF transcript that is a valid training dialog (a crude split on the markers)."""
    dialogs = []
    for file in sorted(HH_DIR.glob("*.jsonl.gz")):
        with gzip.open(file, "rt", encoding="utf-8") as lines:
            for line in lines:
                record = json.loads(line)
                for transcript in (record["chosen"], record["rejected"]):
                    parts = re.split(r"\n\n(Human|Assistant): ?", transcript)[1:]
                    roles = ["user" if marker == "Human" else "assistant" for marker in parts[0::2]]
                    dialog = [turn(role, content) for role, content in zip(roles, parts[1::2])]
                    try:
                        validate_dialog(dialog, ends_with="assistant")
                    except DialogError:
                        continue
                    dialogs.append(dialog)
    return dialogs


def test_hh_rlhf_transcripts_encode_alike(pair):
    if not HH_DIR.exists():
        pytest.skip(f"HH-RLHF fixture not found at {HH_DIR}")
    tokenizer, encoder = pair
    dialogs = hh_dialogs()
    assert len(dialogs) > 1100  # 1,200 transcripts, a few with empty or mislabelled turns
    mismatched = []
    for index, dialog in enumerate(dialogs):
        expected = encoder.encode_for_training(dialog)
        if template_ids_and_mask(tokenizer, dialog) != (
            expected["input_ids"],
            label_mask(expected["labels"]),
        ):
            mismatched.append(index)
    assert mismatched == []


def test_saved_tokenizer_loads_with_plain_auto_tokenizer(model_file, tmp_path):
    saved = save_tokenizer(model_file, tmp_path / "saved")
    assert {"tokenizer.model", "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in saved.iterdir()}
    config = json.loads((saved / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert config["chat_template"] == LLAMA2_CHAT_TEMPLATE
    plain = AutoTokenizer.from_pretrained(str(saved))  # no trust_remote_code, no chat.* code involved
    encoder = ChatEncoder.from_path(model_file)
    for name, dialog in PLAIN_DIALOGS.items():
        assert (
            plain.apply_chat_template(dialog, return_dict=False)
            == encoder.encode_for_training(dialog)["input_ids"]
        ), name
    assert (plain.bos_token_id, plain.eos_token_id, plain.pad_token_id) == (1, 2, 2)


def test_tokenizer_json_only_directory(model_file, tmp_path):
    saved = save_tokenizer(model_file, tmp_path / "saved")
    (saved / "tokenizer.model").unlink()
    tokenizer, encoder = load_hf_tokenizer(saved), ChatEncoder.from_path(model_file)
    for name, dialog in PLAIN_DIALOGS.items():
        expected = encoder.encode_for_training(dialog)
        assert template_ids_and_mask(tokenizer, dialog) == (
            expected["input_ids"],
            label_mask(expected["labels"]),
        ), name


def test_load_hf_tokenizer_names_a_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.model does not exist"):
        load_hf_tokenizer(tmp_path / "missing.model")
