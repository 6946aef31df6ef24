"""Load a Llama-style tokenizer as plain text->ids (for the chat format) or as a Hugging Face tokenizer.

The chat format (chat/format.py) needs SentencePiece semantics: every ``encode`` call adds the dummy-prefix
space, adds no BOS/EOS, and never turns the text "<s>" / "</s>" into special ids. Where a ``tokenizer.model``
exists we use SentencePiece itself, the reference. The Hugging Face tokenizer (for TRL, vLLM, TGI and
``apply_chat_template``) is rebuilt from that model so that its ids match SentencePiece (see
``_sentencepiece_faithful``); tests/test_chat_template.py measures where they still differ.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import sentencepiece as spm
from tokenizers import Tokenizer, normalizers

TOKENIZER_MODEL = "tokenizer.model"
TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
SPACE_MARKER = "\u2581"  # SentencePiece's "▁", which stands for a space inside pieces


class SentencePieceTextTokenizer:
    """Text <-> ids with SentencePiece itself: the reference semantics of Meta's Llama 2 code."""

    def __init__(self, model_file: str | Path):
        self.model_file = Path(model_file)
        self._sp = spm.SentencePieceProcessor(model_file=str(self.model_file))
        self.bos_id = self._sp.bos_id()
        self.eos_id = self._sp.eos_id()
        # Llama 2 has no pad piece (pad_id -1); padding positions are masked anyway, so EOS serves.
        self.pad_id = self._sp.pad_id() if self._sp.pad_id() >= 0 else self.eos_id
        self.vocab_size = self._sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self._sp.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self._sp.decode(list(ids))


class FastTextTokenizer:
    """Text <-> ids with a ``tokenizer.json`` alone, emulating SentencePiece's semantics.

    Emulated: no BOS/EOS are added; "<s>"/"</s>" in the text are encoded as text (``encode_special_tokens``);
    a Metaspace pre-tokenizer is replaced by the normalizer SentencePiece effectively applies (prepend "▁",
    every space -> "▁"), so a text starting with a space also gets the dummy prefix.
    Where it can still differ from SentencePiece: the order of the file's BPE merges is used as is (the
    piece scores that SentencePiece ranks merges by are not in tokenizer.json; transformers' own conversion
    ranks the whitespace-only pieces of Llama 2 first, which splits runs of spaces differently; files written
    by ``save_tokenizer`` rank them like SentencePiece); a non-SentencePiece vocabulary (byte-level BPE) gets
    no dummy prefix at all; SentencePiece normalization rules other than identity are not reproduced.
    """

    def __init__(self, tokenizer: Tokenizer, *, bos_id: int, eos_id: int, pad_id: int | None):
        self._tokenizer = tokenizer
        self._tokenizer.encode_special_tokens = True
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.pad_id = pad_id if pad_id is not None else eos_id
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)


def load_text_tokenizer(path: str | Path) -> SentencePieceTextTokenizer | FastTextTokenizer:
    """A directory with tokenizer.model (preferred) or tokenizer.json, or a SentencePiece .model file."""
    path = Path(path)
    model_file = _find_sentencepiece_model(path)
    if model_file is not None:
        return SentencePieceTextTokenizer(model_file)
    tokenizer = _with_sentencepiece_prefix(Tokenizer.from_file(str(path / TOKENIZER_JSON)))
    names = _special_token_names(path)
    return FastTextTokenizer(
        tokenizer,
        bos_id=_token_id(tokenizer, names["bos_token"], path, "bos_token"),
        eos_id=_token_id(tokenizer, names["eos_token"], path, "eos_token"),
        pad_id=_token_id(tokenizer, names["pad_token"], path, "pad_token") if names["pad_token"] else None,
    )


