"""The modern recipe: GPT-2 with the ideas that the GPT-2 speedruns adopted, each one an option.

- RoPE (Su et al. 2021, RoFormer): positions as rotations of each head's q and k; no learned wpe.
- RMSNorm (Zhang & Sennrich 2019): divide by the root mean square; a gain, no mean and no shift.
- QK-norm (Dehghani et al. 2023; OLMo 2): RMSNorm of each head's q and k, so attention logits stay bounded.
- ReLU² (So et al. 2021, Primer): relu(x)**2 in the MLP instead of GELU.
- logit soft-capping (Gemma 2): cap * tanh(logits / cap), a smooth bound on the logits.
- untied head: an lm head of its own instead of wte's transpose.
- Muon (Jordan et al. 2024): momentum orthogonalized by a Newton-Schulz iteration, for the 2-D
  matrices inside the blocks; AdamW for embeddings, head, gains and biases.

With every option off, `GPT` is `llmc_core.gpt2.GPT2`: same parameter names, same initialization,
same logits (tests/test_modern.py). The small functions (`rms_norm`, `apply_rope`, ...) are what
lesson 09 asks the learner to write; `Pieces` lets the learner's versions replace them in `GPT`
and `Muon`, and so in the trainer (`TrainerParts(pieces=...)`).
"""
import math
from dataclasses import dataclass, fields
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmc_core.gpt2 import GPT2, Conv1D, GPT2Config, gelu, unpadded_loss

# ---------------------------------------------------------------------------------------------
# the pieces, one idea each


def rms_norm(x, weight=None, eps=1e-6):
    """x / sqrt(mean(x**2) + eps) over the last dim, times the gain `weight` (C,) if given: (..., C) -> (..., C)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * (1.0 if weight is None else weight)


def rope_angles(T, HS, base=10000.0, device=None):
    """(T, HS/2): the angle t * theta_i of position t and channel pair i, theta_i = base**(-2i / HS)."""
    theta = base ** (-torch.arange(0, HS, 2, dtype=torch.float32, device=device) / HS)  # (HS/2,) fast to slow
    return torch.arange(T, dtype=torch.float32, device=device)[:, None] * theta[None, :]  # (T, HS/2)


def apply_rope(x, base=10000.0):
    """Rotate each channel pair (x[2i], x[2i+1]) at position t by the angle t * theta_i: (..., T, HS) -> same.

    q . k after rotation depends on the two positions only through their difference.
    """
    T, HS = x.shape[-2:]
    if HS % 2:
        raise ValueError(f"RoPE rotates channel pairs; the head size must be even, got {HS}")
    angle = rope_angles(T, HS, base, x.device)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)  # (T, HS/2)
    x1, x2 = x[..., 0::2], x[..., 1::2]  # (..., T, HS/2): the pairs' first and second channels
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (..., T, HS/2, 2)
    return rotated.flatten(-2)  # the pairs interleaved again: (..., T, HS)


def qk_norm(q, k, q_gain=None, k_gain=None):
    """RMSNorm of every head's query and key vectors, over HS: q, k (B, NH, T, HS) -> the same shapes."""
    return rms_norm(q, q_gain), rms_norm(k, k_gain)


def relu2(x):
    """ReLU squared: relu(x)**2."""
    return torch.relu(x).square()


def softcap(logits, cap):
    """cap * tanh(logits / cap): about the identity for |logits| << cap, never beyond +-cap."""
    return cap * torch.tanh(logits / cap)


# Muon's quintic: a, b, c chosen so that p(s) = a s + b s^3 + c s^5 pulls every singular value in
# (0, 1] quickly into about [0.7, 1.2] in 5 steps (not to exactly 1: speed over precision).
MUON_COEFFS = (3.4445, -4.7750, 2.0315)


def newton_schulz(G, steps=5, coeffs=MUON_COEFFS, eps=1e-7):
    """U S' V^T for G = U S V^T (m, n), with every singular value pushed towards 1: about orthogonal.

    Each step maps X -> a X + b (X X^T) X + c (X X^T)^2 X, which applies p(s) = a s + b s^3 + c s^5
    to every singular value s and keeps the singular vectors. coeffs=(1.5, -0.5, 0) is the classic
    cubic iteration, which converges to U V^T exactly.
    """
    a, b, c = coeffs
    X = G / (G.norm() + eps)  # the Frobenius norm bounds the largest singular value: all s <= 1 now
    tall = G.size(0) > G.size(1)
    if tall:
        X = X.T  # work with the smaller Gram matrix, (min(m, n), min(m, n))
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if tall else X


