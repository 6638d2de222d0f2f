"""The reference GPT-2 in PyTorch: plain autograd, Hugging Face parameter names and layouts.

Every hand-written GPT-2 in the course (numpy forward and backward, explicit-backward
PyTorch, CUDA kernels) is checked against this module, and this module is checked against
Hugging Face's `GPT2LMHeadModel` in tests/test_gpt2_reference.py.

The architecture is OpenAI's GPT-2: learned token and position embeddings, pre-layernorm
blocks (attention, then an MLP with tanh GELU), a final layernorm, and an lm head tied to
the token embedding. Parameter names follow Hugging Face's GPT-2 state dict without its
`transformer.` prefix, and the linear layers keep its Conv1D layout, weight (in, out) and
y = x @ W + b, so real GPT-2 weights load without any transpose.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class GPT2Config:
    """Sizes of a GPT-2: context length T, vocabulary V, layers L, heads NH, channels C."""

    block_size: int = 1024  # T max: the number of learned positions
    vocab_size: int = 50257  # V: 256 bytes + 50,000 merges + <|endoftext|>
    n_layer: int = 12  # L
    n_head: int = 12  # NH
    n_embd: int = 768  # C

    def __post_init__(self):
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"GPT2Config.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPT2Config.n_embd={self.n_embd} is not divisible by n_head={self.n_head}: "
                f"each head gets n_embd // n_head channels; pick n_embd a multiple of n_head"
            )

    @property
    def head_size(self) -> int:
        """HS = C / NH, the channels of one attention head."""
        return self.n_embd // self.n_head

    @property
    def padded_vocab_size(self) -> int:
        """Vp: V rounded up to a multiple of 128 (50257 -> 50304), as llm.c pads it.

        Matmuls whose sizes are multiples of 128 run faster on GPUs; the extra rows of
        the token embedding are never used as inputs or targets.
        """
        return ((self.vocab_size + 127) // 128) * 128

    @classmethod
    def preset(cls, name: str) -> "GPT2Config":
        """The config named `name`; see `PRESETS` for the names."""
        if name not in PRESETS:
            raise ValueError(f"unknown GPT-2 preset {name!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[name]


PRESETS = {
    # OpenAI's four GPT-2 sizes: 124M, 350M, 774M, 1558M parameters.
    "gpt2": GPT2Config(n_layer=12, n_head=12, n_embd=768),
    "gpt2-medium": GPT2Config(n_layer=24, n_head=16, n_embd=1024),
    "gpt2-large": GPT2Config(n_layer=36, n_head=20, n_embd=1280),
    "gpt2-xl": GPT2Config(n_layer=48, n_head=25, n_embd=1600),
    # Small models for tests and laptop CPUs.
    "tiny": GPT2Config(block_size=32, vocab_size=64, n_layer=2, n_head=2, n_embd=32),
    # tiny, but with the GPT-2 vocabulary, so it reads and writes real GPT-2 tokens.
    "tiny-gpt2vocab": GPT2Config(block_size=64, vocab_size=50257, n_layer=2, n_head=2, n_embd=32),
    # trains on tiny Shakespeare (GPT-2 tokens) on a CPU in minutes; the trainer's `shakespeare-cpu` preset
    # (llmc_core.train.config) has this shape with a 4,096-token vocabulary.
    "shakespeare-gpt2vocab": GPT2Config(block_size=128, vocab_size=50257, n_layer=4, n_head=4, n_embd=128),
}


def gelu(x):
    """GELU, the tanh approximation that GPT-2 was trained with."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


