"""llm.c token shards and the sharded data loader: format, validation, order, ranks, resume."""
import struct

import numpy as np
import pytest
import torch

from llmc_core.train.loader import ShardLoader
from llmc_core.train.shards import (
    check_shards_length,
    check_shards_tokenizer,
    load_shard,
    read_shard_header,
    read_shard_info,
    write_shard,
)


def write_shards(directory, sizes, seed):
    """Shards of random tokens with the given sizes; returns the concatenated tokens."""
    rng = np.random.default_rng(seed)
    parts = [rng.integers(0, 50257, size=n) for n in sizes]
    for i, part in enumerate(parts):
        write_shard(directory / f"toy_train_{i:06d}.bin", part)
    return np.concatenate(parts)


def test_shard_layout_matches_llmc_format(tmp_path):
    tokens = np.array([50256, 0, 1, 65535, 15496, 995])
    write_shard(tmp_path / "a.bin", tokens)
    raw = (tmp_path / "a.bin").read_bytes()
    # the layout, decoded independently with struct: 256 little-endian int32, then uint16 tokens
    header = struct.unpack("<256i", raw[:1024])
    assert header[:3] == (20240520, 1, len(tokens))
    assert set(header[3:]) == {0}
    assert struct.unpack(f"<{len(tokens)}H", raw[1024:]) == tuple(tokens)
    assert len(raw) == 1024 + 2 * len(tokens)


def test_shard_roundtrip(tmp_path):
    tokens = np.random.default_rng(1).integers(0, 2**16, size=1000)
    write_shard(tmp_path / "r.bin", tokens)
    assert read_shard_header(tmp_path / "r.bin") == 1000
    np.testing.assert_array_equal(load_shard(tmp_path / "r.bin"), tokens)


def corrupt(path, kind):
    raw = bytearray(path.read_bytes())
    if kind == "magic":
        raw[0:4] = struct.pack("<i", 20240801)
    elif kind == "version":
        raw[4:8] = struct.pack("<i", 7)
    elif kind == "truncated":
        raw = raw[:-3]
    elif kind == "short":
        raw = raw[:100]
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("kind, message", [("magic", "magic 20240801"), ("version", "version 7"),
                                           ("truncated", "truncated"), ("short", "shorter than")])
def test_bad_shard_errors_name_the_file(tmp_path, kind, message):
    path = tmp_path / f"bad_{kind}.bin"
    write_shard(path, np.arange(100))
    corrupt(path, kind)
    with pytest.raises(ValueError, match=message) as e:
        read_shard_header(path)
    assert path.name in str(e.value)


def test_write_rejects_tokens_outside_uint16(tmp_path):
    with pytest.raises(ValueError, match="uint16"):
        write_shard(tmp_path / "x.bin", np.array([0, 70000]))


def test_missing_shards_say_how_to_prepare(tmp_path):
    with pytest.raises(ValueError, match="llmc data prepare"):
        ShardLoader(str(tmp_path / "*.bin"), 2, 4)


def test_batches_are_consecutive_windows_across_shards(tmp_path):
    B, T = 2, 4
    tokens = write_shards(tmp_path, [50, 40], seed=2)
    loader = ShardLoader(str(tmp_path / "toy_train_*.bin"), B, T)
    # shard 0 gives floor((50 - 1) / 8) = 6 batches, shard 1 floor(39 / 8) = 4, then shard 0 again
    starts = [8 * i for i in range(6)] + [50 + 8 * i for i in range(4)] + [0]
    for start in starts:
        x, y = loader.next_batch()
        np.testing.assert_array_equal(x.numpy(), tokens[start:start + B * T].reshape(B, T))
        np.testing.assert_array_equal(y.numpy(), tokens[start + 1:start + B * T + 1].reshape(B, T))
        assert x.dtype == torch.int64
    assert loader.epoch == 1


def test_two_ranks_read_what_one_rank_reads_in_two_micro_steps(tmp_path):
    B, T = 2, 3
    write_shards(tmp_path, [200], seed=3)
    pattern = str(tmp_path / "*.bin")
    single = ShardLoader(pattern, B, T, micro_steps=2)  # gradient accumulation over 2 micro-batches
    ranks = [ShardLoader(pattern, B, T, rank=r, world_size=2) for r in range(2)]
    for _ in range(20):  # several wraps of the 200-token shard
        for r in range(2):
            x1, y1 = single.next_batch()
            x2, y2 = ranks[r].next_batch()
            assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_restored_loader_continues_identically(tmp_path):
    write_shards(tmp_path, [60, 45, 70], seed=4)
    pattern = str(tmp_path / "*.bin")
    a = ShardLoader(pattern, 2, 5)
    for _ in range(9):
        a.next_batch()
    b = ShardLoader(pattern, 2, 5)
    b.load_state_dict(a.state_dict())
    for _ in range(25):
        xa, _ = a.next_batch()
        xb, _ = b.next_batch()
        assert torch.equal(xa, xb)


def test_restore_with_another_batch_shape_is_refused(tmp_path):
    write_shards(tmp_path, [100], seed=5)
    state = ShardLoader(str(tmp_path / "*.bin"), 2, 5).state_dict()
    with pytest.raises(ValueError, match="same batch shape"):
        ShardLoader(str(tmp_path / "*.bin"), 4, 5).load_state_dict(state)