def muon_update(grad, buf, momentum=0.95, nesterov=True, orthogonalize=newton_schulz):
    """Muon's direction for one 2-D weight: update the momentum `buf` in place, return the orthogonalized step.

    buf <- momentum * buf + grad; the step is orthogonalize(grad + momentum * buf) (Nesterov) or
    orthogonalize(buf), scaled by sqrt(max(1, n_out / n_in)) so that a wide matrix's step is not
    smaller per entry than a square one's. Weights are Conv1D, (n_in, n_out).
    """
    buf.mul_(momentum).add_(grad)
    direction = grad + momentum * buf if nesterov else buf
    return orthogonalize(direction) * math.sqrt(max(1.0, grad.size(1) / grad.size(0)))


def muon_param_groups(model, weight_decay, muon_lr_scale=1.0):
    """Three groups: Muon for the 2-D matrices inside the blocks; AdamW with decay for the other 2-D
    tensors (embeddings, lm head); AdamW without decay for the rest (gains, biases).

    Embeddings are lookup tables (a gradient touches only the rows of the tokens seen), and the
    head maps to the vocabulary: neither is a transformation whose singular values to equalize.
    muon_lr_scale: the Muon group's LR relative to AdamW's (the trainer multiplies group["lr_scale"] in).
    """
    muon, decay, no_decay = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.dim() == 2 and name.startswith("h."):
            muon.append(p)
        elif p.dim() >= 2:
            decay.append(p)
        else:
            no_decay.append(p)
    return [{"params": muon, "muon": True, "weight_decay": weight_decay, "lr_scale": muon_lr_scale},
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


@dataclass(frozen=True)
class Pieces:
    """The functions `GPT` and `Muon` call, so that a learner's own versions can replace them."""
    rms_norm: Callable = rms_norm
    apply_rope: Callable = apply_rope
    qk_norm: Callable = qk_norm
    relu2: Callable = relu2
    softcap: Callable = softcap
    newton_schulz: Callable = newton_schulz
    muon_update: Callable = muon_update
    muon_param_groups: Callable = muon_param_groups

    def __post_init__(self):
        for f in fields(self):
            if not callable(getattr(self, f.name)):
                raise TypeError(f"Pieces.{f.name} must be a function, got {getattr(self, f.name)!r}")


# ---------------------------------------------------------------------------------------------
# the optimizer


class Muon(torch.optim.Optimizer):
    """Muon for the groups marked muon=True, AdamW (written out) for the others: one optimizer, one state_dict.

    Both decay weights decoupled from the step, p <- p (1 - lr wd), as AdamW does.
    """

    def __init__(self, groups, lr, momentum=0.95, nesterov=True, betas=(0.9, 0.95), eps=1e-8, pieces=None):
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, betas=betas, eps=eps, weight_decay=0.0,
                        muon=False, lr_scale=1.0)
        super().__init__(groups, defaults)
        self.pieces = pieces or Pieces()

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                p.mul_(1 - group["lr"] * group["weight_decay"])
                if group["muon"]:
                    if "momentum_buffer" not in self.state[p]:
                        self.state[p]["momentum_buffer"] = torch.zeros_like(p)
                    buf = self.state[p]["momentum_buffer"]
                    update = self.pieces.muon_update(p.grad, buf, group["momentum"], group["nesterov"],
                                                     self.pieces.newton_schulz)
                    p.add_(update.to(p.dtype), alpha=-group["lr"])
                else:
                    adamw_step(p, self.state[p], group)


def adamw_step(p, state, group):
    """One Adam step on p (decay already applied): moments, bias correction, p -= lr m_hat / (sqrt(v_hat) + eps)."""
    beta1, beta2 = group["betas"]
    if not state:
        state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
    state["step"] += 1
    state["exp_avg"].lerp_(p.grad, 1 - beta1)  # m <- beta1 m + (1 - beta1) g
    state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)  # v <- beta2 v + (1 - beta2) g^2
    m_hat = state["exp_avg"] / (1 - beta1 ** state["step"])
    v_hat = state["exp_avg_sq"] / (1 - beta2 ** state["step"])
    p.addcdiv_(m_hat, v_hat.sqrt() + group["eps"], value=-group["lr"])


# ---------------------------------------------------------------------------------------------
# the model


