"""Sampling text from a trained GPT-2: temperature and top-k, with a seeded generator."""
import torch
import torch.nn.functional as F

from llmc_core.encodings import GPT2_EOT, gpt2_encoding


@torch.no_grad()
def generate(model, prompt_tokens, max_new_tokens, temperature=1.0, top_k=50, seed=0, device="cpu"):
    """Extend `prompt_tokens` (a list of ids) by max_new_tokens sampled tokens; returns all ids.

    Each new token is drawn from softmax(logits / temperature) restricted to the top_k most
    likely tokens (top_k=0: all V). The generator is seeded, so a seed fixes the text.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}; use a small value like 0.1 for near-greedy")
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    idx = torch.tensor([prompt_tokens], dtype=torch.long, device=device)  # (1, T)
    V = model.config.vocab_size
    for _ in range(max_new_tokens):
        context = idx[:, -model.config.block_size:]  # the model sees at most block_size positions
        logits = model(context)[:, -1, :V].float() / temperature  # (1, V): only the last position predicts
        if top_k:
            kth = torch.topk(logits, min(top_k, V)).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        next_id = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)  # (1, 1)
        idx = torch.cat([idx, next_id], dim=1)
    model.train(was_training)
    return idx[0].tolist()


def sample_text(model, prompt="", max_new_tokens=64, temperature=1.0, top_k=50, seed=0, device="cpu"):
    """Text sampled from `model` after `prompt` (an empty prompt starts a new document).

    The model sees <|endoftext|> first, as at the start of every training document; a toy
    model whose vocabulary is smaller than GPT-2's starts from token 0 instead.
    """
    enc = gpt2_encoding()
    start = GPT2_EOT if GPT2_EOT < model.config.vocab_size else 0
    tokens = generate(model, [start] + enc.encode_ordinary(prompt), max_new_tokens, temperature, top_k, seed, device)
    return enc.decode(tokens[1:])
