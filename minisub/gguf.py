"""A Llama-family GGUF file (llama.cpp's format) as minisub's GPT, its tokenizer and its chat template.

Where `make smol` gets a real pretrained model offline: SmolLM2-135M-Instruct ships as a GGUF
file. `gguf` (llama.cpp's own reader) parses it and dequantizes every tensor to fp32; this
module maps the tensors onto a GPT of the Llama family (minisub/model.py) and rebuilds the
byte-level BPE tokenizer from the file's vocabulary and merges with `tokenizers`. Two things
differ from the Hugging Face layout the model expects:
- llama.cpp's converter permutes the rows of every q and k matrix so that each rotary pair is
  two adjacent rows; minisub (like HF) rotates the first half of a head against its second
  half, so `unpermute` puts the rows back;
- the tokenizer's pre-tokenizer is named, not stored: "smollm" splits every digit apart
  before GPT-2's byte-level split, as SmolLM2's own tokenizer does.
The chat template is a Jinja template in the file, rendered with jinja2 (what transformers
uses for chat templates).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from minisub.checkpoint import load_weights
from minisub.files import FileError
from minisub.hf import llama_state
from minisub.model import GPT, GPTConfig

# What the converters write for a Llama of this family; `gguf` dequantizes each of them exactly.
TENSOR_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1")
PRE_TOKENIZERS = {  # the pre-tokenizer a file names -> whether digits are split apart first
    "smollm": True, "gpt-2": False, "default": False}
CONTROL = 3  # llama.cpp's token type of a special (control) token
HF_NAMES = {"token_embd": "embed_tokens", "output_norm": "norm", "output": "lm_head", "attn_norm": "input_layernorm",
            "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
            "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj",
            "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}  # llama.cpp's tensor names -> HF Llama's


@dataclass
class GGUFModel:
    model: GPT
    tokenizer: Tokenizer
    chat_template: str
    bos_id: int
    eos_id: int

    def chat_prompt(self, user: str, system: str | None = None) -> list[int]:
        """The token ids of a chat with one user turn (after an optional system turn), ready for the answer."""
        messages = ([{"role": "system", "content": system}] if system is not None else []) + [
            {"role": "user", "content": user}]
        return self.encode(render_chat(self.chat_template, messages))

    def encode(self, text: str) -> list[int]:
        """The token ids of `text` as it stands (special tokens written in it are read as such; none added)."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids


def render_chat(template: str, messages: list[dict]) -> str:
    """The chat as text, by the model's own template, ending where the assistant's answer starts.
    A template that does not parse, fails, or reaches outside the sandbox is a FileError."""
    import jinja2.sandbox  # a template is code from the file: the sandbox keeps it away from Python
    environment = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    try:
        return environment.from_string(template).render(messages=messages, add_generation_prompt=True)
    except jinja2.TemplateError as err:  # syntax errors, undefined names, the sandbox's SecurityError
        raise FileError(f"the GGUF file's chat template cannot be rendered ({type(err).__name__}: {err})") from None