@dataclass(frozen=True)
class Recipe:
    """The architecture options; all off = GPT-2. The optimizer is the trainer's choice (TrainConfig.optimizer)."""
    rope: bool = False  # rotary positions instead of the learned wpe
    norm: str = "layer"  # "layer" (LayerNorm) or "rms" (RMSNorm)
    qk_norm: bool = False  # RMSNorm of each head's q and k
    mlp: str = "gelu"  # "gelu" or "relu2"
    softcap: float = 0.0  # cap the logits at +-softcap with tanh; 0 = no cap
    untie_head: bool = False  # an lm head of its own

    def __post_init__(self):
        if self.norm not in ("layer", "rms"):
            raise ValueError(f"norm must be 'layer' or 'rms', got {self.norm!r}")
        if self.mlp not in ("gelu", "relu2"):
            raise ValueError(f"mlp must be 'gelu' or 'relu2', got {self.mlp!r}")
        if not self.softcap >= 0:
            raise ValueError(f"softcap must be >= 0 (0 = no cap), got {self.softcap}")

    @classmethod
    def from_config(cls, config):
        """The architecture options of a TrainConfig (or anything with these fields)."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})

    def changes(self):
        """The options that differ from GPT-2, as short words: ['rope', 'rms norm', ...]."""
        words = {"rope": "rope", "norm": "rms norm", "qk_norm": "qk-norm", "mlp": "relu2 mlp",
                 "softcap": f"softcap {self.softcap:g}", "untie_head": "untied head"}
        return [words[f.name] for f in fields(self) if getattr(self, f.name) != f.default]


# `llmc train --recipe NAME` sets these TrainConfig fields; flags given with it still override them.
RECIPES = {
    "gpt2": dict(rope=False, norm="layer", qk_norm=False, mlp="gelu", softcap=0.0, untie_head=False, optimizer="adamw"),
    "modern": dict(rope=True, norm="rms", qk_norm=True, mlp="relu2", softcap=15.0, untie_head=True, optimizer="muon"),
}


def recipe_name(config):
    """"gpt2", "modern", or "custom (...)" for a TrainConfig's recipe fields."""
    for name, values in RECIPES.items():
        if all(getattr(config, k) == v for k, v in values.items()):
            return name
    changes = Recipe.from_config(config).changes() + (["muon"] if config.optimizer == "muon" else [])
    return "custom (" + ", ".join(changes) + ")"


class RMSNorm(nn.Module):
    def __init__(self, C, pieces):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))  # the gain; no shift: there is no mean to restore
        self.pieces = pieces

    def forward(self, x):
        return self.pieces.rms_norm(x, self.weight)


def make_norm(C, recipe, pieces):
    return RMSNorm(C, pieces) if recipe.norm == "rms" else nn.LayerNorm(C, eps=1e-5)


class Attention(nn.Module):
    def __init__(self, config, recipe, pieces, attention, dropout=0.0):
        super().__init__()
        self.n_head, self.recipe, self.pieces, self.attention = config.n_head, recipe, pieces, attention
        self.dropout = dropout
        self.c_attn = Conv1D(config.n_embd, 3 * config.n_embd)  # q, k, v in one matmul
        self.c_proj = Conv1D(config.n_embd, config.n_embd)
        if recipe.qk_norm:
            self.q_norm = nn.Parameter(torch.ones(config.head_size))  # gains, so attention can still sharpen
            self.k_norm = nn.Parameter(torch.ones(config.head_size))

    def forward(self, x):
        B, T, C = x.shape
        NH, HS = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)  # each (B, T, C)
        q, k, v = (t.view(B, T, NH, HS).transpose(1, 2) for t in (q, k, v))  # each (B, NH, T, HS)
        if self.recipe.qk_norm:
            q, k = self.pieces.qk_norm(q, k, self.q_norm, self.k_norm)
        if self.recipe.rope:  # after the norm: the rotation keeps the length the norm set
            q, k = self.pieces.apply_rope(q), self.pieces.apply_rope(k)
        if self.attention == "sdpa":
            p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)  # (B, NH, T, HS)
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(HS)  # (B, NH, T, T)
            future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(diagonal=1)
            att = F.softmax(att.masked_fill(future, float("-inf")), dim=-1)
            y = F.dropout(att, self.dropout, self.training) @ v  # (B, NH, T, HS)
        y = self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return F.dropout(y, self.dropout, self.training)


class MLP(nn.Module):
    def __init__(self, config, recipe, pieces, dropout=0.0):
        super().__init__()
        self.dropout = dropout
        self.c_fc = Conv1D(config.n_embd, 4 * config.n_embd)
        self.c_proj = Conv1D(4 * config.n_embd, config.n_embd)
        self.act = pieces.relu2 if recipe.mlp == "relu2" else gelu

    def forward(self, x):
        x = self.c_proj(self.act(self.c_fc(x)))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)
        return F.dropout(x, self.dropout, self.training)