def load_hf_tokenizer(path: str | Path):
    """A transformers tokenizer for ``path`` with LLAMA2_CHAT_TEMPLATE attached and a pad token (EOS if none).

    Always ``from_pretrained`` on a directory: in transformers 5, ``LlamaTokenizer(vocab_file=...)`` silently
    builds a 3-token tokenizer. Where a tokenizer.model exists, the fast tokenizer is rebuilt to match it.
    """
    from transformers import AutoTokenizer, LlamaTokenizer, PreTrainedTokenizerFast

    from chat.template import LLAMA2_CHAT_TEMPLATE

    path = Path(path)
    model_file = _find_sentencepiece_model(path)
    with tempfile.TemporaryDirectory() as scratch:
        directory = path if path.is_dir() else _directory_holding(model_file, Path(scratch))
        if (directory / TOKENIZER_JSON).exists() or (directory / TOKENIZER_CONFIG).exists():
            hf_tokenizer = AutoTokenizer.from_pretrained(str(directory))
        else:
            # A bare tokenizer.model names no class; AutoTokenizer's generic conversion drops the dummy prefix.
            hf_tokenizer = LlamaTokenizer.from_pretrained(str(directory), legacy=True)
    backend = hf_tokenizer.backend_tokenizer
    if model_file is not None:
        backend = _sentencepiece_faithful(backend, model_file)
    else:
        backend = _with_sentencepiece_prefix(backend)
    special = {
        name: str(getattr(hf_tokenizer, name))
        for name in ("bos_token", "eos_token", "unk_token", "pad_token")
        if getattr(hf_tokenizer, name) is not None
    }
    special.setdefault("pad_token", special["eos_token"])
    # PreTrainedTokenizerFast keeps our backend as is (LlamaTokenizer would rebuild its pre-tokenizer).
    # Plain text gets Llama's BOS, no EOS; apply_chat_template passes add_special_tokens=False.
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        clean_up_tokenization_spaces=False,
        model_max_length=hf_tokenizer.model_max_length,
        add_bos_token=True,
        add_eos_token=False,
        **special,
    )
    tokenizer.chat_template = LLAMA2_CHAT_TEMPLATE
    return tokenizer


