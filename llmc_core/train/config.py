"""Training configurations: one dataclass, and named presets of it.

A run is fully described by a `TrainConfig`; the command line starts from a preset and
overrides single fields (`llmc train --preset gpt2-124m --lr 3e-4`). The checkpoint stores
the config, so a resumed run continues with the same one.
"""
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from llmc_core.gpt2 import GPT2Config
from llmc_core.modern import RECIPES


def flag(name):
    """The command-line flag of a config field: n_layer -> --n-layer."""
    return "--" + name.replace("_", "-")


def setting(default, help):
    """A TrainConfig field: its default and what it means, which `llmc train --help` shows beside its flag."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    # model: GPT-2 of n_layer blocks, n_head heads, n_embd channels, context seq_len (T)
    n_layer: int = setting(4, "transformer blocks L")
    n_head: int = setting(4, "attention heads NH")
    n_embd: int = setting(64, "channels C")
    seq_len: int = setting(128, "context length T of each training sequence (also the model's block size)")
    vocab_size: int = setting(50257, "vocabulary size V (GPT-2: 50257)")
    tokenizer: str = setting("gpt2", "the tokenizer that made the shards: 'gpt2' or a tokenizer file "
                                     "(`llmc tokenizer train`; for bits per byte and samples)")
    init_from: str = setting("scratch", "'scratch', a GPT-2 size to fine-tune (gpt2, gpt2-medium, ...: downloaded "
                                        "once), or a .bin (llm.c) / .safetensors weights file")
    # data: a name that `llmc data prepare` knows, or explicit shard patterns
    data: str = setting("tinyshakespeare", "dataset name, as `llmc data prepare` writes it "
                                           "(tinyshakespeare, tinystories, fineweb-edu)")
    train_data: str = setting("", "glob of train shards (overrides --data; default: DATA_DIR/DATA/*_train*.bin)")
    val_data: str = setting("", "glob of validation shards (overrides --data; default: DATA_DIR/DATA/*_val*.bin)")
    # batch: micro-batches of batch_size x seq_len tokens, accumulated up to total_batch_tokens
    batch_size: int = setting(8, "micro-batch size B per process")
    total_batch_tokens: int = setting(1024, "tokens per optimizer step, summed over micro-steps and processes; "
                                            "gradient accumulation makes up the difference")
    # optimizer: AdamW with linear warmup then cosine decay to min_lr_frac * lr
    max_steps: int = setting(400, "optimizer steps (with a time budget: at most this many); the LR schedule ends "
                                  "here (given alone, it replaces the preset's time budget)")
    time_budget: float = setting(0.0, "wall time for the whole run, e.g. 5m, 300s, 1h (seconds in a TrainConfig); "
                                      "the LR decay is fitted to the steps that fit (0: none)")
    budget_clock: str = setting("wall", "'wall' (default) or 'cpu': the time budget counts this process's CPU "
                                        "seconds, so that runs on a shared machine compare as if each had its "
                                        "cores alone (use with --threads 1)")
    lr: float = setting(3e-3, "peak learning rate")
    min_lr_frac: float = setting(0.1, "final learning rate as a fraction of --lr")
    warmup_steps: int = setting(20, "linear LR warmup steps")
    weight_decay: float = setting(0.1, "AdamW weight decay of 2-D weights (biases and layernorms: none)")
    beta1: float = setting(0.9, "AdamW beta1")
    beta2: float = setting(0.95, "AdamW beta2")
    eps: float = setting(1e-8, "AdamW epsilon")
    grad_clip: float = setting(1.0, "clip the global gradient norm to this (0: no clipping)")
    dropout: float = setting(0.0, "fraction of activations zeroed while training, against memorising a small "
                                  "corpus over many epochs (0: off)")
    # evaluation, samples and checkpoints, every so many steps (0 = never)
    val_every: int = setting(50, "evaluate validation loss every N steps (0: never)")
    val_batches: int = setting(0, "validation batches per evaluation, over all processes "
                                  "(0: the whole validation split)")
    sample_every: int = setting(100, "print a sample every N steps (0: never)")
    sample_tokens: int = setting(48, "tokens per sample")
    checkpoint_every: int = setting(100, "write checkpoint.pt every N steps (0: only at the end)")
    hellaswag_every: int = setting(0, "HellaSwag accuracy every N steps (0: never)")
    hellaswag_path: str = setting("", "local HellaSwag jsonl (default: download the validation set)")
    hellaswag_examples: int = setting(0, "use only the first N HellaSwag examples (0: all)")
    # system
    device: str = setting("auto", "'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1', ...")
    threads: int = setting(0, "CPU threads for PyTorch (0: PyTorch's default, one per core)")
    dtype: str = setting("auto", "autocast dtype: 'auto' (bfloat16 on GPU, float32 on CPU), 'float32', 'bfloat16'")
    compile: str = setting("auto", "torch.compile: 'auto' (on for GPUs), 'on', 'off'")
    attention: str = setting("sdpa", "'sdpa' (fused scaled_dot_product_attention) or 'manual'")
    padded_vocab: bool = setting(True, "pad the vocabulary to a multiple of 128 (50257 -> 50304)")
    tf32: bool = setting(True, "TF32 matmuls on GPUs (Ampere and later), for the float32 parts")
    fused_adamw: bool = setting(True, "use the fused AdamW kernel where available")
    zero1: bool = setting(False, "ZeRO stage 1: shard the AdamW state across processes (torchrun only; "
                                 "ZeroRedundancyOptimizer)")
    peak_tflops: float = setting(0.0, "device peak TFLOPS for MFU (0: look the GPU up; n/a on CPU)")
    seed: int = setting(1337, "random seed of the model initialization and of samples")
    # the modern recipe (llmc_core.modern); every one off = GPT-2; `--recipe modern` sets them together
    rope: bool = setting(False, "rotary position embeddings instead of learned positions (modern recipe)")
    norm: str = setting("layer", "'layer' (LayerNorm, GPT-2) or 'rms' (RMSNorm)")
    qk_norm: bool = setting(False, "RMSNorm of each head's queries and keys")
    mlp: str = setting("gelu", "'gelu' (GPT-2) or 'relu2' (ReLU squared)")
    softcap: float = setting(0.0, "cap the logits at +-X with X tanh(logits / X) (0: no cap)")
    untie_head: bool = setting(False, "an lm head of its own instead of the token embedding's transpose")
    optimizer: str = setting("adamw", "'adamw', or 'muon' (Muon for the blocks' matrices, AdamW for embeddings, "
                                      "head, gains, biases)")
    muon_lr: float = setting(0.02, "Muon's peak learning rate (scheduled like --lr)")
    muon_momentum: float = setting(0.95, "Muon's momentum")

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
