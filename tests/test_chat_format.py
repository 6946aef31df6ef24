"""chat/format.py and chat/tokenizer.py against Meta's reference semantics, token for token.

The reference ids come from a direct transcription of Meta's ``chat_completion`` over
``sentencepiece.SentencePieceProcessor`` (``meta_reference_ids`` below), independent of the code under test.
They are checked with the real Llama 2 tokenizer (../shared fixture, skipped where absent) and with a tiny
SentencePiece BPE model trained here, which always runs.
"""

from __future__ import annotations

import io
import random
import shutil
from pathlib import Path

import pytest
import sentencepiece as spm

from chat.dialog import SPECIAL_TAGS, DialogError
from chat.format import IGNORE_INDEX, ChatEncoder
from chat.tokenizer import FastTextTokenizer, SentencePieceTextTokenizer, load_text_tokenizer, save_tokenizer

LLAMA2_DIR = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "llama2-tokenizer"
LLAMA2_MODEL = LLAMA2_DIR / "tokenizer.model"
needs_llama2 = pytest.mark.skipif(
    not LLAMA2_MODEL.exists(), reason=f"Llama 2 tokenizer fixture not found at {LLAMA2_MODEL}"
)


def meta_reference_ids(sp: spm.SentencePieceProcessor, dialog: list[dict]) -> list[int]:
    """Meta's llama/generation.py chat_completion, transcribed; a dialog ending with an answer is a training one."""
    B_INST, E_INST = "[INST]", "[/INST]"
    B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"
    if dialog[0]["role"] == "system":
        dialog = [
            {
                "role": dialog[1]["role"],
                "content": B_SYS + dialog[0]["content"] + E_SYS + dialog[1]["content"],
            }
        ] + dialog[2:]
    tokens: list[int] = sum(
        [
            [sp.bos_id()]
            + sp.encode(f"{B_INST} {(prompt['content']).strip()} {E_INST} {(answer['content']).strip()} ")
            + [sp.eos_id()]
            for prompt, answer in zip(dialog[::2], dialog[1::2])
        ],
        [],
    )
    if dialog[-1]["role"] == "user":
        tokens += [sp.bos_id()] + sp.encode(f"{B_INST} {(dialog[-1]['content']).strip()} {E_INST}")
    return tokens


def turn(role: str, content: str) -> dict:
    return {"role": role, "content": content}


# Each ends with an answer; dialog[:-1] is the matching generation prompt.
DIALOGS = {
    "single_turn": [turn("user", "Hi"), turn("assistant", "Hello!")],
    "multi_turn": [
        turn("user", "What is 2+2?"),
        turn("assistant", "4."),
        turn("user", "And 3+3?"),
        turn("assistant", "6."),
        turn("user", "Thanks."),
        turn("assistant", "You're welcome."),
    ],
    "system_prompt": [
        turn("system", "Always answer as a pirate."),
        turn("user", "Hi"),
        turn("assistant", "Arr!"),
    ],
    "system_multi_turn": [
        turn("system", "Be brief."),
        turn("user", "Name a colour."),
        turn("assistant", "Red."),
        turn("user", "Another?"),
        turn("assistant", "Blue."),
    ],
    # Meta strips only the merged "<<SYS>>...user" text as a whole: the user's leading spaces survive.
    "surrounding_whitespace": [
        turn("system", "  Be brief.\n"),
        turn("user", "\n  Hi there  \t"),
        turn("assistant", "  Hello!\n\n"),
        turn("user", "  again "),
        turn("assistant", "\tyes "),
    ],
    "runs_of_spaces_and_newlines": [
        turn("user", "a  b   c\n  Answer:\n\n-   item"),
        turn("assistant", "x    y\n\n  z" + " " * 20 + "w"),
    ],
    "unicode": [
        turn("user", "Café, naïve, Ærøskøbing? 日本語で答えて。"),
        turn("assistant", "はい 😀👍🏽 — ça va, 世界!"),
    ],
    "digits": [turn("user", "What is 1234567 * 89?"), turn("assistant", "109876463, or 1.1e8 (3.14159).")],
    "literal_bos_eos_text": [
        turn("user", "What do <s> and </s> mean?"),
        turn("assistant", "<s> starts and </s> ends a sequence.</s>"),
    ],
}