def save_tokenizer(src_path: str | Path, out_dir: str | Path) -> Path:
    """Write a folder that load_text_tokenizer, load_hf_tokenizer and plain AutoTokenizer all load.

    It holds tokenizer.model (when the source has one) and the Hugging Face files with the chat template.
    """
    out_dir = Path(out_dir)
    tokenizer = load_hf_tokenizer(src_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    # The template goes into tokenizer_config.json, which every transformers release and TGI read
    # (chat_template.jinja is newer); the class name is one that transformers 4 also knows.
    tokenizer.save_pretrained(str(out_dir), save_jinja_files=False)
    _set_config_keys(out_dir / TOKENIZER_CONFIG, tokenizer_class="PreTrainedTokenizerFast")
    model_file = _find_sentencepiece_model(Path(src_path))
    if model_file is not None and model_file.resolve() != (out_dir / TOKENIZER_MODEL).resolve():
        shutil.copyfile(model_file, out_dir / TOKENIZER_MODEL)
    return out_dir


def _set_config_keys(config_path: Path, **keys: str) -> None:
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.update(keys)
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _find_sentencepiece_model(path: Path) -> Path | None:
    """The tokenizer.model to use, None when only a tokenizer.json exists; FileNotFoundError otherwise."""
    looked_for = f"a directory with {TOKENIZER_MODEL} or {TOKENIZER_JSON}, or a SentencePiece .model file"
    if not path.exists():
        raise FileNotFoundError(f"tokenizer path {path} does not exist (expected {looked_for})")
    if path.is_file():
        if path.suffix != ".model":
            raise FileNotFoundError(
                f"tokenizer path {path} is a file but not a .model file (expected {looked_for})"
            )
        return path
    if (path / TOKENIZER_MODEL).is_file():
        return path / TOKENIZER_MODEL
    if (path / TOKENIZER_JSON).is_file():
        return None
    raise FileNotFoundError(f"tokenizer directory {path} has neither {TOKENIZER_MODEL} nor {TOKENIZER_JSON}")


def _directory_holding(model_file: Path, scratch: Path) -> Path:
    shutil.copyfile(model_file, scratch / TOKENIZER_MODEL)
    return scratch


def _special_token_names(directory: Path) -> dict[str, str | None]:
    """bos/eos/pad token strings from tokenizer_config.json (or special_tokens_map.json); Llama's by default."""
    names: dict[str, str | None] = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": None}
    for file_name in (SPECIAL_TOKENS_MAP, TOKENIZER_CONFIG):  # the config, read last, wins
        config_path = directory / file_name
        if not config_path.exists():
            continue
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{config_path}: invalid JSON ({error})") from error
        for key in names:
            value = config.get(key)
            if isinstance(value, dict):  # the AddedToken form {"content": "<s>", ...}
                value = value.get("content")
            if isinstance(value, str):
                names[key] = value
    return names


def _token_id(tokenizer: Tokenizer, token: str, directory: Path, key: str) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise ValueError(f"{directory / TOKENIZER_JSON}: the {key} {token!r} is not in the vocabulary")
    return token_id


def _with_sentencepiece_prefix(tokenizer: Tokenizer) -> Tokenizer:
    """Replace a Metaspace pre-tokenizer by the equivalent normalizer, which also prefixes a leading space.

    Metaspace skips its prefix when the text already starts with a space (" hi" -> "▁hi"); SentencePiece
    does not (" hi" -> "▁", "▁hi"). Other tokenizers are returned unchanged.
    """
    config = json.loads(tokenizer.to_str())
    pre_tokenizer = config.get("pre_tokenizer") or {}
    if pre_tokenizer.get("type") != "Metaspace":
        return tokenizer
    marker = pre_tokenizer.get("replacement", SPACE_MARKER)
    prepends = pre_tokenizer.get(
        "prepend_scheme", "always" if pre_tokenizer.get("add_prefix_space") else "never"
    )
    steps = [normalizers.Prepend(marker)] if prepends != "never" else []
    steps.append(normalizers.Replace(" ", marker))
    if tokenizer.normalizer is not None:
        steps.insert(0, tokenizer.normalizer)
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = None
    return tokenizer


def _sentencepiece_faithful(tokenizer: Tokenizer, model_file: Path) -> Tokenizer:
    """The BPE tokenizer with SentencePiece's normalization and merge order, checked against the .model.

    SentencePiece BPE merges the adjacent pair whose merged piece has the highest score, leftmost first
    among equal scores. Ranking the merges by that score gives the same ids; Llama 2's whitespace-only
    pieces all share one score, and ranking longer left parts first reproduces the leftmost-first growth
    of a run of spaces. transformers' conversion ranks them otherwise, so "a  b" came out differently.
    """
    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    config = json.loads(tokenizer.to_str())
    model = config["model"]
    if model.get("type") != "BPE":
        raise ValueError(
            f"{model_file}: only BPE SentencePiece models are supported (the fast tokenizer is {model.get('type')})"
        )
    vocab = model["vocab"]
    mismatched = [
        piece
        for piece_id in range(sp.get_piece_size())
        if vocab.get(piece := sp.id_to_piece(piece_id)) != piece_id
    ]
    if mismatched:
        raise ValueError(
            f"{model_file}: the fast tokenizer's vocabulary disagrees with the SentencePiece model on "
            f"{len(mismatched)} pieces (first: {mismatched[0]!r})"
        )

    def merge_rank(merge: list[str] | str) -> tuple[float, int]:
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        return (-sp.get_score(vocab[left + right]), -len(left))

    model["merges"] = sorted(model["merges"], key=merge_rank)
    config["pre_tokenizer"] = None
    rebuilt = Tokenizer.from_str(json.dumps(config))
    rebuilt.normalizer = _sentencepiece_normalizer(model_file)
    return rebuilt


def _sentencepiece_normalizer(model_file: Path) -> normalizers.Normalizer:
    """Dummy prefix + spaces as "▁", after checking the model normalizes nothing else (Llama 2 does not)."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_file.read_bytes())
    spec = proto.normalizer_spec
    if (
        spec.precompiled_charsmap
        or spec.remove_extra_whitespaces
        or proto.trainer_spec.treat_whitespace_as_suffix
    ):
        raise ValueError(
            f"{model_file}: the fast tokenizer can only reproduce SentencePiece models with identity normalization, "
            f"remove_extra_whitespaces=false and treat_whitespace_as_suffix=false, like Llama 2's "
            f"(this one: normalization {spec.name!r}, remove_extra_whitespaces={spec.remove_extra_whitespaces})"
        )
    steps = [normalizers.Prepend(SPACE_MARKER)] if spec.add_dummy_prefix else []
    return normalizers.Sequence([*steps, normalizers.Replace(" ", SPACE_MARKER)])