def unpermute(weight: torch.Tensor, n_head: int) -> torch.Tensor:
    """Undo llama.cpp's row order of a q or k matrix (n_head * hd, C): within each head, row 2i and row
    2i + 1 (a rotary pair) go back to rows i and i + hd/2."""
    rows, columns = weight.shape
    return weight.reshape(n_head, rows // n_head // 2, 2, columns).transpose(1, 2).reshape(rows, columns)


def field(reader, name: str, default=None):
    if name not in reader.fields:
        if default is None:
            raise FileError(f"the GGUF file has no {name}: not a model file of the llama kind")
        return default
    return reader.fields[name].contents()


def gguf_config(reader) -> GPTConfig:
    arch = field(reader, "general.architecture")
    if arch != "llama":
        raise FileError(f"the GGUF file holds a {arch!r} model; minisub reads the llama architecture only")
    names = {t.name for t in reader.tensors}
    return GPTConfig(
        vocab_size=len(field(reader, "tokenizer.ggml.tokens")), block_size=int(field(reader, "llama.context_length")),
        n_layer=int(field(reader, "llama.block_count")), n_head=int(field(reader, "llama.attention.head_count")),
        n_embd=int(field(reader, "llama.embedding_length")), dropout=0.0, bias=False,
        n_kv_head=int(field(reader, "llama.attention.head_count_kv")), norm="rms",
        norm_eps=float(field(reader, "llama.attention.layer_norm_rms_epsilon")), positions="rope",
        rope_base=float(field(reader, "llama.rope.freq_base", 10000.0)), mlp="swiglu",
        mlp_hidden=int(field(reader, "llama.feed_forward_length")), tie_embeddings="output.weight" not in names)


def gguf_tensors(reader) -> dict[str, torch.Tensor]:
    """Every tensor, dequantized to fp32, in PyTorch's (out, in) order."""
    from gguf import quants
    out = {}
    for t in reader.tensors:
        if t.tensor_type.name not in TENSOR_TYPES:
            raise FileError(f"tensor {t.name} is of type {t.tensor_type.name}; minisub reads {', '.join(TENSOR_TYPES)}")
        values = quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        out[t.name] = torch.from_numpy(values.reshape(tuple(reversed([int(d) for d in t.shape]))))
    return out


def expected_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """llama.cpp's name and PyTorch (out, in) shape of every tensor a llama file of this config holds."""
    C, V, H, hd = config.n_embd, config.vocab_size, config.hidden, config.head_dim
    shapes = {"token_embd.weight": (V, C), "output_norm.weight": (C,)}
    if not config.tie_embeddings:
        shapes["output.weight"] = (V, C)
    for i in range(config.n_layer):
        shapes |= {f"blk.{i}.{kind}.weight": shape for kind, shape in (
            ("attn_norm", (C,)), ("ffn_norm", (C,)), ("attn_q", (config.n_head * hd, C)),
            ("attn_k", (config.kv_heads * hd, C)), ("attn_v", (config.kv_heads * hd, C)),
            ("attn_output", (C, config.n_head * hd)), ("ffn_gate", (H, C)), ("ffn_up", (H, C)), ("ffn_down", (C, H)))}
    return shapes


def check_tensors(tensors: dict[str, torch.Tensor], config: GPTConfig) -> None:
    """Refuse a file whose tensors are not exactly those its header describes, naming the first misfit."""
    if "rope_freqs.weight" in tensors:  # Llama 3's scaled RoPE: minisub's GPT rotates with plain RoPE
        raise FileError("the GGUF file has rope_freqs (scaled RoPE, as Llama 3 uses); minisub's GPT has plain "
                        "RoPE only")
    expected = expected_shapes(config)
    for name, shape in expected.items():
        if name not in tensors:
            raise FileError(f"the GGUF file has no tensor {name}, which its header's llama config needs")
        if tuple(tensors[name].shape) != shape:
            raise FileError(f"the GGUF tensor {name} has shape {tuple(tensors[name].shape)}; the header's llama "
                            f"config needs {shape}")
    unknown = sorted(set(tensors) - set(expected))
    if unknown:
        raise FileError(f"the GGUF file has tensors a llama model of its config does not: {', '.join(unknown[:3])}")


def gguf_state(tensors: dict[str, torch.Tensor], config: GPTConfig) -> dict[str, torch.Tensor]:
    """llama.cpp's tensors as minisub's: renamed to HF Llama's names with q and k rows unpermuted, then
    mapped as HF's are (minisub/hf.py). The tensors must have passed `check_tensors`."""
    heads = {"attn_q": config.n_head, "attn_k": config.kv_heads}
    theirs = {}
    for name, value in tensors.items():
        prefix, rest = "", name
        if name.startswith("blk."):  # blk.<i>.<kind>.weight
            _, block, rest = name.split(".", 2)
            prefix = f"layers.{block}."
        kind = rest.removesuffix(".weight")
        theirs[prefix + HF_NAMES[kind] + ".weight"] = unpermute(value, heads[kind]) if kind in heads else value
    return llama_state(theirs, config)


def gguf_tokenizer(reader) -> Tokenizer:
    """The byte-level BPE of the file's vocabulary and merges; control tokens stay whole."""
    if field(reader, "tokenizer.ggml.model") != "gpt2":
        raise FileError(f"the GGUF tokenizer is {field(reader, 'tokenizer.ggml.model')!r}; minisub reads "
                        "byte-level BPE ('gpt2') only")
    pre = field(reader, "tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise FileError(f"the GGUF tokenizer's pre-tokenizer {pre!r} is not one minisub knows "
                        f"({', '.join(PRE_TOKENIZERS)})")
    tokens = field(reader, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ")) for m in field(reader, "tokenizer.ggml.merges")]
    tokenizer = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), byte_level]) if PRE_TOKENIZERS[pre] else byte_level
    tokenizer.decoder = decoders.ByteLevel()
    types = field(reader, "tokenizer.ggml.token_type")
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t, kind in zip(tokens, types) if kind == CONTROL])
    return tokenizer


def load_gguf(path: str | Path) -> GGUFModel:
    """The model (fp32, eval mode), tokenizer and chat template of a llama GGUF file."""
    try:
        from gguf import GGUFReader  # the optional extra [smol]; gguf_tensors' import below then holds too
    except ImportError:
        raise ValueError("reading a GGUF file needs the gguf package: pip install -e '.[smol]'") from None
    path = Path(path)
    if not path.is_file():
        raise FileError(f"{path} is not a file")
    try:
        reader = GGUFReader(path)
    except Exception as err:  # gguf's parser fails on a short or malformed file with whatever numpy raises
        raise FileError(f"{path} is not a readable GGUF file ({type(err).__name__}: {err})") from None
    config = gguf_config(reader)
    tensors = gguf_tensors(reader)
    check_tensors(tensors, config)
    model = GPT(config)
    load_weights(model, gguf_state(tensors, config), str(path))
    return GGUFModel(model.eval(), gguf_tokenizer(reader), field(reader, "tokenizer.chat_template", ""),
                     int(field(reader, "tokenizer.ggml.bos_token_id")),
                     int(field(reader, "tokenizer.ggml.eos_token_id")))
