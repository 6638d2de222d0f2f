"""Evaluation and interop: HellaSwag on a local file, sampling, llm.c export, --init-from, plots."""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmc_core.encodings import gpt2_encoding
from llmc_core.gpt2 import GPT2, GPT2Config
from llmc_core.train.cli import load_trained_model, main
from llmc_core.train.config import TrainConfig
from llmc_core.train.evaluate import (
    bits_per_byte,
    count_bytes,
    hellaswag_accuracy,
    hellaswag_batch,
    hellaswag_predict,
    read_hellaswag,
    token_byte_lengths,
    val_text_size,
)
from llmc_core.train.loader import ShardLoader
from llmc_core.train.plot import plot_run
from llmc_core.train.sample import generate
from llmc_core.train.shards import load_shard, write_shard
from llmc_core.train.trainer import read_log, train
from llmc_core.weights import load_gpt2, read_llmc_checkpoint, write_tiny_checkpoint

HELLASWAG = [  # the fields of hellaswag_val.jsonl that matter: ctx, four endings, label
    {"ctx": "A man is sitting on a roof. He", "label": 3, "activity_label": "Roof shingle removal",
     "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                 "is holding a rubik's cube.", "starts pulling up roofing on a roof."]},
    {"ctx": "A woman pours water into a glass. She", "label": 0,
     "endings": ["drinks it slowly.", "throws the glass at the moon while singing loudly.",
                 "paints.", "folds the water into a paper crane and mails it."]},
    {"ctx": "The kids run to the beach and", "label": 2,
     "endings": ["sleep.", "fly to the stars on a bicycle made of cheese and string.",
                 "build a sand castle near the water.", "the."]},
]


@pytest.fixture(scope="module")
def model():
    return GPT2(GPT2Config.preset("tiny-gpt2vocab"), padded_vocab=True, seed=3).eval()


@pytest.fixture
def hellaswag_file(tmp_path):
    path = tmp_path / "hellaswag_val.jsonl"
    path.write_text("".join(json.dumps(ex) + "\n" for ex in HELLASWAG))
    return path


def oracle_prediction(model, example):
    """Each ending scored alone, unpadded: mean -log p of its tokens given everything before."""
    enc = gpt2_encoding()
    ctx = enc.encode_ordinary(example["ctx"])
    scores = []
    for ending in example["endings"]:
        end = enc.encode_ordinary(" " + ending)
        tokens = torch.tensor([ctx + end])
        with torch.no_grad():
            logp = F.log_softmax(model(tokens)[0, :, :model.config.vocab_size].double(), dim=-1)
        picked = [logp[len(ctx) + i - 1, t] for i, t in enumerate(end)]
        scores.append(-float(sum(picked)) / len(end))
    return int(np.argmin(scores))


def test_hellaswag_predictions_match_scoring_each_ending_alone(model, hellaswag_file):
    examples = read_hellaswag(hellaswag_file)
    for ex in examples:
        tokens, mask, label = hellaswag_batch(ex)
        assert hellaswag_predict(model, tokens, mask, "cpu") == oracle_prediction(model, ex)
    correct, total = hellaswag_accuracy(model, examples, "cpu")
    assert total == 3
    assert correct == sum(oracle_prediction(model, ex) == ex["label"] for ex in examples)


def test_hellaswag_file_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"ctx": "x", "endings": ["a", "b"], "label": 0}) + "\n")
    with pytest.raises(ValueError, match="line 1 is not a HellaSwag example"):
        read_hellaswag(bad)
    with pytest.raises(ValueError, match="no HellaSwag file"):
        read_hellaswag(tmp_path / "missing.jsonl")


def test_top_k_1_sampling_is_greedy_decoding(model):
    prompt = gpt2_encoding().encode_ordinary("To be, or not")
    ours = generate(model, prompt, 10, top_k=1, seed=123)
    idx = torch.tensor([prompt])
    with torch.no_grad():
        for _ in range(10):  # oracle: argmax of the last position, one token at a time
            next_id = model(idx)[0, -1, :model.config.vocab_size].argmax()
            idx = torch.cat([idx, next_id.view(1, 1)], dim=1)
    assert ours == idx[0].tolist()


def test_sampling_is_seeded(model):
    a = generate(model, [50256], 12, top_k=0, seed=5)
    assert a == generate(model, [50256], 12, top_k=0, seed=5)
    assert a != generate(model, [50256], 12, top_k=0, seed=6)
    assert max(a) < 50257  # never a padding row


def test_greedy_generation_past_the_context_slides_a_window(model):
    block = model.config.block_size
    prompt = gpt2_encoding().encode_ordinary("To be, or not")
    ours = generate(model, prompt, block + 5 - len(prompt), top_k=1)  # five tokens past the context
    idx = torch.tensor([prompt])
    with torch.no_grad():
        for _ in range(block + 5 - len(prompt)):  # oracle: argmax over the last block_size tokens
            next_id = model(idx[:, -block:])[0, -1, :model.config.vocab_size].argmax()
            idx = torch.cat([idx, next_id.view(1, 1)], dim=1)
    assert len(ours) == block + 5
    assert ours == idx[0].tolist()


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("evaldata")
    rng = np.random.default_rng(20)
    for split, n in (("train", 3000), ("val", 800)):
        write_shard(d / f"toy_{split}.bin", rng.integers(0, 256, size=n))
    return d


def tiny_config(data, **changes):
    return TrainConfig(n_layer=2, n_head=2, n_embd=32, seq_len=16, vocab_size=256, batch_size=4,
                       total_batch_tokens=64, max_steps=2, warmup_steps=1, val_every=2, val_batches=2,
                       sample_every=0, train_data=str(data / "toy_train.bin"),
                       val_data=str(data / "toy_val.bin")).replace(**changes)


