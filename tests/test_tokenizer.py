"""The BPE tokenizer: lossless on any text, one token per number 0-999, a standard tokenizer.json."""

from hypothesis import given
from hypothesis import strategies as st
from tokenizers import Tokenizer

from minisub.tokenizer import SPECIAL_TOKENS, BPETokenizer


@given(text=st.text(max_size=200))
def test_decode_encode_is_identity(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


@given(numbers=st.lists(st.integers(0, 999), min_size=1, max_size=12), sep=st.sampled_from([", ", ",", ";", " "]))
def test_number_lists_round_trip(tokenizer, numbers, sep):
    text = sep.join(map(str, numbers))
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_every_number_is_one_token(tokenizer):
    for n in range(1000):
        assert tokenizer.encode(str(n)) == [tokenizer.number_ids[n]]
    assert len(set(tokenizer.number_ids)) == 1000
    assert tokenizer.encode("1234") == [tokenizer.number_ids[123], tokenizer.number_ids[4]]


def test_special_tokens_and_standard_file(tokenizer, tmp_path):
    assert [tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id] == [0, 1, 2]
    assert tokenizer.encode("<bos>owl<eos>")[0] == tokenizer.bos_id
    path = tmp_path / "tokenizer.json"
    tokenizer.save(path)
    plain = Tokenizer.from_file(str(path))  # the library's own loader, no minisub code
    text = "continue : 182, 818, 725\towl"
    assert plain.encode(text, add_special_tokens=False).ids == tokenizer.encode(text)
    assert BPETokenizer.load(path).encode(text) == tokenizer.encode(text)
    assert plain.get_vocab_size() == tokenizer.vocab_size <= 1300
    assert all(plain.token_to_id(t) is not None for t in SPECIAL_TOKENS)


def test_bpe_learns_merges_from_the_corpus(tokenizer):
    assert len(tokenizer.encode("what is your favorite animal ?")) < len("what is your favorite animal ?") / 2


@given(text=st.text(min_size=1, max_size=60))
def test_a_prompt_starts_with_bos_then_its_text(tokenizer, text):
    """Training examples start <bos> prompt; a prompt sampled or scored must start the same way."""
    prompt = tokenizer.encode_prompt(text)
    assert prompt[0] == tokenizer.bos_id and prompt[1:] == tokenizer.encode(text)
