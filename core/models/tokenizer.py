"""Word-level tokenizer for the concept world, built offline with the ``tokenizers`` library.

Wrapped as a transformers ``PreTrainedTokenizerFast`` so the diffusion code treats it exactly like
Stable Diffusion's CLIP tokenizer: ``tok(prompts, padding="max_length", max_length=16)``.
Unknown words are an error (listing the vocabulary), never a silent ``[UNK]``.
"""

from __future__ import annotations

import re
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

# Special tokens: EOS must not have id 2 (CLIP's legacy argmax pooling would kick in).
BOS, EOS, PAD, UNK = "[BOS]", "[EOS]", "[PAD]", "[UNK]"
SPECIALS = (BOS, EOS, PAD, UNK)
MAX_LENGTH = 16


def build_tokenizer(vocabulary: list[str], max_length: int = MAX_LENGTH) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over ``vocabulary``; adds BOS/EOS and pads to ``max_length``."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for w in sorted(set(vocabulary)):
        vocab.setdefault(w, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()]
    )
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])],
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=max_length,
    )
    return tok


def words_of(prompt: str) -> list[str]:
    """Lower-cased words of a prompt (punctuation dropped)."""
    return re.findall(r"[a-z]+", prompt.lower())


def check_prompts(tokenizer: PreTrainedTokenizerFast, prompts: list[str]) -> list[str]:
    """Lower-case prompts and reject words outside the vocabulary (ValueError lists it)."""
    vocab = tokenizer.get_vocab()
    out = []
    for p in prompts:
        if not isinstance(p, str) or not p.strip():
            raise ValueError("prompt: empty prompt; write e.g. 'a photo of a large red star'")
        words = words_of(p)
        unknown = sorted({w for w in words if w not in vocab})
        if unknown:
            known = sorted(w for w in vocab if w not in SPECIALS)
            raise ValueError(
                f"prompt: unknown word(s) {unknown} in {p!r}; the mini model knows only: "
                f"{', '.join(known)}"
            )
        if len(words) + 2 > tokenizer.model_max_length:
            raise ValueError(
                f"prompt: {p!r} has {len(words)} words; at most "
                f"{tokenizer.model_max_length - 2} fit the mini model"
            )
        out.append(" ".join(words))
    return out


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, path: Path) -> None:
    tokenizer.save_pretrained(str(path))


def load_tokenizer(path: Path) -> PreTrainedTokenizerFast:
    path = Path(path)
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"tokenizer missing at {path / 'tokenizer.json'}; rebuild with `implosion train-base`"
        )
    return PreTrainedTokenizerFast.from_pretrained(str(path))
