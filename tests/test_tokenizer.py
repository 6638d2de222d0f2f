"""The course tokenizer: training, the file format, tiktoken compatibility, fingerprints."""
import json

import pytest
import tiktoken
from tiktoken.load import load_tiktoken_bpe

from llmc_core import bpe
from llmc_core.datasets import tiny_shakespeare_text
from llmc_core.encodings import load_tiktoken_ranks
from llmc_core.tokenizer import (
    EOT,
    load_tokenizer,
    save_tokenizer,
    tokenizer_fingerprint,
    tokenizer_from_dict,
    tokenizer_to_dict,
    train_tokenizer,
)

CORPUS = tiny_shakespeare_text()[:40_000]


@pytest.fixture(scope="module")
def small_tokenizer():
    return train_tokenizer(CORPUS, 400)


def test_trained_tokenizer_shape(small_tokenizer):
    enc = small_tokenizer
    assert isinstance(enc, tiktoken.Encoding)
    assert enc.n_vocab == 400 and enc.eot_token == 399 and enc.encode(EOT, allowed_special="all") == [399]
    # BPE compresses: fewer tokens than bytes on text it was trained on
    assert len(enc.encode_ordinary(CORPUS)) < 0.6 * len(CORPUS.encode())


def test_trained_merges_are_lesson_04s_naive_ones(solutions):
    """The ranks are what the lesson's naive trainer (recounting every pair per merge) learns, id for id."""
    nb = solutions("04_bpe_tokenizer")
    text = CORPUS[:8000]
    enc = train_tokenizer(text, 330)
    naive = nb.RegexTokenizer(enc._pat_str)
    naive.train(text, 329)
    assert {naive.vocab[i]: i for i in range(329)} == enc._mergeable_ranks


def test_trainer_is_loaded_from_the_lesson():
    """One home for the code: llmc_core.bpe hands out the functions of the module generated
    from lesson 04's solution."""
    from llmc_core.course import lesson_by_notebook
    from llmc_core.references import bpe_tokenizer
    assert bpe_tokenizer.__file__ == str(lesson_by_notebook("04_bpe_tokenizer").reference_path)
    assert bpe.train_merges_fast is bpe_tokenizer.train_merges_fast
    assert bpe.count_chunks_parallel is bpe_tokenizer.count_chunks_parallel


def test_file_round_trip(small_tokenizer, tmp_path):
    path = save_tokenizer(small_tokenizer, tmp_path / "shakespeare.tok")
    loaded = load_tokenizer(str(path))
    assert loaded._mergeable_ranks == small_tokenizer._mergeable_ranks
    assert loaded._special_tokens == small_tokenizer._special_tokens
    assert loaded._pat_str == small_tokenizer._pat_str and loaded.name == small_tokenizer.name
    assert tokenizer_fingerprint(loaded) == tokenizer_fingerprint(small_tokenizer)
    text = tiny_shakespeare_text()[100_000:130_000] + "\nnew words: Zyzzyva 東京 🤖 1234567\n"
    ids = loaded.encode_ordinary(text)
    assert loaded.decode(ids) == text  # lossless, also on text it never saw
    assert ids == small_tokenizer.encode_ordinary(text)
    save_tokenizer(loaded, tmp_path / "again.tok")
    assert (tmp_path / "again.tok").read_bytes() == path.read_bytes()


def test_ranks_agree_with_tiktoken_reader(small_tokenizer, tmp_path):
    """The lines after the header are a .tiktoken file: tiktoken's own reader gives the same ranks."""
    path = save_tokenizer(small_tokenizer, tmp_path / "t.tok")
    ranks_file = tmp_path / "t.tiktoken"
    ranks_file.write_text(path.read_text().split("\n", 1)[1])
    theirs = load_tiktoken_bpe(str(ranks_file))
    assert theirs == load_tokenizer(path)._mergeable_ranks == load_tiktoken_ranks(ranks_file)
    rebuilt = tiktoken.Encoding("theirs", pat_str=small_tokenizer._pat_str, mergeable_ranks=theirs,
                                special_tokens={EOT: len(theirs)})
    assert rebuilt.encode(CORPUS[:5000]) == small_tokenizer.encode(CORPUS[:5000])


def test_dict_round_trip_is_json(small_tokenizer):
    gpt2 = load_tokenizer("gpt2")
    for enc in (small_tokenizer, gpt2):
        d = json.loads(json.dumps(tokenizer_to_dict(enc)))
        back = tokenizer_from_dict(d)
        assert back._mergeable_ranks == enc._mergeable_ranks and back._special_tokens == enc._special_tokens
        assert tokenizer_fingerprint(back) == tokenizer_fingerprint(enc)


def test_fingerprint_tells_tokenizers_apart(small_tokenizer):
    other = train_tokenizer(CORPUS, 401)
    fingerprints = {tokenizer_fingerprint(e) for e in (small_tokenizer, other, load_tokenizer("gpt2"))}
    assert len(fingerprints) == 3 and all(len(f) == 64 for f in fingerprints)
    renamed = tiktoken.Encoding("renamed", pat_str=small_tokenizer._pat_str,
                                mergeable_ranks=small_tokenizer._mergeable_ranks,
                                special_tokens=small_tokenizer._special_tokens)
    assert tokenizer_fingerprint(renamed) == tokenizer_fingerprint(small_tokenizer)  # the name decides no token


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 257"):
        train_tokenizer("abc", 256)
    with pytest.raises(ValueError, match="empty"):
        train_tokenizer("", 300)
    with pytest.raises(ValueError, match="does not exist.*llmc tokenizer train"):
        load_tokenizer("/nonexistent/x.tok")


def test_stops_early_on_a_tiny_text():
    enc = train_tokenizer("aaab", 1000)
    assert enc.n_vocab < 1000 and enc.eot_token == enc.n_vocab - 1
    assert enc.decode(enc.encode_ordinary("aaab ba")) == "aaab ba"


def test_cli_train_and_info(tmp_path, capsys):
    from llmc_core.cli import main
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    out = tmp_path / "t.tok"
    assert main(["tokenizer", "train", "--vocab-size", "300", str(corpus), "--out", str(out)]) == 0
    enc = load_tokenizer(out)
    assert enc.n_vocab == 300 and enc.decode(enc.encode_ordinary(CORPUS)) == CORPUS
    assert main(["tokenizer", "info", str(out)]) == 0
    assert tokenizer_fingerprint(enc)[:12] in capsys.readouterr().out
    assert main(["tokenizer", "train", "--vocab-size", "300", str(tmp_path / "missing.txt"), "--out", str(out)]) == 2
    assert "missing.txt does not exist" in capsys.readouterr().err
