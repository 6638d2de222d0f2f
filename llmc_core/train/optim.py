"""AdamW with weight-decay groups, the warmup + cosine LR schedule, and MFU accounting."""
import inspect
import math

import torch


def param_groups(model, weight_decay):
    """Two AdamW groups: 2-D weights decay, everything else does not.

    Decayed (dim >= 2): the matmul weights (c_attn, c_proj, c_fc) and the embeddings wte and
    wpe, as in llm.c and nanoGPT (wte is also the tied lm head, a matmul weight).
    Not decayed (dim < 2): biases and layernorm gains and shifts; pulling a gain towards 0
    would fight the normalization, and biases are too few to overfit with.
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def fused_adamw_available(device_type):
    """Whether this PyTorch has a fused AdamW kernel for `device_type` ("cuda" or "cpu")."""
    if "fused" not in inspect.signature(torch.optim.AdamW).parameters:
        return False
    try:  # older versions have fused=True for cuda only; probe with a throwaway tensor
        p = torch.nn.Parameter(torch.zeros(1, device=device_type))
        torch.optim.AdamW([p], fused=True)
        return True
    except (RuntimeError, ValueError):
        return False


def lr_at(step, lr, warmup_steps, max_steps, min_lr_frac):
    """The learning rate for optimizer step `step` (0-based).

    Linear warmup over the first warmup_steps (from lr/warmup_steps up to lr), then a cosine
    from lr down to min_lr_frac * lr at max_steps.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    min_lr = min_lr_frac * lr
    if max_steps <= warmup_steps:
        return min_lr
    progress = min(1.0, (step - warmup_steps) / (max_steps - warmup_steps))  # 0 -> 1
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def grad_accum_steps(total_batch_tokens, batch_size, seq_len, world_size):
    """Micro-steps per optimizer step: total_batch_tokens / (batch_size x seq_len x world_size).

    Raises ValueError when the total is not a whole number of micro-batches over all processes.
    """
    per_micro = batch_size * seq_len * world_size  # tokens that one micro-step reads on all processes
    if total_batch_tokens % per_micro:
        raise ValueError(f"total_batch_tokens={total_batch_tokens} is not a multiple of "
                         f"batch_size x seq_len x processes = {batch_size} x {seq_len} x {world_size} = "
                         f"{per_micro}; change one of them")
    return total_batch_tokens // per_micro


def flops_per_token(num_params, n_layer, n_embd, seq_len):
    """Training FLOPs per token as llm.c counts them: 6N + 6*L*C*T.

    6N: every parameter takes part in one multiply-add (2 FLOPs) forward and two backward.
    6*L*C*T: the attention matmuls (q @ k and att @ v), which have no parameters.
    """
    return 6 * num_params + 6 * n_layer * n_embd * seq_len


# Dense peak TFLOPS per GPU from the vendors' data sheets, by precision of the matmuls.
# Other GPUs: pass --peak-tflops.
GPU_PEAK_TFLOPS = (
    # (name fragment, bf16/fp16 tensor cores, tf32 tensor cores)
    ("H200", 989.0, 494.5),
    ("H100 PCIe", 756.0, 378.0),
    ("H100", 989.0, 494.5),  # SXM
    ("A100", 312.0, 156.0),
)


def peak_flops(device, dtype, override_tflops=0.0):
    """The device's peak FLOP/s for MFU, or None when unknown (CPUs: MFU is reported as n/a)."""
    if override_tflops:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for fragment, half, tf32 in GPU_PEAK_TFLOPS:
        if fragment in name:
            return (half if dtype in (torch.bfloat16, torch.float16) else tf32) * 1e12
    return None
