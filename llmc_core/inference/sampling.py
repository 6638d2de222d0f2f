"""Choosing the next token from logits: greedy, or sampled with temperature, top-k and top-p.

Every buffer a step needs is made once, in `Sampler.__init__`; `Sampler.choose` only writes into
them (`out=` arguments and in-place ops), so sampling allocates nothing per token. The draws come
from one seeded `torch.Generator`, so a seed fixes every token, bit for bit.
"""
import math
from dataclasses import dataclass

import torch

from llmc_core.inference.checks import check_tensor, require, require_int

MAX_TEMPERATURE = 100.0  # beyond this the distribution is uniform to float32 precision anyway
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit int


@dataclass(frozen=True)
class SamplingParams:
    """How to pick each token. temperature=0 (or top_k=1) is greedy: the most likely token.

    top_k=0 keeps all V tokens; top_p=1.0 keeps the whole distribution (no nucleus cut).
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self):
        t, p = self.temperature, self.top_p
        require(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)
                and 0.0 <= t <= MAX_TEMPERATURE,
                f"temperature must be a number in [0, {MAX_TEMPERATURE}] (0: greedy), got {t!r}")
        require(isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) and 0.0 < p <= 1.0,
                f"top_p must be a number in (0, 1] (1: no nucleus cut), got {p!r}")
        require_int(self.top_k, "top_k (0: all tokens)", 0, 2**31 - 1)
        require_int(self.seed, "seed", 0, MAX_SEED)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0 or self.top_k == 1


class Sampler:
    """Picks one token per row of (B, V) logits into a (B, 1) buffer, without allocating.

    Sampling is by inverting the cumulative distribution: draw u uniform in [0, 1), take the first
    token whose cumulative probability exceeds u. A token of probability 0 (cut by top-k or top-p)
    adds nothing to the cumulative sum, so it can never be the first to exceed u.
    """

    def __init__(self, params: SamplingParams, batch_size: int, vocab_size: int, device):
        require(params.top_k <= vocab_size, f"top_k={params.top_k} is larger than the vocabulary ({vocab_size})")
        self.params, self.B, self.V = params, batch_size, vocab_size
        self.generator = torch.Generator(device=device).manual_seed(params.seed)
        B, V, k = batch_size, vocab_size, max(params.top_k, 1)
        new = dict(device=device)
        # Python numbers in an op become a new 0-d tensor on every call: keep them as tensors here
        self.temperature = torch.tensor(max(params.temperature, 1e-30), **new)
        self.top_p = torch.tensor(params.top_p, **new)
        self.probs, self.cdf = torch.empty(B, V, **new), torch.empty(B, V, **new)
        self.uniform, self.total = torch.empty(B, 1, **new), torch.empty(B, 1, **new)
        self.drop = torch.empty(B, V, dtype=torch.bool, **new)  # True: token cut by top-k / top-p
        self.top_values = torch.empty(B, k, **new)
        self.top_indices = torch.empty(B, k, dtype=torch.long, **new)
        n_sort = V if params.top_p < 1.0 else 1  # the nucleus needs the sorted distribution
        self.sorted_values = torch.empty(B, n_sort, **new)
        self.sorted_indices = torch.empty(B, n_sort, dtype=torch.long, **new)
        self.sorted_probs = torch.empty(B, n_sort, **new)
        self.mass_before = torch.empty(B, n_sort, **new)
        self.sorted_drop = torch.empty(B, n_sort, dtype=torch.bool, **new)

    def choose(self, logits: torch.Tensor, out: torch.Tensor):
        """Write the next token of each row into out (B, 1); logits (B, V) are overwritten."""
        if self.params.greedy:
            torch.argmax(logits, dim=-1, keepdim=True, out=out)
            return
        logits.div_(self.temperature)
        if self.params.top_k:
            self.cut_top_k(logits)
        if self.params.top_p < 1.0:
            self.cut_top_p(logits)
        torch.softmax(logits, dim=-1, out=self.probs)
        torch.cumsum(self.probs, dim=-1, out=self.cdf)
        self.total.copy_(self.cdf[:, -1:])
        self.cdf.div_(self.total)  # x / x is exactly 1: the last entry is 1.0 > u, whatever the rounding
        self.uniform.uniform_(generator=self.generator)  # (B, 1) in [0, 1)
        torch.searchsorted(self.cdf, self.uniform, right=True, out=out)  # first index with cdf > u

    def cut_top_k(self, logits: torch.Tensor):
        """Set every logit below the k-th largest of its row to -inf (ties with the k-th stay)."""
        torch.topk(logits, self.params.top_k, dim=-1, out=(self.top_values, self.top_indices))
        torch.lt(logits, self.top_values[:, -1:], out=self.drop)
        logits.masked_fill_(self.drop, float("-inf"))

    def cut_top_p(self, logits: torch.Tensor):
        """Keep the smallest set of most likely tokens whose probability reaches top_p; -inf the rest."""
        # topk of all V is a sort that writes only into our buffers (torch.sort allocates its indices)
        torch.topk(logits, self.V, dim=-1, out=(self.sorted_values, self.sorted_indices))
        torch.softmax(self.sorted_values, dim=-1, out=self.sorted_probs)
        torch.cumsum(self.sorted_probs, dim=-1, out=self.mass_before)
        self.mass_before.sub_(self.sorted_probs)  # mass of the tokens strictly more likely than this one
        # drop a token once the more likely ones already reach top_p; the first token always stays
        torch.ge(self.mass_before, self.top_p, out=self.sorted_drop)
        self.drop.scatter_(-1, self.sorted_indices, self.sorted_drop)  # back to vocabulary order
        logits.masked_fill_(self.drop, float("-inf"))

    def check_buffers(self, logits: torch.Tensor, out: torch.Tensor):
        """Raise InvariantError unless logits and out have the shapes this sampler was built for."""
        check_tensor(logits, "logits", (self.B, self.V), torch.float32)
        check_tensor(out, "next-token buffer", (self.B, 1), torch.long)
