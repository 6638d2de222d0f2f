"""Time one forward+backward step of the numpy GPT-2 (lessons 02-03) against the reference PyTorch GPT-2.

Both run on the CPU with the same config, batch and number of threads; PyTorch is eager
(llmc_core.gpt2.GPT2, attention written out, as the numpy model does it). The optimizer step is
left out of both. Prints the median time of each and the ratio numpy / PyTorch.

    .venv/bin/python benchmarks/numpy_gpt2_step.py --threads 1
"""
import argparse
import os


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-layer", type=int, default=2, help="layers L")
    parser.add_argument("--n-head", type=int, default=4, help="heads NH")
    parser.add_argument("--n-embd", type=int, default=64, help="channels C")
    parser.add_argument("--vocab-size", type=int, default=50257, help="vocabulary V")
    parser.add_argument("--batch-size", type=int, default=8, help="batch B")
    parser.add_argument("--seq-len", type=int, default=64, help="sequence length T (also the block size)")
    parser.add_argument("--threads", type=int, default=1, help="threads for BLAS/OpenMP and torch.set_num_threads")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps of each model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each model first")
    return parser.parse_args()


def main():
    args = parse_args()
    # thread counts must be set before numpy and torch load their BLAS libraries
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import time

    import numpy as np
    import torch

    from llmc_core.course import solution_path
    from llmc_core.gpt2 import GPT2, GPT2Config
    from llmc_core.notebook import load_notebook
    gpt2_loss_and_grads = load_notebook(solution_path("03_gpt2_numpy_backward")).gpt2_loss_and_grads

    torch.set_num_threads(args.threads)
    config = GPT2Config(block_size=args.seq_len, vocab_size=args.vocab_size, n_layer=args.n_layer,
                        n_head=args.n_head, n_embd=args.n_embd)
    model = GPT2(config, seed=0)
    params = {name: p.detach().numpy().copy() for name, p in model.named_parameters()}
    grads = {name: np.zeros_like(p) for name, p in params.items()}
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, config.vocab_size, (2, args.batch_size, args.seq_len))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def numpy_step():
        for g in grads.values():
            g.fill(0.0)
        return gpt2_loss_and_grads(params, x, y, config, grads)[0]

    def torch_step():
        model.zero_grad(set_to_none=False)
        _, loss = model(tx, ty)
        loss.backward()
        return loss.item()

    def median_times(step):
        """Median wall-clock and CPU seconds of one step (CPU time is what a busy shared machine distorts least)."""
        for _ in range(args.warmup):
            step()
        wall, cpu = [], []
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            step()
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        return float(np.median(wall)), float(np.median(cpu))

    loss_np, loss_torch = numpy_step(), torch_step()
    # alternate the two, three rounds, and keep each one's best round: load changes hit both alike
    rounds_numpy, rounds_torch = [], []
    for _ in range(3):
        rounds_numpy.append(median_times(numpy_step))
        rounds_torch.append(median_times(torch_step))
    (wall_np, cpu_np), (wall_torch, cpu_torch) = min(rounds_numpy), min(rounds_torch)
    print(f"config: L={config.n_layer} NH={config.n_head} C={config.n_embd} V={config.vocab_size}, "
          f"B={args.batch_size} T={args.seq_len}, threads={args.threads}, "
          f"torch {torch.__version__}, numpy {np.__version__}")
    print(f"loss: numpy {loss_np:.6f}, pytorch {loss_torch:.6f}")
    print(f"numpy forward+backward:   {wall_np * 1e3:8.1f} ms wall, {cpu_np * 1e3:8.1f} ms CPU")
    print(f"pytorch forward+backward: {wall_torch * 1e3:8.1f} ms wall, {cpu_torch * 1e3:8.1f} ms CPU "
          "(eager, llmc_core.gpt2.GPT2)")
    print(f"ratio numpy / pytorch: {wall_np / wall_torch:.2f}x wall, {cpu_np / cpu_torch:.2f}x CPU "
          "(target: within 1.2x)")

if __name__ == "__main__":
    main()
