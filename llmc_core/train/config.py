"""Training configurations: one dataclass, and named presets of it.

A run is fully described by a `TrainConfig`; the command line starts from a preset and
overrides single fields (`llmc train --preset gpt2-124m --lr 3e-4`). The checkpoint stores
the config, so a resumed run continues with the same one.
"""
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from llmc_core.gpt2 import GPT2Config
from llmc_core.modern import RECIPES


def flag(name):
    """The command-line flag of a config field: n_layer -> --n-layer."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class TrainConfig:
    # model: GPT-2 of n_layer blocks, n_head heads, n_embd channels, context seq_len (T)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 64
    seq_len: int = 128  # T, also the model's block_size
    vocab_size: int = 50257  # GPT-2 tokens
    tokenizer: str = "gpt2"  # what made the shards: "gpt2" or a tokenizer file (`llmc tokenizer train`)
    init_from: str = "scratch"  # or a GPT-2 size ("gpt2", "gpt2-medium", ...) to fine-tune real weights
    # data: a name that `llmc data prepare` knows, or explicit shard patterns
    data: str = "tinyshakespeare"
    train_data: str = ""  # glob of train shards; empty = <data_dir>/<data>/*_train*.bin
    val_data: str = ""  # glob of val shards; empty = <data_dir>/<data>/*_val*.bin
    # batch: micro-batches of batch_size x seq_len tokens, accumulated up to total_batch_tokens
    batch_size: int = 8  # B per process and micro-step
    total_batch_tokens: int = 1024  # tokens per optimizer step, summed over micro-steps and processes
    # optimizer: AdamW with linear warmup then cosine decay to min_lr_frac * lr
    max_steps: int = 400  # with time_budget: at most this many
    time_budget: float = 0.0  # seconds of wall time for the whole run, the LR decay fitted to it; 0 = none
    budget_clock: str = "wall"  # or "cpu": the budget counts this process's CPU seconds (fair on a shared machine)
    lr: float = 3e-3
    min_lr_frac: float = 0.1
    warmup_steps: int = 20
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0  # clip the global gradient norm to this (0 = no clipping)
    dropout: float = 0.0  # fraction of activations zeroed while training; small data, many epochs: 0.1-0.2
    # evaluation, samples and checkpoints, every so many steps (0 = never)
    val_every: int = 50
    val_batches: int = 0  # summed over processes; 0 = the whole validation split
    sample_every: int = 100
    sample_tokens: int = 48
    checkpoint_every: int = 100
    hellaswag_every: int = 0
    hellaswag_path: str = ""  # a local HellaSwag jsonl; empty = download the validation set
    hellaswag_examples: int = 0  # evaluate only the first N examples (0 = all)
    # system
    device: str = "auto"  # auto = cuda when available, else cpu
    threads: int = 0  # CPU threads for PyTorch; 0 = PyTorch's default (the cores it sees)
    dtype: str = "auto"  # auto = bfloat16 autocast on cuda, float32 on cpu; or "float32" / "bfloat16"
    compile: str = "auto"  # auto = torch.compile on cuda, not on cpu; or "on" / "off"
    attention: str = "sdpa"  # "sdpa" (fused) or "manual"
    padded_vocab: bool = True  # pad wte to a multiple of 128 rows (50257 -> 50304)
    tf32: bool = True  # TF32 matmuls on Ampere+ GPUs for the float32 parts
    fused_adamw: bool = True  # the fused AdamW kernel where this PyTorch has it
    zero1: bool = False  # shard the optimizer state across processes (ZeroRedundancyOptimizer)
    peak_tflops: float = 0.0  # device peak for MFU; 0 = look the GPU up, n/a on CPU
    seed: int = 1337
    # the modern recipe (llmc_core.modern); every one off = GPT-2; `--recipe modern` sets them together
    rope: bool = False  # rotary position embeddings instead of the learned wpe
    norm: str = "layer"  # "layer" (LayerNorm) or "rms" (RMSNorm)
    qk_norm: bool = False  # RMSNorm of each head's queries and keys
    mlp: str = "gelu"  # "gelu" or "relu2"
    softcap: float = 0.0  # cap the logits at +-softcap with tanh (0 = no cap)
    untie_head: bool = False  # an lm head of its own instead of wte's transpose
    optimizer: str = "adamw"  # "adamw", or "muon" (Muon for the blocks' matrices, AdamW for the rest)
    muon_lr: float = 0.02  # Muon's peak LR (the schedule scales it as it scales lr)
    muon_momentum: float = 0.95

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int) and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"{flag(f.name)} must be an int >= 0, got {value!r}")
        for name in ("n_layer", "n_head", "n_embd", "seq_len", "batch_size", "total_batch_tokens", "max_steps"):
            if getattr(self, name) == 0:
                raise ValueError(f"{flag(name)} must be positive, got 0")
        choices = {"dtype": ("auto", "float32", "bfloat16"), "compile": ("auto", "on", "off"),
                   "budget_clock": ("wall", "cpu"),
                   "attention": ("sdpa", "manual"), "norm": ("layer", "rms"), "mlp": ("gelu", "relu2"),
                   "optimizer": ("adamw", "muon")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{flag(name)} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.lr <= 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        if self.time_budget < 0:
            raise ValueError(f"--time-budget must be positive (or 0 for none), got {self.time_budget}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.softcap < 0:
            raise ValueError(f"--softcap must be >= 0 (0 for none), got {self.softcap}")
        if self.muon_lr <= 0:
            raise ValueError(f"--muon-lr must be positive, got {self.muon_lr}")

    def model_config(self):
        return GPT2Config(block_size=self.seq_len, vocab_size=self.vocab_size,
                          n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def replace(self, **changes):
        return replace(self, **changes)


# A 4,096-token BPE tokenizer trained by llmc_core.tokenizer.train_tokenizer on tiny Shakespeare's
# training text (benchmarks/train_cpu_sweep.py writes it; llmc_core/data/README.md says how).
SHAKESPEARE_TOKENIZER = str(Path(__file__).resolve().parent.parent / "data" / "shakespeare-4096.tiktoken")

PRESETS = {
    # A small GPT on tiny Shakespeare for a 2-core laptop CPU: a 5-minute wall-clock budget, the LR
    # decay fitted to the steps that fit in it. Chosen by the sweeps in benchmarks/RESULTS.md: with
    # GPT-2's 50,257 tokens a CPU step spends its time on the (B, T, V) logits (a third of it in the
    # kernel, allocating them), while a 4,096-token tokenizer trained on the corpus keeps nearly
    # GPT-2's bytes per token (3.6 vs 3.2) at a fraction of the cost. Unpadded vocabulary: on a CPU
    # padding buys no speed and the loss's slice of the padded logits costs a copy. The modern
    # recipe (lesson 09) beat GPT-2's at this size and budget; `--recipe gpt2` trains GPT-2's.
    # Five minutes are about eight passes over the 300k training tokens: dropout keeps the model
    # from memorising them (without it the validation loss rises again near the end).
    "shakespeare-cpu": TrainConfig(
        tokenizer=SHAKESPEARE_TOKENIZER, vocab_size=4096, n_layer=4, n_head=4, n_embd=128, seq_len=128,
        batch_size=16, total_batch_tokens=2048, lr=2e-3, warmup_steps=20, max_steps=1_000_000,
        time_budget=300.0, val_every=100, sample_every=1_000_000, sample_tokens=200, checkpoint_every=100,
        padded_vocab=False, dropout=0.1, **RECIPES["modern"]),
    # GPT-2 (124M) with the GPT-3 recipe that llm.c's scripts/run_gpt2_124M.sh uses:
    # 2**19 = 524,288 tokens per step, peak LR 6e-4 after 700 warmup steps, cosine decay to 0,
    # weight decay 0.1, grad clip 1.0, 18,865 steps = ~10B tokens of FineWeb(-Edu).
    "gpt2-124m": TrainConfig(
        n_layer=12, n_head=12, n_embd=768, seq_len=1024, data="fineweb-edu",
        batch_size=64, total_batch_tokens=524288, max_steps=18865, lr=6e-4, min_lr_frac=0.0,
        warmup_steps=700, weight_decay=0.1, val_every=250, val_batches=20, sample_every=1000,
        sample_tokens=64, checkpoint_every=5000, hellaswag_every=250),
}


def preset(name):
    """The TrainConfig preset `name`."""
    if name not in PRESETS:
        raise ValueError(f"unknown training preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
