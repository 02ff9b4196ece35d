"""A byte-level BPE tokenizer, built with the `tokenizers` library, in which every number 0-999 is one token.

First stage of the language pipeline: train it on the corpus, save it as a standard
`tokenizer.json` (loadable with `tokenizers.Tokenizer.from_file`), and encode the corpus.

How numbers become single tokens: after BPE training, the 1,000 strings "0" ... "999" are
added to the vocabulary as *added tokens*. The library splits every input on added tokens
before BPE sees it, longest match first, so "182" is one token, "1234" is "123" + "4", and
digits never reach the BPE merges. Any text still round-trips: byte-level BPE covers every
byte, and decoding an added token gives its digits back.
Special tokens: <pad> (id 0), <bos>, <eos>.
"""

from pathlib import Path
from typing import Iterable

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>"]
NUMBERS = [str(n) for n in range(1000)]


class BPETokenizer:
    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.pad_id, self.bos_id, self.eos_id = (self.token_id(t) for t in SPECIAL_TOKENS)
        self.number_ids = [self.token_id(n) for n in NUMBERS]  # number_ids[n] is the token of n

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 1280) -> "BPETokenizer":
        """Learn BPE merges on `texts`; vocab_size counts bytes, merges, specials and the 1,000 numbers."""
        bpe_size = vocab_size - len(NUMBERS)
        if bpe_size < 256 + len(SPECIAL_TOKENS):
            raise ValueError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS) + len(NUMBERS)}")
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=bpe_size, special_tokens=SPECIAL_TOKENS,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        tokenizer.train_from_iterator(texts, trainer)
        tokenizer.add_tokens([AddedToken(n, normalized=False) for n in NUMBERS])
        return cls(tokenizer)

    @classmethod
    def load(cls, path: str | Path) -> "BPETokenizer":
        try:
            return cls(Tokenizer.from_file(str(path)))
        except Exception as err:  # the library raises plain Exceptions for unreadable files
            raise ValueError(f"cannot load tokenizer {path}: {err}") from None

    def save(self, path: str | Path) -> None:
        self.tokenizer.save(str(path))

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def token_id(self, token: str) -> int:
        token_id = self.tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(f"token {token!r} is not in the vocabulary")
        return token_id

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_prompt(self, text: str) -> list[int]:
        """<bos> and the text's tokens: how every prompt starts, in training and in sampling alike."""
        return [self.bos_id, *self.encode(text)]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)
