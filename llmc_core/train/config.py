"""Training configurations: one dataclass, and named presets of it.

A run is fully described by a `TrainConfig`; the command line starts from a preset and
overrides single fields (`llmc train --preset gpt2-124m --lr 3e-4`). The checkpoint stores
the config, so a resumed run continues with the same one.
"""
from dataclasses import asdict, dataclass, fields, replace

from llmc_core.gpt2 import GPT2Config


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
    max_steps: int = 400
    lr: float = 3e-3
    min_lr_frac: float = 0.1
    warmup_steps: int = 20
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0  # clip the global gradient norm to this (0 = no clipping)
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
    dtype: str = "auto"  # auto = bfloat16 autocast on cuda, float32 on cpu; or "float32" / "bfloat16"
    compile: str = "auto"  # auto = torch.compile on cuda, not on cpu; or "on" / "off"
    attention: str = "sdpa"  # "sdpa" (fused) or "manual"
    padded_vocab: bool = True  # pad wte to a multiple of 128 rows (50257 -> 50304)
    tf32: bool = True  # TF32 matmuls on Ampere+ GPUs for the float32 parts
    fused_adamw: bool = True  # the fused AdamW kernel where this PyTorch has it
    zero1: bool = False  # shard the optimizer state across processes (ZeroRedundancyOptimizer)
    peak_tflops: float = 0.0  # device peak for MFU; 0 = look the GPU up, n/a on CPU
    seed: int = 1337

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int) and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"TrainConfig.{f.name} must be an int >= 0, got {value!r}")
        for name in ("n_layer", "n_head", "n_embd", "seq_len", "batch_size", "total_batch_tokens", "max_steps"):
            if getattr(self, name) == 0:
                raise ValueError(f"TrainConfig.{name} must be positive, got 0")
        choices = {"dtype": ("auto", "float32", "bfloat16"), "compile": ("auto", "on", "off"),
                   "attention": ("sdpa", "manual")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"TrainConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be positive, got {self.lr}")

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


PRESETS = {
    # A small GPT on tiny Shakespeare that trains on a 2-core laptop CPU in about 5 minutes.
    # Unpadded vocabulary: on a CPU the padding buys no speed, and the loss's slice of the
    # padded logits costs a copy of the (B*T, V) tensor (measured ~15% of a step).
    "shakespeare-cpu": TrainConfig(padded_vocab=False),
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