# The words of the tiny model's training text, chat tags included so it learns merges around them.
TINY_TEXT = (
    "the a to and of is it you that in for on with can be this what how do are i your my have not but so "
    "if or we they there like just help me some about more one INST SYS answer question"
)


def tiny_corpus(line_count: int = 400) -> list[str]:
    """Deterministic text with chat tags, digits and double spaces, so the tiny model learns such merges."""
    rng = random.Random(0)
    lines = []
    for index in range(line_count):
        words = " ".join(rng.choice(TINY_TEXT.split()) for _ in range(rng.randint(3, 12)))
        line = f"[INST] {words} [/INST] {rng.randint(0, 9999)} items  ok"
        lines.append("  " + line if index % 7 == 0 else line)
    return lines


def train_tiny_sentencepiece(out_file: Path) -> Path:
    """A ~320-piece SentencePiece BPE model shaped like Llama 2's (byte fallback, split digits, identity)."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(tiny_corpus()),
        model_writer=model,
        model_type="bpe",
        vocab_size=320,
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    out_file.write_bytes(model.getvalue())
    return out_file


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
def llama2() -> ChatEncoder:
    if not LLAMA2_MODEL.exists():
        pytest.skip(f"Llama 2 tokenizer fixture not found at {LLAMA2_MODEL}")
    return ChatEncoder.from_path(LLAMA2_DIR)


@pytest.mark.parametrize("name", DIALOGS)
def test_training_ids_match_meta_reference(model_file, name):
    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    encoded = ChatEncoder.from_path(model_file).encode_for_training(DIALOGS[name])
    assert encoded["input_ids"] == meta_reference_ids(sp, DIALOGS[name])
    assert len(encoded["labels"]) == len(encoded["input_ids"])


@pytest.mark.parametrize("name", DIALOGS)
def test_generation_ids_match_meta_reference(model_file, name):
    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    prompt = DIALOGS[name][:-1]
    assert ChatEncoder.from_path(model_file).encode_for_generation(prompt) == meta_reference_ids(sp, prompt)


@pytest.mark.parametrize("name", DIALOGS)
def test_generation_prompt_is_where_the_last_answers_labels_start(model_file, name):
    encoder = ChatEncoder.from_path(model_file)
    prompt_ids = encoder.encode_for_generation(DIALOGS[name][:-1])
    encoded = encoder.encode_for_training(DIALOGS[name], loss_on="last")
    assert encoded["input_ids"][: len(prompt_ids)] == prompt_ids
    assert set(encoded["labels"][: len(prompt_ids)]) == {IGNORE_INDEX}
    assert encoded["labels"][len(prompt_ids) :] == encoded["input_ids"][len(prompt_ids) :]


@needs_llama2
def test_readme_anchors(llama2):
    encode = llama2.tokenizer.encode
    assert encode("[INST]") == [518, 25580, 29962]
    assert encode("[/INST]") == [518, 29914, 25580, 29962]
    assert encode("<<SYS>>\n") == [3532, 14816, 29903, 6778, 13]
    assert encode("</s>") == [1533, 29879, 29958]
    assert encode("a ")[-1] == 29871
    assert (llama2.bos_id, llama2.eos_id, llama2.pad_id) == (1, 2, 2)  # no pad piece: EOS pads
    assert llama2.tokenizer.vocab_size == 32000


@needs_llama2
def test_single_turn_ids_and_labels_by_hand(llama2):
    sp_encode = llama2.tokenizer.encode
    hi, hello = sp_encode("Hi"), sp_encode("Hello!")  # "▁Hi", "▁Hello", "!": each word after a space
    encoded = llama2.encode_for_training(DIALOGS["single_turn"])
    prompt = [1, 518, 25580, 29962, *hi, 518, 29914, 25580, 29962]
    assert encoded["input_ids"] == [*prompt, *hello, 29871, 2]
    assert encoded["labels"] == [IGNORE_INDEX] * len(prompt) + [*hello, 29871, 2]


@needs_llama2
def test_two_turn_labels_by_hand(llama2):
    dialog = [turn("user", "Hi"), turn("assistant", "Hello!"), turn("user", "Bye"), turn("assistant", "Ciao")]
    enc = llama2.tokenizer.encode
    first_prompt = [1, 518, 25580, 29962, *enc("Hi"), 518, 29914, 25580, 29962]
    second_prompt = [1, 518, 25580, 29962, *enc("Bye"), 518, 29914, 25580, 29962]
    first_answer, second_answer = [*enc("Hello!"), 29871, 2], [*enc("Ciao"), 29871, 2]
    assert (
        llama2.encode_for_training(dialog)["input_ids"]
        == first_prompt + first_answer + second_prompt + second_answer
    )
    masked_first, masked_second = [IGNORE_INDEX] * len(first_prompt), [IGNORE_INDEX] * len(second_prompt)
    all_labels = masked_first + first_answer + masked_second + second_answer
    last_labels = masked_first + [IGNORE_INDEX] * len(first_answer) + masked_second + second_answer
    assert llama2.encode_for_training(dialog)["labels"] == all_labels
    assert llama2.encode_for_training(dialog, loss_on="last")["labels"] == last_labels


@needs_llama2
def test_literal_bos_eos_text_stays_text(llama2):
    ids = llama2.encode_for_training(DIALOGS["literal_bos_eos_text"])["input_ids"]
    assert ids.count(1) == 1 and ids[0] == 1  # one segment, one BOS
    assert ids.count(2) == 1 and ids[-1] == 2
    text_eos = [1533, 29879, 29958]  # "▁</", "s", ">"
    assert any(ids[i : i + 3] == text_eos for i in range(len(ids)))


@needs_llama2
def test_decode_gives_back_the_text(llama2):
    ids = llama2.encode_for_training(DIALOGS["unicode"])["input_ids"]
    assert (
        llama2.decode(ids)
        == "[INST] Café, naïve, Ærøskøbing? 日本語で答えて。 [/INST] はい 😀👍🏽 — ça va, 世界! "
    )


@pytest.mark.parametrize("tag", SPECIAL_TAGS)
@pytest.mark.parametrize("role", ["system", "user", "assistant"])
def test_special_tags_are_rejected(tiny_model, tag, role):
    dialog = [turn("system", "Be nice."), turn("user", "Hi"), turn("assistant", "Hello")]
    index = ["system", "user", "assistant"].index(role)
    dialog[index] = turn(role, f"look: {tag} here")
    with pytest.raises(DialogError, match=rf"message {index} .*special tag"):
        ChatEncoder.from_path(tiny_model).encode_for_training(dialog)


@pytest.mark.parametrize(
    ("dialog", "message"),
    [
        ([], "empty dialog"),
        ([turn("assistant", "Hi"), turn("user", "Hello")], r"message 0: expected role 'user'"),
        ([turn("user", "Hi"), turn("user", "Hello")], r"message 1: expected role 'assistant'"),
        (
            [turn("user", "Hi"), turn("system", "Be nice."), turn("assistant", "Hello")],
            r"message 1: expected role",
        ),
        ([turn("user", "Hi"), turn("assistant", "  \n")], r"message 1 \(assistant\): empty content"),
        ([turn("user", ""), turn("assistant", "Hello")], r"message 0 \(user\): empty content"),
        ([turn("user", "Hi"), turn("assistant", "Hello"), turn("user", "Bye")], "must end with a assistant"),
        ([turn("system", "Be nice.")], "no user message"),
        ([{"role": "user", "content": None}, turn("assistant", "Hello")], "content must be a string"),
    ],
)
def test_bad_training_dialogs_are_rejected(tiny_model, dialog, message):
    with pytest.raises(DialogError, match=message):
        ChatEncoder.from_path(tiny_model).encode_for_training(dialog)


def test_generation_needs_a_final_user_message(tiny_model):
    with pytest.raises(DialogError, match="must end with a user"):
        ChatEncoder.from_path(tiny_model).encode_for_generation(DIALOGS["single_turn"])


def test_unknown_loss_on_is_rejected(tiny_model):
    with pytest.raises(ValueError, match="loss_on"):
        ChatEncoder.from_path(tiny_model).encode_for_training(DIALOGS["single_turn"], loss_on="first")


class WholeTextTokenizer:
    """A tokenizer with one id per text: the prompt's ids are never a prefix of prompt + answer."""

    bos_id, eos_id, pad_id = 1, 2, 2

    def encode(self, text: str) -> list[int]:
        return [3 + len(text)]


