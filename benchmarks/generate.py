"""Generation speed: the inference engine against Hugging Face transformers' generate(use_cache=True).

Both run the same weights on the CPU, with the same threads, prompt and length, greedy; the
script checks that both produce the same tokens. The weights: a GPT-2 with random GPT-2 init
(GPT-2 small's shape by default, `--preset`), or a trained model (`--run`), such as the CPU
preset's. For each batch size it prints the median wall and CPU time of each, tokens/s,
the ratio engine / transformers, and memory: the engine's resident memory after its first and
last token (it should not grow) and the peak growth of resident memory during each run.

    .venv/bin/python benchmarks/generate.py --batch-sizes 1 8 --new-tokens 128
    llmc train --preset shakespeare-cpu --time-budget 60 --out runs/bench-cpu   # a short run of the CPU preset
    .venv/bin/python benchmarks/generate.py --run runs/bench-cpu --new-tokens 64

transformers has no model of the modern recipe, so `--run` takes a GPT-2-recipe run.
"""
import argparse
import os
import threading
import time


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpt2",
                        help="GPT-2 shape of the random model (llmc_core.gpt2 presets; default: %(default)s)")
    parser.add_argument("--run", default=None,
                        help="a trained model instead: an `llmc train` run folder (GPT-2 recipe), "
                                                    "its checkpoint.pt, a model.safetensors or an llm.c .bin")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8], help="batch sizes B")
    parser.add_argument("--prompt-len", type=int, default=16, help="prompt tokens per row")
    parser.add_argument("--new-tokens", type=int, default=128, help="tokens generated per row")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for both")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (the median is reported)")
    return parser.parse_args()


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples resident memory every 2 ms in a thread; .peak is the highest seen above the start."""

    def __enter__(self):
        self.start = self.peak_abs = resident_bytes()
        self.running = True
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()
        return self

    def sample(self):
        for _ in range(10**7):  # ~5 hours at 2 ms: far beyond any run
            if not self.running:
                return
            self.peak_abs = max(self.peak_abs, resident_bytes())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = self.peak_abs - self.start


def hf_model(model, transformers):
    """transformers' GPT2LMHeadModel holding the weights of our GPT2 (same names, same Conv1D layout)."""
    c = model.config
    hf_config = transformers.GPT2Config(vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd,
                                        n_layer=c.n_layer, n_head=c.n_head, activation_function="gelu_new",
                                        layer_norm_epsilon=1e-5, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                        bos_token_id=None, eos_token_id=None)  # no early stop: same length as ours
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    missing, unexpected = hf.transformer.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.endswith(("attn.bias", "attn.masked_bias")) for k in missing), (missing, unexpected)
    hf.tie_weights()
    return hf


def timed(fn, repeats):
    """(median wall seconds, median CPU seconds, peak RSS growth, last result) of fn() over repeats runs."""
    fn()  # warm-up: first-call costs (allocator, thread pool) are not generation speed
    walls, cpus, peaks = [], [], []
    for _ in range(repeats):
        with PeakRSS() as rss:
            w0, c0 = time.perf_counter(), time.process_time()
            result = fn()
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        peaks.append(rss.peak)
    median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    return median(walls), median(cpus), max(peaks), result


def engine_flatness(engine, prompts, n, sampling):
    """Resident bytes after the engine's first token and after its last."""
    steps = engine.stream(prompts, n, sampling)
    next(steps)
    first = resident_bytes()
    for _ in steps:
        pass
    return first, resident_bytes()


def the_model(args):
    """(GPT2, its name): the trained model at --run, else a random one of --preset's shape."""
    from llmc_core.gpt2 import GPT2, GPT2Config
    if args.run is None:
        return GPT2(GPT2Config.preset(args.preset), seed=0).eval(), f"{args.preset} (random weights)"
    from llmc_core.inference import read_model
    from llmc_core.weights import gpt2_from_state_dict
    loaded = read_model(args.run)
    if loaded.recipe.changes():
        raise SystemExit(f"{args.run} was trained with {', '.join(loaded.recipe.changes())}; transformers' GPT-2 "
                         f"cannot run it: benchmark a GPT-2-recipe run")
    return gpt2_from_state_dict(loaded.state, loaded.config).eval(), f"{args.run} (trained)"


def main():
    args = parse_args()
    import torch
    import transformers

    from llmc_core.inference import Engine, SamplingParams
    torch.set_num_threads(args.threads)
    model, name = the_model(args)
    config = model.config
    if args.prompt_len + args.new_tokens > config.block_size:
        raise SystemExit(f"a {args.prompt_len}-token prompt plus {args.new_tokens} new tokens does not fit the model's "
                         f"{config.block_size} positions: lower --new-tokens")
    hf = hf_model(model, transformers)
    print(f"{name}: {model.num_parameters() / 1e6:.1f}M parameters, prompt {args.prompt_len}, "
          f"{args.new_tokens} new tokens, greedy, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"transformers {transformers.__version__}; load average {open('/proc/loadavg').read().split()[:3]}")
    greedy = SamplingParams(temperature=0)
    for B in args.batch_sizes:
        g = torch.Generator().manual_seed(B)
        prompt = torch.randint(0, config.vocab_size, (B, args.prompt_len), generator=g)
        engine = Engine.from_model(model, batch_size=B, max_len=args.prompt_len + args.new_tokens)
        ours = timed(lambda: engine.generate(prompt.tolist(), args.new_tokens, greedy), args.repeats)
        with torch.inference_mode():
            theirs = timed(lambda: hf.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                               use_cache=True, max_new_tokens=args.new_tokens,
                                               min_new_tokens=args.new_tokens, pad_token_id=0).tolist(), args.repeats)
        same = ours[3] == theirs[3]
        first, last = engine_flatness(engine, prompt.tolist(), args.new_tokens, greedy)
        tokens = B * args.new_tokens
        print(f"B={B}: engine {tokens / ours[0]:.1f} tok/s (wall {ours[0]:.2f} s, CPU {ours[1]:.2f} s), "
              f"transformers {tokens / theirs[0]:.1f} tok/s (wall {theirs[0]:.2f} s, CPU {theirs[1]:.2f} s); "
              f"ratio engine/transformers: wall {theirs[0] / ours[0]:.2f}x, CPU {theirs[1] / ours[1]:.2f}x; "
              f"outputs identical: {same}")
        print(f"      memory: engine buffers {engine.memory_bytes() / 2**20:.0f} MiB (weights, KV cache, steps); "
              f"engine RSS after token 1 {first / 2**20:.1f} MiB, after token {args.new_tokens} {last / 2**20:.1f} MiB "
              f"({100 * (last - first) / first:+.2f}%); peak RSS growth during a run: engine "
              f"{ours[2] / 2**20:.1f} MiB, transformers {theirs[2] / 2**20:.1f} MiB")
        if not same:
            diverge = next(i for i, (a, b) in enumerate(zip(ours[3][0], theirs[3][0])) if a != b)
            print(f"      row 0 first differs at position {diverge}")
    print(f"load average after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
