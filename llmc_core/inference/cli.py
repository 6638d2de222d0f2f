"""`llmc generate`: text from any model the engine loads, printed as the tokens arrive."""
from llmc_core.inference.checks import require


def tokenizer_for(tokenizer):
    """The checkpoint's own tokenizer, else GPT-2's."""
    from llmc_core.encodings import gpt2_encoding
    return tokenizer if tokenizer is not None else gpt2_encoding()


def prompt_ids(enc, prompt: str, vocab_size: int) -> list[int]:
    """The prompt's token ids after the start-of-document token (<|endoftext|>, or 0 for a toy vocabulary)."""
    eot = getattr(enc, "eot_token", None)
    start = eot if eot is not None and eot < vocab_size else 0
    return [start] + enc.encode_ordinary(prompt)


def cmd_generate(args):
    from llmc_core.inference import SamplingParams, load_engine
    from llmc_core.train.sample import stream_text
    require(args.num_samples >= 1, f"--num-samples must be at least 1, got {args.num_samples}")
    engine, tokenizer = load_engine(args.model, batch_size=1, device=args.device, n_head=args.n_head)
    enc = tokenizer_for(tokenizer)
    ids = prompt_ids(enc, args.prompt, engine.config.vocab_size)
    stop = list(args.stop) + ([ids[0]] if args.stop_at_eot else [])
    for i in range(args.num_samples):
        sampling = SamplingParams(temperature=0.0 if args.greedy else args.temperature, top_k=args.top_k,
                                  top_p=args.top_p, seed=args.seed + i)
        print(f"--- sample {i + 1} ---\n{args.prompt}", end="", flush=True)
        for piece in stream_text(engine, enc, ids, args.tokens, sampling, stop):
            print(piece, end="", flush=True)  # each token's text as soon as it is chosen
        print()
    return 0


def register(subparsers):
    """Add `generate` to the `llmc` command."""
    p = subparsers.add_parser("generate", help="generate text with the KV-cache inference engine, streamed",
                              description="Generate text from an `llmc train` run (GPT-2 or the modern recipe), "
                                          "a Hugging Face GPT-2 model.safetensors or an llm.c .bin model, "
                                          "printing tokens as they come.")
    p.add_argument("model", help="a run folder, its checkpoint.pt, a model.safetensors or an llm.c .bin")
    p.add_argument("--prompt", default="", help="text to continue (default: start a new document)")
    p.add_argument("--tokens", type=int, default=100, help="new tokens at most (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="softmax temperature, 0 = greedy (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=50,
                   help="sample among the k most likely tokens, 0 = all (default: %(default)s)")
    p.add_argument("--top-p", type=float, default=1.0,
                   help="nucleus: the most likely tokens holding this much probability (default: %(default)s)")
    p.add_argument("--greedy", action="store_true", help="always the most likely token (same as --temperature 0)")
    p.add_argument("--stop", type=int, action="append", default=[], metavar="ID",
                   help="stop at this token id (repeatable)")
    p.add_argument("--stop-at-eot", action="store_true", help="stop at the end-of-document token")
    p.add_argument("--num-samples", type=int, default=1,
                   help="how many samples, seeds SEED, SEED+1, ... (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="device (default: %(default)s)")
    p.add_argument("--n-head", type=int, default=None,
                   help="heads of a .safetensors model without config.json (default: C / 64)")
    p.set_defaults(run=cmd_generate)

