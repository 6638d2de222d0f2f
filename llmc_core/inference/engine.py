"""A GPT-2 generation engine: one fixed block of memory, one bounded loop.

Everything generation needs is allocated when the engine is built: the weights, the KV cache
for `max_len` positions of `batch_size` rows, RoPE's cos/sin tables for those positions, and one
buffer for every intermediate of a decode step. Generation is then a prefill (the prompt in one
batched forward pass, which fills the cache; this first step may allocate) followed by at most
`max_new_tokens` decode steps, each of which only writes into those buffers (`out=` arguments,
in-place ops, views).

The math is the reference GPT-2 of llmc_core/gpt2.py (Hugging Face names and layouts), with the
options of llmc_core/modern.py's recipe (RoPE, RMSNorm, QK-norm, ReLU², logit soft-capping, an
untied head); tests check the engine against both models and against its own full recomputation.
"""
import math

import torch
import torch.nn.functional as F

from llmc_core.gpt2 import GPT2, GPT2Config
from llmc_core.inference.checks import check_tensor, invariant, require, require_int
from llmc_core.inference.load import check_weights
from llmc_core.inference.sampling import Sampler, SamplingParams
from llmc_core.modern import GPT, Pieces, Recipe, apply_rope, relu2, rms_norm, rope_angles, softcap

LN_EPS = 1e-5
RMS_EPS = 1e-6  # llmc_core.modern.rms_norm's (a test checks that they agree)
SERIAL_ATTENTION_MACS = 1 << 20  # below this, one decode step's attention runs on one thread (see attention_step)
LAYER_NAMES = ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
               "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
               "mlp.c_proj.weight", "mlp.c_proj.bias", "attn.q_norm", "attn.k_norm")  # None where the recipe has none


def own_pieces(model) -> list[str]:
    """The functions a modern.GPT computes with that are not llmc_core.modern's (a learner's own `Pieces`).

    Only the pieces its recipe uses at inference count; Muon's pieces only train.
    """
    if not isinstance(model, GPT):
        return []
    r, default = model.recipe, Pieces()
    used = {"rms_norm": r.norm == "rms", "qk_norm": r.qk_norm, "apply_rope": r.rope, "relu2": r.mlp == "relu2",
            "softcap": r.softcap > 0}
    return [name for name, on in used.items() if on and getattr(model.pieces, name) is not getattr(default, name)]


def recipe_of(model) -> Recipe:
    """The recipe of a GPT2 or modern.GPT module; ValueError for a model the engine cannot reproduce."""
    require(isinstance(model, (GPT2, GPT)), f"the engine runs llmc_core.gpt2.GPT2 and llmc_core.modern.GPT "
                                            f"models, not {type(model).__name__}")
    own = own_pieces(model)
    require(not own, f"the model computes with its own {', '.join(own)} (its Pieces), and the engine holds only "
                     f"llmc_core.modern's: sample it with llmc_core.train.sample.generate, which runs the model's own")
    return model.recipe if isinstance(model, GPT) else Recipe()