def test_shard_too_small_for_one_step(tmp_path):
    write_shards(tmp_path, [10], seed=6)
    with pytest.raises(ValueError, match="fewer than the 17"):  # 2 x 4 x 2 ranks + 1
        ShardLoader(str(tmp_path / "*.bin"), 2, 4, rank=0, world_size=2)


def test_resume_on_fewer_processes_with_more_micro_steps(tmp_path):
    write_shards(tmp_path, [150], seed=7)
    pattern = str(tmp_path / "*.bin")
    ranks = [ShardLoader(pattern, 2, 3, rank=r, world_size=2) for r in range(2)]
    for _ in range(5):
        for loader in ranks:
            loader.next_batch()
    single = ShardLoader(pattern, 2, 3, micro_steps=2)
    single.load_state_dict(ranks[0].state_dict())
    for _ in range(30):
        for loader in ranks:
            assert torch.equal(single.next_batch()[0], loader.next_batch()[0])


def test_empty_shard_is_named(tmp_path):
    write_shard(tmp_path / "empty_train.bin", np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match=r"empty_train\.bin holds 0 tokens, fewer than the 9"):
        ShardLoader(str(tmp_path / "*.bin"), 2, 4)
    with pytest.raises(ValueError, match=r"empty_train\.bin is empty \(0 tokens\), fewer than the 9"):
        check_shards_length([tmp_path / "empty_train.bin"], 9)
    write_shard(tmp_path / "short_train.bin", np.arange(5))
    with pytest.raises(ValueError, match=r"short_train\.bin holds only 5 tokens, fewer than the 9"):
        check_shards_length([tmp_path / "short_train.bin"], 9)
    check_shards_length([tmp_path / "short_train.bin"], 5)  # exactly enough


@pytest.fixture(scope="module")
def two_tokenizers():
    from llmc_core.datasets import tiny_shakespeare_text
    from llmc_core.tokenizer import load_tokenizer, train_tokenizer
    return train_tokenizer(tiny_shakespeare_text()[:20_000], 300), load_tokenizer("gpt2")


def test_shards_record_their_tokenizer(tmp_path, two_tokenizers):
    from llmc_core.tokenizer import tokenizer_fingerprint
    small, gpt2 = two_tokenizers
    write_shard(tmp_path / "a.bin", [1, 2, 299], small)
    raw = (tmp_path / "a.bin").read_bytes()
    header = struct.unpack("<256i", raw[:1024])
    assert header[:4] == (20240520, 1, 3, 300)  # llm.c's three slots as before, then the vocabulary size
    assert raw[16:48] == bytes.fromhex(tokenizer_fingerprint(small)) and set(header[12:]) == {0}
    info = read_shard_info(tmp_path / "a.bin")
    assert info == (3, 300, tokenizer_fingerprint(small))
    np.testing.assert_array_equal(load_shard(tmp_path / "a.bin"), [1, 2, 299])
    with pytest.raises(ValueError, match="0..299"):
        write_shard(tmp_path / "b.bin", [300], small)
    write_shard(tmp_path / "c.bin", [5])
    assert read_shard_info(tmp_path / "c.bin") == (1, None, None)  # llm.c's shards record nothing


def test_shard_tokenizer_mismatch_is_refused(tmp_path, two_tokenizers):
    small, gpt2 = two_tokenizers
    write_shard(tmp_path / "small_train.bin", np.arange(300), small)
    write_shard(tmp_path / "gpt2_train.bin", np.arange(300), gpt2)
    write_shard(tmp_path / "llmc_train.bin", np.arange(300))  # no record: GPT-2's, as llm.c's shards
    check_shards_tokenizer([tmp_path / "small_train.bin"], small)
    check_shards_tokenizer([tmp_path / "gpt2_train.bin", tmp_path / "llmc_train.bin"], gpt2)
    with pytest.raises(ValueError) as e:
        check_shards_tokenizer([tmp_path / "small_train.bin"], gpt2)
    message = str(e.value)
    assert "small_train.bin" in message and "300-token tokenizer" in message and "gpt2 (50257 tokens" in message
    assert "llmc data prepare NAME --tokenizer" in message
    for shard in ("gpt2_train.bin", "llmc_train.bin"):
        with pytest.raises(ValueError, match=f"{shard}.*shard's is (gpt2|none recorded).*run's is {small.name}"):
            check_shards_tokenizer([tmp_path / shard], small)


def test_damaged_tokenizer_record(tmp_path, two_tokenizers):
    small, _ = two_tokenizers
    path = tmp_path / "a.bin"
    write_shard(path, [1, 2, 3], small)
    raw = bytearray(path.read_bytes())
    raw[12:16] = struct.pack("<i", 0)  # vocabulary size gone, fingerprint kept
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"a\.bin: the header's tokenizer record .* is damaged"):
        read_shard_info(path)
    raw[12:16] = struct.pack("<i", 300)
    raw[100:104] = struct.pack("<i", 7)  # slot 25: llm.c leaves it zero
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"a\.bin: header slot 25 holds 7"):
        read_shard_info(path)
