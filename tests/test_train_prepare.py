"""`llmc data prepare` on local files: tiny Shakespeare, TinyStories-format json, text jsonl, resumed downloads."""
import http.server
import json
import threading

import numpy as np
import pytest

from llmc_core.datasets import tiny_shakespeare_tokens
from llmc_core.encodings import GPT2_EOT, gpt2_encoding
from llmc_core.train.prepare import download, prepare
from llmc_core.train.shards import load_shard

STORIES = [["Once upon a time, a cat sat.", "The dog ran home!"],
           ["Tom had a red ball.", "It was sunny. They played all day.", "The end."],
           ["Lily saw a big tree.", "Ducks swam in the pond."]]


def expected_tokens(texts):
    """Oracle: tiktoken's own gpt2 encoding of each text, each after <|endoftext|>."""
    enc = gpt2_encoding()
    return np.concatenate([[GPT2_EOT] + enc.encode_ordinary(t) for t in texts]).astype(np.uint16)


def read_split(paths, split):
    chosen = [p for p in paths if f"_{split}_" in p.name or p.name.endswith(f"_{split}.bin")]
    return np.concatenate([load_shard(p) for p in chosen])


def test_tinyshakespeare_splits_like_llmc(tmp_path):
    paths = prepare("tinyshakespeare", tmp_path, progress=False)
    val, train = load_shard(paths[0]), load_shard(paths[1])
    assert len(val) == 32768 and val[0] == GPT2_EOT
    np.testing.assert_array_equal(np.concatenate([val, train]), tiny_shakespeare_tokens())


@pytest.mark.parametrize("workers", [1, 2], ids=["serial", "parallel"])
def test_tinystories_from_local_json(tmp_path, workers):
    src = tmp_path / "src"
    src.mkdir()
    for i, stories in enumerate(STORIES):
        (src / f"data{i:02d}.json").write_text(json.dumps([{"story": " " + s + "\n"} for s in stories]))
    paths = prepare("tinystories", tmp_path / "out", workers=workers, shard_tokens=20, source=src, progress=False)
    np.testing.assert_array_equal(read_split(paths, "val"), expected_tokens(STORIES[0]))
    np.testing.assert_array_equal(read_split(paths, "train"), expected_tokens(STORIES[1] + STORIES[2]))
    assert all(len(load_shard(p)) <= 20 for p in paths) and len(paths) == 3  # val 1 shard, train 2


def test_fineweb_edu_from_local_jsonl(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    texts = [f"Document {i}: photosynthesis turns light into sugar, step {i}." for i in range(12)]
    (src / "part0.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    paths = prepare("fineweb-edu", tmp_path / "out", workers=1, shard_tokens=50, source=src, progress=False)
    everything = expected_tokens(texts)
    val, train = read_split(paths, "val"), read_split(paths, "train")
    assert len(val) == 50  # the first shard is the validation split
    np.testing.assert_array_equal(np.concatenate([val, train]), everything)


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="tinystories"):
        prepare("openwebtext", tmp_path)


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one payload, honouring `Range: bytes=N-` as a resuming client sends it."""
    payload = bytes(range(256)) * 400

    def do_GET(self):
        start = 0
        if "Range" in self.headers:
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            self.send_response(206)
        else:
            self.send_response(200)
        body = self.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        type(self).ranges.append(start)

    def log_message(self, *args):
        pass


def test_download_resumes_a_partial_file(tmp_path):
    RangeHandler.ranges = []
    server = http.server.HTTPServer(("127.0.0.1", 0), RangeHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dest = tmp_path / "file.bin"
        (tmp_path / "file.bin.part").write_bytes(RangeHandler.payload[:30000])  # an interrupted download
        download(f"http://127.0.0.1:{server.server_port}/file.bin", dest, progress=False)
    finally:
        server.shutdown()
    assert RangeHandler.ranges == [30000]  # only the missing bytes were fetched
    assert dest.read_bytes() == RangeHandler.payload
    assert not (tmp_path / "file.bin.part").exists()


@pytest.fixture(scope="module")
def small_tokenizer():
    from llmc_core.datasets import tiny_shakespeare_text
    from llmc_core.tokenizer import train_tokenizer
    return train_tokenizer(tiny_shakespeare_text()[:40_000], 350)


def test_tinyshakespeare_with_a_tokenizer_file(tmp_path, small_tokenizer):
    from llmc_core.datasets import tiny_shakespeare_plays
    from llmc_core.tokenizer import save_tokenizer, tokenizer_fingerprint
    from llmc_core.train.shards import read_shard_info
    path = save_tokenizer(small_tokenizer, tmp_path / "t.tok")
    paths = prepare("tinyshakespeare", tmp_path, progress=False, tokenizer=str(path))
    assert paths[0].parent != tmp_path / "tinyshakespeare"  # GPT-2's shards stay where they are
    val, train = load_shard(paths[0]), load_shard(paths[1])
    enc = small_tokenizer
    # independent oracle: the corpus re-encoded play by play; val is GPT-2's validation text
    gpt2_val_text = gpt2_encoding().decode(tiny_shakespeare_tokens()[1:32768].tolist())
    assert val[0] == enc.eot_token and enc.decode(val[1:].tolist()) == gpt2_val_text
    everything = enc.decode(np.concatenate([val, train]).tolist())  # <|endoftext|> decodes to its text
    assert everything == "".join("<|endoftext|>" + play for play in tiny_shakespeare_plays())
    assert {read_shard_info(p).fingerprint for p in paths} == {tokenizer_fingerprint(enc)}


def test_cli_prepare_takes_a_tokenizer(tmp_path, small_tokenizer, capsys):
    from llmc_core.cli import main
    from llmc_core.tokenizer import save_tokenizer
    from llmc_core.train.shards import check_shards_tokenizer
    path = save_tokenizer(small_tokenizer, tmp_path / "t.tok")
    assert main(["data", "prepare", "tinyshakespeare", "--data-dir", str(tmp_path), "--tokenizer", str(path)]) == 0
    shards = [line for line in capsys.readouterr().out.splitlines() if line.endswith(".bin")]
    assert len(shards) == 2
    check_shards_tokenizer(shards, small_tokenizer)  # no error: the shards record this tokenizer
    assert main(["data", "prepare", "tinyshakespeare", "--data-dir", str(tmp_path), "--tokenizer", "nope.tok"]) == 2
    assert "nope.tok does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["tinystories", "fineweb-edu"])
def test_offline_download_fails_in_one_clear_line(tmp_path, monkeypatch, capsys, name):
    import socket
    import urllib.error
    import urllib.request

    from llmc_core.cli import main

    def offline(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert main(["data", "prepare", name, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) <= 2 and "Traceback" not in err
    assert "could not download https://huggingface.co/" in err and "name resolution" in err and "--source" in err