def test_ambiguous_label_boundary_is_an_error():
    dialog = [turn("system", "S"), *DIALOGS["multi_turn"][:2]]
    with pytest.raises(DialogError, match="message 2: the tokens of the prompt are not a prefix"):
        ChatEncoder(WholeTextTokenizer()).encode_for_training(dialog)


def test_text_tokenizer_kinds(tiny_model, tmp_path):
    assert isinstance(load_text_tokenizer(tiny_model), SentencePieceTextTokenizer)
    saved = save_tokenizer(tiny_model, tmp_path / "saved")
    assert isinstance(load_text_tokenizer(saved), SentencePieceTextTokenizer)  # tokenizer.model preferred
    (saved / "tokenizer.model").unlink()
    fast = load_text_tokenizer(saved)
    assert isinstance(fast, FastTextTokenizer)
    assert (fast.bos_id, fast.eos_id, fast.pad_id, fast.vocab_size) == (1, 2, 2, 320)


def test_tokenizer_json_alone_gives_the_sentencepiece_ids(model_file, tmp_path):
    saved = save_tokenizer(model_file, tmp_path / "saved")
    (saved / "tokenizer.model").unlink()
    from_json, reference = ChatEncoder.from_path(saved), ChatEncoder.from_path(model_file)
    assert isinstance(from_json.tokenizer, FastTextTokenizer)
    for name, dialog in DIALOGS.items():
        expected = reference.encode_for_training(dialog)
        assert from_json.encode_for_training(dialog) == expected, name
        assert from_json.decode(expected["input_ids"]) == reference.decode(expected["input_ids"]), name
    # SentencePiece keeps the dummy prefix before a leading space; a stock Metaspace would drop it.
    assert from_json.tokenizer.encode(" hi") == reference.tokenizer.encode(" hi")


