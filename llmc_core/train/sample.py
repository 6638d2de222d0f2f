"""Sampling text from a GPT with the inference engine: temperature, top-k, top-p, a seeded generator.

`generate` and `sample_text` take a GPT2 or modern.GPT module (the trainer samples its own model
with them); `stream_text` turns an engine's tokens into text as they arrive, for `llmc generate`.
"""
import codecs

import torch

from llmc_core.encodings import GPT2_EOT, gpt2_encoding
from llmc_core.inference import Engine, SamplingParams
from llmc_core.inference.engine import own_pieces
from llmc_core.inference.sampling import Sampler


def generate(model, prompt_tokens, max_new_tokens, temperature=1.0, top_k=50, seed=0, device="cpu", top_p=1.0):
    """Extend `prompt_tokens` (a list of ids) by max_new_tokens sampled tokens; returns all ids.

    Each new token is drawn from softmax(logits / temperature) restricted to the top_k most
    likely tokens (top_k=0: all V) and to the top_p nucleus; temperature=0 is greedy. The
    generator is seeded, so a seed fixes the text. What fits in the model's block_size
    positions comes from the engine's KV cache; tokens past that see a sliding window of the
    last block_size tokens, recomputed for each token (learned positions cannot go further).
    """
    prompt = list(prompt_tokens)
    top_k = min(top_k, model.config.vocab_size) if isinstance(top_k, int) else top_k
    sampling = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    if own_pieces(model):  # a learner's own functions (lesson 09): run them, not the engine's copies of ours
        return generate_recomputing(model, prompt, max_new_tokens, sampling, device)
    if not isinstance(max_new_tokens, int):  # the engine names the problem
        return Engine.from_model(model, device=device).generate([prompt], max_new_tokens, sampling)[0]
    cached = min(max_new_tokens, model.config.block_size - len(prompt))
    tokens = prompt
    if cached > 0:
        engine = Engine.from_model(model, max_len=len(prompt) + cached, device=device)
        tokens = engine.generate([prompt], cached, sampling)[0]
    if max_new_tokens > max(cached, 0):
        tokens = generate_recomputing(model, tokens, max_new_tokens - max(cached, 0), sampling, device)
    return tokens


@torch.no_grad()
def generate_recomputing(model, prompt, max_new_tokens, sampling, device="cpu"):
    """`generate` by the model's own forward pass over the whole context for every token: no cache.

    For a model the engine does not reproduce: a modern.GPT computing with a learner's own pieces.
    """
    V = model.config.vocab_size
    sampler = Sampler(sampling, 1, V, device)
    tokens = torch.tensor([list(prompt)], dtype=torch.long, device=device)
    chosen = torch.empty(1, 1, dtype=torch.long, device=device)
    was_training = model.training
    model.eval()  # no dropout while sampling
    for _ in range(max_new_tokens):
        logits = model(tokens[:, -model.config.block_size:])  # (1, T, V), or (1, T, Vp) when padded
        sampler.choose(logits[:, -1, :V].float().contiguous(), chosen)
        tokens = torch.cat([tokens, chosen], dim=1)
    model.train(was_training)
    return tokens[0].tolist()


def start_token(vocab_size: int) -> int:
    """The token a new document starts with: <|endoftext|>, or 0 for a toy vocabulary smaller than GPT-2's."""
    return GPT2_EOT if GPT2_EOT < vocab_size else 0


def sample_text(model, prompt="", max_new_tokens=64, temperature=1.0, top_k=50, seed=0, device="cpu"):
    """Text sampled from `model` after `prompt` (an empty prompt starts a new document).

    The model sees <|endoftext|> first, as at the start of every training document; a toy
    model whose vocabulary is smaller than GPT-2's starts from token 0 instead. The sample
    ends at the model's context: at most block_size - 1 - len(prompt tokens) new tokens.
    """
    enc = gpt2_encoding()
    prompt_ids = [start_token(model.config.vocab_size)] + enc.encode_ordinary(prompt)
    room = model.config.block_size - len(prompt_ids)
    if room < 1:
        raise ValueError(f"the prompt is {len(prompt_ids) - 1} tokens; the model sees {model.config.block_size} "
                         f"positions and needs one for <|endoftext|> and one to generate: shorten the prompt")
    n_new = min(max_new_tokens, room) if isinstance(max_new_tokens, int) else max_new_tokens
    tokens = generate(model, prompt_ids, n_new, temperature, top_k, seed, device)
    return enc.decode(tokens[1:])


def stream_text(engine: Engine, enc, prompt_ids, max_new_tokens, sampling, stop_tokens=()):
    """Yield the text of one row (batch_size 1) piece by piece, as its tokens are chosen.

    A character can span tokens (UTF-8 bytes split by BPE): an incremental decoder holds the
    bytes of an unfinished character until the token that completes it arrives.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    stop = set(stop_tokens)
    for (token,) in engine.stream([list(prompt_ids)], max_new_tokens, sampling, stop_tokens):
        if token is None or token in stop:
            break
        yield decoder.decode(enc.decode_single_token_bytes(token))
    yield decoder.decode(b"", final=True)