class Block(nn.Module):
    def __init__(self, config, recipe, pieces, attention, dropout=0.0):
        super().__init__()
        self.ln_1 = make_norm(config.n_embd, recipe, pieces)
        self.attn = Attention(config, recipe, pieces, attention, dropout)
        self.ln_2 = make_norm(config.n_embd, recipe, pieces)
        self.mlp = MLP(config, recipe, pieces, dropout)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-2 with the modern recipe's options (`recipe`); with Recipe() it computes exactly what GPT2 does.

    attention, padded_vocab, seed and dropout mean what they mean for GPT2; pieces replaces the functions it calls.
    """

    def __init__(self, config: GPT2Config, recipe: Recipe = Recipe(), *, attention="manual", padded_vocab=False,
                 seed=0, pieces=None, dropout=0.0):
        super().__init__()
        self.config, self.recipe, self.pieces = config, recipe, pieces or Pieces()
        self.attention, self.padded_vocab, self.dropout = attention, padded_vocab, dropout
        rows = config.padded_vocab_size if padded_vocab else config.vocab_size
        self.wte = nn.Embedding(rows, config.n_embd)
        if not recipe.rope:  # with RoPE, positions live in the attention's rotations
            self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.h = nn.ModuleList([Block(config, recipe, self.pieces, attention, dropout) for _ in range(config.n_layer)])
        self.ln_f = make_norm(config.n_embd, recipe, self.pieces)
        if recipe.untie_head:
            self.lm_head = nn.Parameter(torch.empty(rows, config.n_embd))  # (V, C), like wte
        self.init_weights(seed)

    @torch.no_grad()
    def init_weights(self, seed):
        """GPT2.init_weights' rule, extended: every 1-D `weight` (layernorm, RMSNorm, q/k gains) starts at 1."""
        generator = torch.Generator().manual_seed(seed)
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():  # the same order as GPT2's when every option is off
            if name.endswith("c_proj.weight"):
                p.copy_(torch.randn(p.shape, generator=generator) * residual_std)
            elif p.dim() == 2:  # wte, wpe, c_attn, c_fc, lm_head
                p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
            elif name.endswith("weight") or name.endswith("_norm"):
                p.fill_(1.0)
            else:  # biases
                p.zero_()
        self.wte.weight[self.config.vocab_size:].zero_()
        if self.recipe.untie_head:
            self.lm_head[self.config.vocab_size:].zero_()

    def forward(self, idx, targets=None):
        """Logits (B, T, V) (Vp when padded) for idx (B, T); with targets also the mean cross-entropy, as GPT2."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence length T={T} exceeds block_size={self.config.block_size}; "
                             f"crop idx to its last {self.config.block_size} tokens")
        x = self.wte(idx)  # (B, T, C)
        if not self.recipe.rope:
            x = x + self.wpe(torch.arange(T, device=idx.device))
        x = F.dropout(x, self.dropout, self.training)
        for block in self.h:
            x = block(x)  # (B, T, C)
        x = self.ln_f(x)
        logits = x @ (self.lm_head if self.recipe.untie_head else self.wte.weight).T  # (B, T, V)
        if self.recipe.softcap:
            logits = self.pieces.softcap(logits, self.recipe.softcap)
        if targets is None:
            return logits
        return logits, unpadded_loss(logits, targets, self.config.vocab_size)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ---------------------------------------------------------------------------------------------
# the trainer's hooks


def build_model(config, model_config=None, pieces=None):
    """The model of a TrainConfig whose recipe changes the architecture, from scratch or shaped for a checkpoint."""
    recipe = Recipe.from_config(config)
    if model_config is None and config.init_from != "scratch":
        raise ValueError(f"--init-from {config.init_from} loads GPT-2 weights, which do not fit a model with "
                         f"{', '.join(recipe.changes())}; train it from scratch or use --recipe gpt2")
    shape = GPT2Config(**model_config) if model_config is not None else config.model_config()
    return GPT(shape, recipe, attention=config.attention, padded_vocab=config.padded_vocab, seed=config.seed,
               pieces=pieces, dropout=config.dropout)


def make_muon(model, config, pieces=None):
    """Muon for the blocks' matrices and AdamW for the rest, with the config's LRs, betas and decay."""
    if config.zero1:
        raise ValueError("--optimizer muon does not shard its state (--zero1); drop --zero1 or use --optimizer adamw")
    pieces = pieces or Pieces()
    groups = pieces.muon_param_groups(model, config.weight_decay, config.muon_lr / config.lr)
    return Muon(groups, lr=config.lr, momentum=config.muon_momentum, betas=(config.beta1, config.beta2),
                eps=config.eps, pieces=pieces)


def require_gpt2_architecture(model, source):
    """ValueError when `model` is not a plain GPT-2 (llm.c's model file holds only that architecture)."""
    changes = model.recipe.changes() if isinstance(model, GPT) else []
    if changes or not isinstance(model, (GPT, GPT2)):
        raise ValueError(f"{source} was trained with the modern recipe ({', '.join(changes)}); llm.c's GPT-2 model "
                         f"file holds only GPT-2's architecture; sample it with `llmc sample` instead")