def test_export_to_llmc_format_and_plot(toy_data, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(toy_data), run, progress=False)
    assert main(["export", str(run), str(tmp_path / "model.bin")]) == 0
    config, state = read_llmc_checkpoint(tmp_path / "model.bin")  # weights.py's independent reader
    trained = load_trained_model(run).state_dict()
    assert (config.n_layer, config.n_embd, config.vocab_size, config.block_size) == (2, 32, 256, 16)
    for name, value in trained.items():
        np.testing.assert_array_equal(state[name].numpy(), value.numpy(), err_msg=name)
    png = plot_run(run)
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


def test_init_from_an_llmc_checkpoint_starts_from_its_weights(toy_data, tmp_path):
    path = tmp_path / "tiny.bin"
    write_tiny_checkpoint(path, "tiny-gpt2vocab", seed=7)
    run = tmp_path / "ft"
    # n_layer etc. come from the file (2 layers, C=32, V=50257), not from the config
    train(tiny_config(toy_data, init_from=str(path), n_layer=5, vocab_size=50257), run, progress=False)
    first_val = read_log(run)[0]["val_loss"]
    # oracle: the loaded weights' loss on the first two val chunks, computed directly
    reference = load_gpt2(path).eval()
    tokens = torch.from_numpy(load_shard(toy_data / "toy_val.bin")[:129].astype(np.int64))
    with torch.no_grad():
        l1 = reference(tokens[:64].view(4, 16), tokens[1:65].view(4, 16))[1]
        l2 = reference(tokens[64:128].view(4, 16), tokens[65:129].view(4, 16))[1]
    assert first_val == pytest.approx(float(l1 + l2) / 2, abs=1e-5)
    assert load_trained_model(run).config.n_layer == 2


def test_bits_per_byte_by_hand():
    # a uniform guess over 256 byte tokens: ln 256 nats per token, one byte per token = 8 bits per byte
    assert bits_per_byte(math.log(256), 10, 10) == pytest.approx(8.0, rel=1e-12)
    # 2 bits per token (ln 4 nats) over tokens of 2 bytes each: 1 bit per byte
    assert bits_per_byte(math.log(4), 50, 100) == pytest.approx(1.0, rel=1e-12)
    # 3 tokens of 1.2 nats over 7 bytes: 3.6 nats / 7 bytes / ln 2
    assert bits_per_byte(1.2, 3, 7) == pytest.approx(3.6 / 7 / 0.6931471805599453, rel=1e-12)
    with pytest.raises(ValueError, match="at least one byte"):
        bits_per_byte(1.0, 3, 0)


def test_token_bytes_count_the_decoded_text():
    enc = gpt2_encoding()
    lengths = token_byte_lengths(enc)
    text = "ROMEO.\nIs the day so young? Señor"  # ñ is 2 bytes of UTF-8
    tokens = enc.encode(text + "<|endoftext|>", allowed_special="all")
    # the oracle: tiktoken's own decoding; <|endoftext|> marks a boundary and counts no bytes
    assert count_bytes(tokens, lengths) == len(text.encode("utf-8")) == len(enc.decode_bytes(tokens[:-1]))
    with pytest.raises(ValueError, match="another tokenizer"):
        count_bytes([50257], lengths)


def test_val_bpb_is_logged_and_covers_the_whole_split(toy_shards, tmp_path):
    # toy tokens 0..255 are GPT-2's single-byte tokens: bits per byte = nats per token / ln 2
    config = TrainConfig(n_layer=1, n_head=2, n_embd=16, seq_len=16, vocab_size=256, batch_size=4,
                         total_batch_tokens=64, max_steps=2, warmup_steps=1, val_every=2, val_batches=0,
                         sample_every=0, checkpoint_every=0, train_data=str(toy_shards / "toy_train.bin"),
                         val_data=str(toy_shards / "toy_val.bin"))
    summary = train(config, tmp_path / "run", progress=False)
    records = [r for r in read_log(tmp_path / "run") if "val_loss" in r]
    assert [r["step"] for r in records] == [0, 2]
    for r in records:
        assert r["val_bpb"] == pytest.approx(r["val_loss"] / math.log(2), rel=1e-9)
    assert summary["val_bpb"] == records[-1]["val_bpb"]
    assert summary["unigram_bpb"] == pytest.approx(summary["unigram_entropy"] / math.log(2), rel=1e-9)
    # the whole split: (1500 - 1) // 64 = 23 batches of 64 targets, one byte each
    loader = ShardLoader(toy_shards / "toy_val.bin", 4, 16)
    assert loader.batches_per_pass() == 23
    assert val_text_size(loader, 23, token_byte_lengths(gpt2_encoding())) == (23 * 64, 23 * 64)


def test_plot_overlays_runs_with_compressor_baselines(toy_data, tmp_path):
    from llmc_core.train.plot import compressor_bpb, val_text
    for seed in (1, 2):
        train(tiny_config(toy_data, seed=seed), tmp_path / f"run{seed}", progress=False)
    # the baselines' text is the val shard's tokens decoded: one GPT-2 byte token per toy token
    text = val_text(tmp_path / "run1")
    assert len(text) == len(load_shard(toy_data / "toy_val.bin"))
    import bz2
    assert compressor_bpb(text)["bzip2 -9"] == 8 * len(bz2.compress(text, 9)) / len(text)
    assert main(["plot", str(tmp_path / "run1"), str(tmp_path / "run2"), "--output", str(tmp_path / "both.png")]) == 0
    assert (tmp_path / "both.png").read_bytes()[:4] == b"\x89PNG"