class Conv1D(nn.Module):
    """A linear layer stored as Hugging Face's GPT-2 stores it: weight (in, out), y = x @ W + b."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return x @ self.weight + self.bias


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPT2Config, attention: str, dropout: float = 0.0):
        super().__init__()
        self.n_head = config.n_head
        self.attention = attention
        self.dropout = dropout
        self.c_attn = Conv1D(config.n_embd, 3 * config.n_embd)  # q, k, v in one matmul
        self.c_proj = Conv1D(config.n_embd, config.n_embd)

    def forward(self, x):
        B, T, C = x.shape
        NH, HS = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)  # each (B, T, C)
        # split the channels into heads: head h owns channels h*HS .. (h+1)*HS - 1
        q = q.view(B, T, NH, HS).transpose(1, 2)  # (B, NH, T, HS)
        k = k.view(B, T, NH, HS).transpose(1, 2)  # (B, NH, T, HS)
        v = v.view(B, T, NH, HS).transpose(1, 2)  # (B, NH, T, HS)
        if self.attention == "sdpa":
            # the same computation in one fused call (flash / memory-efficient kernels)
            p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)  # (B, NH, T, HS)
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(HS)  # (B, NH, T, T)
            # causal: position t attends to positions 0..t only, never to the future
            future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(diagonal=1)
            att = att.masked_fill(future, float("-inf"))
            att = F.softmax(att, dim=-1)  # each row sums to 1 over the past
            att = F.dropout(att, self.dropout, self.training)
            y = att @ v  # (B, NH, T, HS)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again: (B, T, C)
        return F.dropout(self.c_proj(y), self.dropout, self.training)


class MLP(nn.Module):
    def __init__(self, config: GPT2Config, dropout: float = 0.0):
        super().__init__()
        self.c_fc = Conv1D(config.n_embd, 4 * config.n_embd)
        self.c_proj = Conv1D(4 * config.n_embd, config.n_embd)
        self.dropout = dropout

    def forward(self, x):
        x = self.c_proj(gelu(self.c_fc(x)))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)
        return F.dropout(x, self.dropout, self.training)


class Block(nn.Module):
    def __init__(self, config: GPT2Config, attention: str, dropout: float = 0.0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=1e-5)
        self.attn = CausalSelfAttention(config, attention, dropout)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=1e-5)
        self.mlp = MLP(config, dropout)

    def forward(self, x):
        # pre-layernorm residual block: each branch reads a normalized copy and adds back
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


ATTENTION_KINDS = ("manual", "sdpa")


def unpadded_loss(logits, targets, V):
    """Mean cross-entropy of logits (B, T, V or Vp) against targets (B, T), over the first V columns only."""
    return F.cross_entropy(logits[..., :V].reshape(-1, V), targets.reshape(-1))


class GPT2(nn.Module):
    """GPT-2 with Hugging Face parameter names (no `transformer.` prefix) and a tied lm head.

    attention="manual" writes attention out (matmul, causal mask, softmax, matmul);
    attention="sdpa" calls F.scaled_dot_product_attention for speed; both compute the same.
    padded_vocab=True gives wte `config.padded_vocab_size` rows instead of `vocab_size`,
    as llm.c and fast trainers do; see `forward` for what the logits contain then.
    seed makes the initialization reproducible (GPT-2 init, see `init_weights`).
    dropout zeroes that fraction of the embeddings, attention weights and each branch's output
    while training (model.train()), so a small model on little data cannot memorise it; 0: off.
    """

    def __init__(self, config: GPT2Config, *, attention: str = "manual", padded_vocab: bool = False, seed: int = 0,
                 dropout: float = 0.0):
        super().__init__()
        if not isinstance(config, GPT2Config):
            raise TypeError(f"config must be a GPT2Config, got {type(config).__name__}")
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.config = config
        self.dropout = dropout
        self.attention = attention
        self.padded_vocab = padded_vocab
        n_vocab_rows = config.padded_vocab_size if padded_vocab else config.vocab_size
        self.wte = nn.Embedding(n_vocab_rows, config.n_embd)  # token embedding, also the lm head
        self.wpe = nn.Embedding(config.block_size, config.n_embd)  # position embedding
        self.h = nn.ModuleList([Block(config, attention, dropout) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=1e-5)
        self.init_weights(seed)

    @torch.no_grad()
    def init_weights(self, seed: int):
        """GPT-2 init: weights N(0, 0.02), biases 0, layernorms (1, 0).

        The two projections that write into the residual stream in each block (attn.c_proj
        and mlp.c_proj) get std 0.02 / sqrt(2 L): the stream sums 2 L such branches, and this
        keeps its variance from growing with depth. Padded vocabulary rows start at zero.
        """
        generator = torch.Generator().manual_seed(seed)
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():  # a fixed order, so a seed fixes every value
            if name.endswith("c_proj.weight"):
                p.copy_(torch.randn(p.shape, generator=generator) * residual_std)
            elif name.endswith(".weight") and p.dim() == 2:  # wte, wpe, c_attn, c_fc
                p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
            elif "ln_" in name and name.endswith(".weight"):
                p.fill_(1.0)
            else:  # biases
                p.zero_()
        self.wte.weight[self.config.vocab_size :].zero_()

    def forward(self, idx, targets=None):
        """Logits (B, T, V) for token ids idx (B, T); with targets (B, T) also the mean cross-entropy.

        With padded_vocab=True the logits are (B, T, Vp): columns V..Vp-1 score the padding
        rows of wte, which are never targets. The loss uses only the first V columns, so it
        equals the unpadded model's loss (llm.c's softmax skips the padding the same way);
        slice logits[..., :V] before sampling or comparing.
        """
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(
                f"sequence length T={T} exceeds block_size={self.config.block_size}: "
                f"the model has only {self.config.block_size} positions; "
                f"crop idx to its last {self.config.block_size} tokens"
            )
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)  # (B, T, C): what each token is + where it is
        x = F.dropout(x, self.dropout, self.training)
        for block in self.h:
            x = block(x)  # (B, T, C)
        x = self.ln_f(x)
        logits = x @ self.wte.weight.T  # tied lm head: (B, T, V), or (B, T, Vp) when padded
        if targets is None:
            return logits
        return logits, unpadded_loss(logits, targets, self.config.vocab_size)

    def num_parameters(self) -> int:
        """The number of parameters (the tied lm head is counted once, as wte)."""
        return sum(p.numel() for p in self.parameters())