def test_missing_tokenizer_paths_are_named(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"nowhere.*does not exist.*tokenizer\.model.*tokenizer\.json"
    ):
        load_text_tokenizer(tmp_path / "nowhere")
    with pytest.raises(
        FileNotFoundError, match=rf"{tmp_path.name} has neither tokenizer\.model nor tokenizer\.json"
    ):
        load_text_tokenizer(tmp_path)
    (tmp_path / "vocab.txt").write_text("a\n")
    with pytest.raises(FileNotFoundError, match=r"vocab\.txt is a file but not a \.model file"):
        load_text_tokenizer(tmp_path / "vocab.txt")


def test_bos_token_missing_from_tokenizer_json_is_named(tiny_model, tmp_path):
    saved = save_tokenizer(tiny_model, tmp_path / "saved")
    (saved / "tokenizer.model").unlink()
    config = (saved / "tokenizer_config.json").read_text()
    (saved / "tokenizer_config.json").write_text(config.replace('"bos_token": "<s>"', '"bos_token": "<bos>"'))
    with pytest.raises(ValueError, match=r"tokenizer\.json: the bos_token '<bos>' is not in the vocabulary"):
        load_text_tokenizer(saved)


def test_a_model_file_and_its_directory_load_alike(tiny_model, tmp_path):
    shutil.copyfile(tiny_model, tmp_path / "tokenizer.model")
    from_dir, from_file = ChatEncoder.from_path(tmp_path), ChatEncoder.from_path(tiny_model)
    dialog = DIALOGS["runs_of_spaces_and_newlines"]
    assert from_dir.encode_for_training(dialog) == from_file.encode_for_training(dialog)
