import pytest

from core.models.tokenizer import build_tokenizer, check_prompts, load_tokenizer, save_tokenizer
from core.world import World


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(World().vocabulary)


def test_round_trip(tok, tmp_path):
    prompt = "a photo of a large red star"
    ids = tok(prompt).input_ids
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == prompt
    save_tokenizer(tok, tmp_path)
    tok2 = load_tokenizer(tmp_path)
    assert tok2(prompt).input_ids == ids
    assert tok2.get_vocab() == tok.get_vocab()


def test_padding_to_max_length(tok):
    enc = tok(["a red star", "a photo of a small blue ring"], padding="max_length", max_length=16)
    assert all(len(x) == 16 for x in enc.input_ids)


def test_eos_id_is_not_two(tok):
    # CLIP's text model falls back to argmax pooling when eos_token_id == 2
    assert tok.eos_token_id != 2


def test_unknown_words_listed(tok):
    with pytest.raises(ValueError, match=r"unknown word\(s\) \['dog'\].*knows only: a, an"):
        check_prompts(tok, ["a photo of a dog"])
    with pytest.raises(ValueError, match="empty prompt"):
        check_prompts(tok, ["  "])
    assert check_prompts(tok, ["A Photo of a RED star!"]) == ["a photo of a red star"]


def test_missing_tokenizer_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-base"):
        load_tokenizer(tmp_path)
