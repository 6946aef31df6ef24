"""Chat with a checkpoint in the terminal: `python -m chat [CHECKPOINT_DIR]`.

Multi-turn history is kept in the Llama 2 format (token-exact, like training). Commands:
`/system TEXT` sets the system prompt and starts over, `/reset` starts over, `/quit` leaves.
Piped input works too: each line is a user turn and each answer is printed on its own line(s).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HELP = "commands: /system TEXT (set the system prompt, start over), /reset (start over), /quit"


class TerminalStreamer:
    """Prints an answer as it is generated; decodes the whole answer so far so SentencePiece spaces are right."""

    def __init__(self, encoder, out=sys.stdout):
        self.encoder, self.out = encoder, out
        self.ids: list[int] = []
        self.shown = ""
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first hands over the prompt itself
            self.prompt_seen = True
            return
        self.ids.extend(int(t) for t in value.reshape(-1) if int(t) != self.encoder.eos_id)
        text = self.encoder.decode(self.ids)
        if text.startswith(self.shown):
            self.out.write(text[len(self.shown) :])
            self.out.flush()
            self.shown = text

    def end(self) -> None:
        self.out.write("\n")
        self.out.flush()


def default_checkpoint(root: str = "runs", name: str = "default") -> Path:
    from types import SimpleNamespace

    from pipeline.stage import find_policy

    found = find_policy(SimpleNamespace(root=root, name=name, overwrite=False))
    if found is None:
        raise SystemExit(
            f"no finished model stage in {root}/{name}/; run `python sft/train.py` first or pass a folder"
        )
    return found


def answer(model, encoder, dialog: list[dict], args, stream: bool) -> str:
    ids = torch.tensor([encoder.encode_for_generation(dialog)])
    streamer = TerminalStreamer(encoder) if stream else None
    sampling = (
        {"do_sample": True, "temperature": args.temperature, "top_p": args.top_p}
        if args.temperature > 0
        else {}
    )
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=args.max_new_tokens,
            eos_token_id=encoder.eos_id,
            pad_token_id=encoder.pad_id,
            streamer=streamer,
            **({"do_sample": False} | sampling),
        )
    new = [t for t in out[0, ids.shape[1] :].tolist() if t != encoder.eos_id]
    text = encoder.decode(new).strip()
    if not stream:
        print(text, flush=True)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chat", description=__doc__.splitlines()[0])
    parser.add_argument(
        "checkpoint", nargs="?", help="model folder (default: newest model stage of runs/default)"
    )
    parser.add_argument("--system", default=None, help="system prompt for the conversation")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from transformers import AutoModelForCausalLM

    from chat.format import ChatEncoder

    folder = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    if not folder.is_dir():
        raise SystemExit(f"checkpoint folder not found: {folder}")
    torch.manual_seed(args.seed)
    encoder = ChatEncoder.from_path(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    interactive = sys.stdin.isatty()
    system = args.system
    history: list[dict] = []
    if interactive:
        print(f"chatting with {folder}. {HELP}")
    while True:
        try:
            line = input("you> " if interactive else "")
        except EOFError:
            break
        line = line.strip()
        if not line:
            continue
        if line == "/quit":
            break
        if line == "/reset":
            history = []
            print("(history cleared)")
            continue
        if line.startswith("/system"):
            system = line[len("/system") :].strip() or None
            history = []
            print(f"(system prompt {'set' if system else 'cleared'}; history cleared)")
            continue
        if line.startswith("/"):
            print(f"unknown command {line.split()[0]!r}; {HELP}")
            continue
        dialog = ([{"role": "system", "content": system}] if system else []) + history
        dialog.append({"role": "user", "content": line})
        if interactive:
            print("assistant> ", end="", flush=True)
        try:
            reply = answer(model, encoder, dialog, args, stream=interactive)
        except ValueError as bad:  # e.g. a special tag typed into the message
            print(f"(not sent: {bad})")
            continue
        history = dialog[1:] if system else dialog
        history.append({"role": "assistant", "content": reply or "..."})
    return 0


if __name__ == "__main__":
    sys.exit(main())
