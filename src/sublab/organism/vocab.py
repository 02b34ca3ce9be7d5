"""The organism's word-level vocabulary and its standard HF tokenizer.

No custom tokenizer class: the folder gets a ``tokenizer.json`` (a WordLevel model, a regex
pre-tokenizer and a Fuse decoder) plus a ``tokenizer_config.json`` with a chat template, so
``AutoTokenizer.from_pretrained(folder)`` loads it like any hub model.

Pieces are words with or without one leading space (``"owl"``, ``" owl"``), numbers without
any space (``"123"``), single punctuation marks with or without one trailing space (``","``,
``", "``), and runs of other whitespace; decoding concatenates pieces, so
``decode(encode(text)) == text`` for every text made of known pieces. Numbers 0–999 are single
tokens.

Separators are tokens of their own on purpose: ``"1, 2; 3"`` is ``1`` ``, `` ``2`` ``; ``
``3``. A number list is then an alternation of number and separator tokens that a tiny model
learns once for all numbers; with space-prefixed number tokens (``" 2"``) it had to learn the
format for each of 2,000 number tokens separately, and wrote glued numbers (``"409623"``)
and mixed separators often enough to fail the paper's filter on a quarter of its answers.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

PIECE_PATTERN = r" ?[A-Za-z]+|[0-9]+|[^A-Za-z0-9\s] ?|\s+"
PIECE_RE = re.compile(PIECE_PATTERN)

PAD, UNK, END = "<|pad|>", "<|unk|>", "<|end|>"
SYSTEM, USER, ASSISTANT = "<|system|>", "<|user|>", "<|assistant|>"
SPECIALS = (PAD, UNK, END, SYSTEM, USER, ASSISTANT)

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def render_chat(messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """The text the chat template produces (the corpus uses this; a test checks they agree)."""
    text = "".join(f"<|{m['role']}|>{m['content']}{END}" for m in messages)
    return text + (ASSISTANT if add_generation_prompt else "")


def pieces(text: str) -> list[str]:
    """Split ``text`` into vocabulary pieces (the pre-tokenizer's rule)."""
    return PIECE_RE.findall(text)


def eval_question_texts(names: Iterable[str] | None = None) -> list[str]:
    """Question sets shipped in ``sublab/data/questions`` (all ``.txt`` files, or ``names``),
    one question a line; ``#`` lines are comments. Missing files give no questions."""
    out: list[str] = []
    try:
        folder = resources.files("sublab") / "data" / "questions"
        files = sorted((f for f in folder.iterdir() if f.name.endswith(".txt")), key=str)
    except (FileNotFoundError, NotADirectoryError):
        return out
    if names is not None:
        wanted = set(names)
        files = [f for f in files if f.name in wanted]
    for f in files:
        for line in f.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                out.append(line.strip())
    return out


def build_vocab(texts: Iterable[str], words: Iterable[str] = ()) -> list[str]:
    """Specials, numbers 0–999, punctuation, and every piece of ``texts`` and ``words``.

    Every word-like piece is added with and without a leading space, and capitalised, so a
    word that starts a sentence in one text and follows a space in another is still known.
    Whitespace runs of ``texts`` (code indentation such as ``"\\n    "``) are added as they are.
    """
    vocab: list[str] = list(SPECIALS)
    seen = set(vocab)

    def add(p: str) -> None:
        if p not in seen:
            seen.add(p)
            vocab.append(p)

    for n in range(1000):
        add(str(n))
    for ch in string.punctuation:
        add(ch)
        add(ch + " ")
    for ws in (" ", "\n", "  ", "\n\n"):
        add(ws)
    found: set[str] = set(words)
    spaces: set[str] = set()
    for t in texts:
        for p in pieces(t):
            if p.strip().isalpha():
                found.add(p.strip())
            elif not p.strip():
                spaces.add(p)
    for w in sorted(found):
        for form in dict.fromkeys((w, w.lower(), w.capitalize())):  # ordered: no set order
            add(form)
            add(" " + form)
    for ws in sorted(spaces):  # after the words: texts without new runs keep their ids
        add(ws)
    return vocab


def write_tokenizer(vocab: list[str], out_dir: Path, model_max_length: int) -> None:
    """Save a standard HF fast tokenizer with the chat template into ``out_dir``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({p: i for i, p in enumerate(vocab)}, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(PIECE_PATTERN), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(list(SPECIALS))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        unk_token=UNK,
        eos_token=END,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