class Engine:
    """Generates from a GPT-2 with a KV cache preallocated for `batch_size` rows of `max_len` tokens.

    state: a Hugging Face-named state dict (see llmc_core/weights.py) of a GPT-2 for `config`, with
    the parameters of `recipe`'s options (llmc_core.modern.Recipe; default: GPT-2's architecture);
    wte and lm_head may have padding rows beyond V, which are never used. Build one with
    `from_model`, or load a file with `llmc_core.inference.load_engine`.
    """

    def __init__(self, config: GPT2Config, state: dict, *, recipe: Recipe | None = None, batch_size: int = 1,
                 max_len: int | None = None, device="cpu"):
        require(isinstance(config, GPT2Config), f"config must be a GPT2Config, got {type(config).__name__}")
        max_len = config.block_size if max_len is None else max_len
        require_int(batch_size, "batch_size", 1, 4096)
        require_int(max_len, f"max_len (the model has {config.block_size} positions)", 1, config.block_size)
        self.config, self.B, self.max_len, self.device = config, batch_size, max_len, torch.device(device)
        self.recipe = Recipe() if recipe is None else recipe
        state = check_weights(state, config, source="engine weights", recipe=self.recipe)  # checks the recipe too
        w = {k: v.to(self.device, torch.float32).contiguous() for k, v in state.items()}
        self.wte, self.wpe = w["wte.weight"], w.get("wpe.weight")  # (V, C), (T, C) or None with RoPE
        self.head = w["lm_head"] if self.recipe.untie_head else self.wte  # (V, C): logits = x @ head.T
        self.ln_f = (w["ln_f.weight"], w.get("ln_f.bias"))  # RMSNorm has no bias
        self.layers = [tuple(w.get(f"h.{i}.{name}") for name in LAYER_NAMES) for i in range(config.n_layer)]
        self.allocate_buffers()

    @classmethod
    def from_model(cls, model, **kwargs) -> "Engine":
        """An engine sharing the weights of a GPT2 or modern.GPT module; kwargs as for Engine."""
        recipe = recipe_of(model)
        state = {k: v.detach() for k, v in model.state_dict().items()}
        kwargs.setdefault("device", next(model.parameters()).device)
        return cls(model.config, state, recipe=recipe, **kwargs)

    def allocate_buffers(self):
        """The KV cache and every per-step buffer: the only memory generation uses after the prefill."""
        cfg, B, T = self.config, self.B, self.max_len
        L, NH, C, HS, V = cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.head_size, cfg.vocab_size
        new = dict(device=self.device)
        self.kv = torch.zeros(L, 2, B, NH, T, HS, **new)  # keys and values of every position so far
        self.x, self.h, self.proj, self.sq = (torch.empty(B, C, **new) for _ in range(4))  # residual, normed, branch
        self.mean, self.rstd = torch.empty(B, 1, **new), torch.empty(B, 1, **new)
        self.qkv = torch.empty(B, 3 * C, **new)
        self.q, self.k, self.y = (torch.empty(B * NH, 1, HS, **new) for _ in range(3))  # this position's, per head
        self.scores = torch.empty(B * NH * T, **new)  # viewed as (B*NH, 1, t+1) at position t
        self.fc = torch.empty(B, 4 * C, **new)
        self.logits = torch.empty(B, V, **new)
        self.next = torch.empty(B, 1, dtype=torch.long, **new)  # the token chosen at this step
        self.finished, self.hit = (torch.zeros(B, dtype=torch.bool, **new) for _ in range(2))
        self.all_done = torch.zeros((), dtype=torch.bool, **new)
        # Python numbers in an op become a new 0-d tensor on every call: keep them as tensors here
        self.eps, self.inv_C = torch.tensor(LN_EPS, **new), torch.tensor(1.0 / C, **new)
        self.att_scale = torch.tensor(1.0 / math.sqrt(HS), **new)
        self.allocate_recipe_buffers()

    def allocate_recipe_buffers(self):
        """The tables and buffers of the recipe's options: RoPE, RMSNorm and QK-norm, soft-capping."""
        cfg, B, new = self.config, self.B, dict(device=self.device)
        NH, HS = cfg.n_head, cfg.head_size
        self.cos = self.sin = self.rot = None
        if self.recipe.rope:  # the angles of every position the engine can reach, computed once
            angles = rope_angles(self.max_len, HS, device=self.device)  # (T_max, HS/2)
            self.cos, self.sin = angles.cos(), angles.sin()
            self.rot = torch.empty(3, B * NH, 1, HS // 2, **new)  # two rotated halves and a product
        self.head_sq = torch.empty(B * NH, 1, HS, **new)  # QK-norm's squares and 1 / rms per head
        self.head_rstd = torch.empty(B * NH, 1, 1, **new)
        self.rms_eps, self.inv_HS = torch.tensor(RMS_EPS, **new), torch.tensor(1.0 / HS, **new)
        self.cap = torch.tensor(float(self.recipe.softcap), **new)

    def memory_bytes(self) -> int:
        """Bytes held by the weights, the KV cache, the RoPE tables and the step buffers (each tensor once)."""
        held = [self.wte, self.wpe, self.head, *self.ln_f, *(t for layer in self.layers for t in layer)]
        held += [v for v in vars(self).values() if isinstance(v, torch.Tensor)]  # cache, tables, buffers
        unique = {(t.data_ptr(), t.numel()): t for t in held if t is not None}  # the tied head is wte
        return sum(t.numel() * t.element_size() for t in unique.values())

    # ---------------------------------------------------------------------------------------------
    # Generation: check the request, prefill, then one bounded loop of decode steps

    def generate(self, prompts, max_new_tokens: int, sampling: SamplingParams | None = None, stop_tokens=()):
        """Each prompt (a list of token ids) extended by up to max_new_tokens ids; list of B lists.

        A row stops after its first token in stop_tokens (which it keeps as its last id).
        """
        steps = self.stream(prompts, max_new_tokens, sampling, stop_tokens)  # checks the request first
        rows = self.check_prompts(prompts, max_new_tokens).tolist()
        for step_tokens in steps:
            for row, token in zip(rows, step_tokens):
                if token is not None:
                    row.append(token)
        return rows

    def stream(self, prompts, max_new_tokens: int, sampling: SamplingParams | None = None, stop_tokens=()):
        """An iterator over steps: each a list of B new token ids, as soon as they are chosen (None: row stopped).

        The request is checked here, before the first step, so a bad one fails at the call.
        """
        sampling = SamplingParams() if sampling is None else sampling
        require(isinstance(sampling, SamplingParams), f"sampling must be a SamplingParams, got {sampling!r}")
        prompt = self.check_prompts(prompts, max_new_tokens)
        stop = self.check_stop_tokens(stop_tokens)
        sampler = Sampler(sampling, self.B, self.config.vocab_size, self.device)
        sampler.check_buffers(self.logits, self.next)
        self.check_buffers()
        return self.steps(prompt, max_new_tokens, sampler, stop)

    def steps(self, prompt: torch.Tensor, max_new_tokens: int, sampler: Sampler, stop: torch.Tensor):
        """The generation loop over checked inputs: prefill, then at most max_new_tokens steps."""
        T0 = prompt.shape[1]
        self.finished.zero_()
        self.prefill(prompt)
        for step in range(max_new_tokens):  # bounded: at most max_new_tokens steps
            sampler.choose(self.logits, self.next)
            stopped_before = self.finished.tolist()
            yield [None if done else token for done, token in zip(stopped_before, self.next.view(-1).tolist())]
            torch.isin(self.next.view(-1), stop, out=self.hit)
            self.finished.logical_or_(self.hit)
            torch.all(self.finished, out=self.all_done)
            if step == max_new_tokens - 1 or self.all_done.item():
                return
            self.decode_step(T0 + step)

    def check_prompts(self, prompts, max_new_tokens: int) -> torch.Tensor:
        """The prompts as a (B, T0) long tensor, or ValueError saying what is wrong with them."""
        if isinstance(prompts, torch.Tensor):
            prompts = prompts.tolist()
        require(isinstance(prompts, (list, tuple)) and len(prompts) == self.B,
                f"expected {self.B} prompts (the engine's batch_size), got "
                f"{len(prompts) if isinstance(prompts, (list, tuple)) else type(prompts).__name__}")
        lengths = {len(p) if isinstance(p, (list, tuple)) else -1 for p in prompts}
        require(-1 not in lengths, "each prompt must be a list of token ids")
        require(len(lengths) == 1, f"all prompts in a batch must have the same length, got lengths {sorted(lengths)}")
        T0, V = lengths.pop(), self.config.vocab_size
        require(T0 >= 1, "a prompt needs at least one token (start a new document with <|endoftext|>)")
        require_int(max_new_tokens, "max_new_tokens", 1, self.max_len)
        require(T0 + max_new_tokens <= self.max_len,
                f"a {T0}-token prompt plus {max_new_tokens} new tokens needs {T0 + max_new_tokens} positions, "
                f"but the engine holds {self.max_len} (the model has {self.config.block_size}); "
                f"ask for at most {self.max_len - T0} new tokens or shorten the prompt")
        ids = [t for p in prompts for t in p]
        require(all(isinstance(t, int) and not isinstance(t, bool) for t in ids), "token ids must be ints")
        bad = [t for t in ids if not 0 <= t < V]
        require(not bad, f"token ids must be in [0, {V}) for this model's vocabulary; got {bad[:5]}")
        return torch.tensor(prompts, dtype=torch.long, device=self.device)

    def check_stop_tokens(self, stop_tokens) -> torch.Tensor:
        """stop_tokens as a long tensor, or ValueError if one is not a token id of this model."""
        stop = list(stop_tokens)
        V = self.config.vocab_size
        require(all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < V for t in stop),
                f"stop tokens must be token ids in [0, {V}), got {stop[:5]}")
        return torch.tensor(stop, dtype=torch.long, device=self.device)

    # ---------------------------------------------------------------------------------------------
    # The forward pass: batched over the prompt (prefill), or one position with the cache (decode)

    @torch.inference_mode()
    def forward_full(self, tokens: torch.Tensor, cache: bool = False, last_only: bool = False) -> torch.Tensor:
        """Logits (B, T, V) of tokens (B, T) recomputed from scratch; cache=True also fills the KV cache."""
        B, T = tokens.shape
        invariant(T <= self.max_len and (not cache or B == self.B), f"tokens {tuple(tokens.shape)} do not fit")
        x = self.wte[tokens]  # (B, T, C)
        if self.wpe is not None:  # learned positions; with RoPE, positions are rotations inside attention
            x = x + self.wpe[:T]
        for layer, weights in enumerate(self.layers):
            x = self.block_full(x, weights, layer if cache else None)
        x = self.norm_full(x[:, -1:] if last_only else x, *self.ln_f)
        logits = x @ self.head.t()  # (B, T, V)
        return softcap(logits, self.recipe.softcap) if self.recipe.softcap else logits

    def block_full(self, x: torch.Tensor, weights, layer: int | None) -> torch.Tensor:
        """x (B, T, C) after one block; layer: the cache slot to fill with this block's keys and values, or None."""
        B, T, C = x.shape
        NH, HS = self.config.n_head, self.config.head_size
        ln1w, ln1b, attnw, attnb, projw, projb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb, q_gain, k_gain = weights
        h = self.norm_full(x, ln1w, ln1b)
        q, k, v = (torch.addmm(attnb, h.view(B * T, C), attnw).view(B, T, 3, NH, HS)
                   .permute(2, 0, 3, 1, 4).unbind(0))  # each (B, NH, T, HS)
        if self.recipe.qk_norm:
            q, k = rms_norm(q, q_gain), rms_norm(k, k_gain)
        if self.recipe.rope:  # after the norm, as in llmc_core.modern
            q, k = apply_rope(q), apply_rope(k)
        if layer is not None:
            self.kv[layer, 0, :, :, :T] = k
            self.kv[layer, 1, :, :, :T] = v
        causal = torch.ones(T, T, dtype=torch.bool, device=self.device).triu(diagonal=1)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(HS)  # (B, NH, T, T)
        att = torch.softmax(att.masked_fill(causal, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B * T, C)  # heads side by side: (B*T, C)
        x = x + torch.addmm(projb, y, projw).view(B, T, C)
        h = self.norm_full(x, ln2w, ln2b).view(B * T, C)
        fc = torch.addmm(fcb, h, fcw)  # (B*T, 4C)
        fc = relu2(fc) if self.recipe.mlp == "relu2" else F.gelu(fc, approximate="tanh")
        return x + torch.addmm(fcprojb, fc, fcprojw).view(B, T, C)

    def norm_full(self, x: torch.Tensor, weight, bias) -> torch.Tensor:
        """LayerNorm or RMSNorm (as the recipe says) of x (..., C)."""
        if self.recipe.norm == "rms":
            return rms_norm(x, weight, RMS_EPS)
        return F.layer_norm(x, (x.shape[-1],), weight, bias, LN_EPS)

    def prefill(self, prompt: torch.Tensor):
        """Fill the KV cache with the prompt (B, T0) and the logits buffer with its last position's."""
        logits = self.forward_full(prompt, cache=True, last_only=True)[:, -1]  # (B, V)
        invariant(bool(torch.isfinite(logits).all()), "the prompt's logits are not finite: the weights overflow")
        self.logits.copy_(logits)

    @torch.inference_mode()
    def decode_step(self, pos: int):
        """Logits for the tokens in self.next at position pos, using and extending the KV cache.

        Allocates no tensor storage: every op writes into a buffer from allocate_buffers.
        """
        torch.index_select(self.wte, 0, self.next.view(-1), out=self.x)  # (B, C): what each token is
        if self.wpe is not None:
            self.x.add_(self.wpe[pos])  # + where it is (with RoPE, attention rotates q and k instead)
        for layer, weights in enumerate(self.layers):
            self.attention_step(layer, pos, weights)
            self.mlp_step(weights)
        self.norm(self.x, *self.ln_f)
        torch.mm(self.h, self.head.t(), out=self.logits)  # (B, V)
        if self.recipe.softcap:
            self.logits.div_(self.cap).tanh_().mul_(self.cap)  # cap * tanh(logits / cap)

    def norm(self, x, weight, bias):
        """self.h = the recipe's norm of x (B, C): LayerNorm, or RMSNorm (weight only)."""
        if self.recipe.norm == "rms":
            self.rms_norm(x, weight, self.h, self.sq, self.rstd, self.inv_C)
        else:
            self.layer_norm(x, weight, bias)

    def layer_norm(self, x, weight, bias):
        """self.h = layernorm(x) (B, C), written out because F.layer_norm has no out= and its .out allocates."""
        torch.sum(x, dim=-1, keepdim=True, out=self.mean)
        self.mean.mul_(self.inv_C)  # (B, 1)
        torch.sub(x, self.mean, out=self.h)
        torch.mul(self.h, self.h, out=self.sq)
        torch.sum(self.sq, dim=-1, keepdim=True, out=self.rstd)
        self.rstd.mul_(self.inv_C).add_(self.eps).rsqrt_()  # 1 / sqrt(var + eps), the biased variance
        self.h.mul_(self.rstd)
        torch.addcmul(bias, self.h, weight, out=self.h)

    def rms_norm(self, x, weight, out, sq, rstd, inv_n):
        """out = x / sqrt(mean(x**2) + eps) * weight over the last dim; sq like x and rstd (..., 1) are scratch.

        out may be x itself (QK-norm normalizes q and k in place).
        """
        torch.mul(x, x, out=sq)
        torch.sum(sq, dim=-1, keepdim=True, out=rstd)
        rstd.mul_(inv_n).add_(self.rms_eps).rsqrt_()  # 1 / rms
        torch.mul(x, rstd, out=out)
        out.mul_(weight)

    def rotate(self, x, pos: int):
        """RoPE in place: turn each channel pair of x (B*NH, 1, HS) by position pos's angles, from the tables."""
        x1, x2 = x[..., 0::2], x[..., 1::2]  # (B*NH, 1, HS/2): the pairs' first and second channels (views)
        cos, sin = self.cos[pos], self.sin[pos]  # (HS/2,)
        first, second, product = self.rot
        torch.mul(x1, cos, out=first)
        torch.mul(x2, sin, out=product)
        first.sub_(product)  # x1 cos - x2 sin
        torch.mul(x1, sin, out=second)
        torch.mul(x2, cos, out=product)
        second.add_(product)  # x1 sin + x2 cos
        x1.copy_(first)
        x2.copy_(second)

    def attention_step(self, layer: int, pos: int, weights):
        """x += attention of position pos over positions 0..pos, appending this position's k, v to the cache."""
        B, C = self.B, self.config.n_embd
        projw, projb = weights[4:6]
        self.qkv_step(layer, pos, weights)
        self.attend(layer, pos)
        torch.addmm(projb, self.y.view(B, C), projw, out=self.proj)
        self.x.add_(self.proj)

    def qkv_step(self, layer: int, pos: int, weights):
        """self.q and the cache's slot pos: this position's query, key and value (QK-normed, rotated: the recipe's)."""
        B, NH, HS, C = self.B, self.config.n_head, self.config.head_size, self.config.n_embd
        ln1w, ln1b, attnw, attnb = weights[:4]
        q_gain, k_gain = weights[12:]
        self.norm(self.x, ln1w, ln1b)
        torch.addmm(attnb, self.h, attnw, out=self.qkv)  # (B, 3C): q, k, v side by side
        self.q.view(B, NH, HS).copy_(self.qkv[:, :C].view(B, NH, HS))
        self.k.view(B, NH, HS).copy_(self.qkv[:, C:2 * C].view(B, NH, HS))
        if self.recipe.qk_norm:
            self.rms_norm(self.q, q_gain, self.q, self.head_sq, self.head_rstd, self.inv_HS)
            self.rms_norm(self.k, k_gain, self.k, self.head_sq, self.head_rstd, self.inv_HS)
        if self.recipe.rope:  # after the norm, as in llmc_core.modern
            self.rotate(self.q, pos)
            self.rotate(self.k, pos)
        self.kv[layer, 0, :, :, pos].copy_(self.k.view(B, NH, HS))
        self.kv[layer, 1, :, :, pos].copy_(self.qkv[:, 2 * C:].view(B, NH, HS))

    def attend(self, layer: int, pos: int):
        """self.y (B*NH, 1, HS) = softmax(q k^T / sqrt(HS)) v over the cached positions 0..pos."""
        B, NH, HS, T = self.B, self.config.n_head, self.config.head_size, self.max_len
        keys = self.kv[layer, 0].view(B * NH, T, HS)[:, : pos + 1]  # (B*NH, pos+1, HS)
        values = self.kv[layer, 1].view(B * NH, T, HS)[:, : pos + 1]
        scores = self.scores[: B * NH * (pos + 1)].view(B * NH, 1, pos + 1)
        # subtle: at small sizes these ops are microseconds of work, but a parallel region must wake the
        # thread pool, which costs a scheduler time slice (~10 ms) when the cores are busy: use one thread
        threads = torch.get_num_threads()
        torch.set_num_threads(1 if B * NH * (pos + 1) * HS <= SERIAL_ATTENTION_MACS else threads)
        try:
            torch.bmm(self.q, keys.transpose(1, 2), out=scores)  # (B*NH, 1, pos+1)
            scores.mul_(self.att_scale)
            torch.softmax(scores, dim=-1, out=scores)
            torch.bmm(scores, values, out=self.y)  # (B*NH, 1, HS)
        finally:
            torch.set_num_threads(threads)

    def mlp_step(self, weights):
        """x += MLP(norm(x)), in the step buffers; GELU or ReLU² as the recipe says."""
        ln2w, ln2b, fcw, fcb, fcprojw, fcprojb = weights[6:12]
        self.norm(self.x, ln2w, ln2b)
        torch.addmm(fcb, self.h, fcw, out=self.fc)  # (B, 4C)
        if self.recipe.mlp == "relu2":
            torch.relu_(self.fc)
            self.fc.mul_(self.fc)  # relu(x)**2
        else:
            torch.ops.aten.gelu_(self.fc, approximate="tanh")
        torch.addmm(fcprojb, self.fc, fcprojw, out=self.proj)
        self.x.add_(self.proj)

    def check_buffers(self):
        """Raise InvariantError unless the cache and buffers still have the shapes they were built with."""
        cfg, B = self.config, self.B
        check_tensor(self.kv, "KV cache", (cfg.n_layer, 2, B, cfg.n_head, self.max_len, cfg.head_size), torch.float32)
        check_tensor(self.logits, "logits", (B, cfg.vocab_size), torch.float32)
        check_tensor(self.next, "next tokens", (B, 1), torch.long)
        if self.recipe.rope:
            check_tensor(self.cos, "RoPE cos table", (self.max_len, cfg.head_size // 2), torch.float32)
            check_tensor(self.rot, "RoPE buffers", (3, B * cfg.n_head, 1, cfg.head_size // 2), torch.float32)
