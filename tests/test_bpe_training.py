"""Lesson 04's trainers, file format and round trips."""
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import regex
from hypothesis import given, settings, strategies as st

from llmc_core.datasets import tiny_shakespeare_text
from llmc_core.encodings import gpt2_encoding

LESSON = "04_bpe_tokenizer"  # the notebook `nb` (tests/conftest.py) loads


def torture_text():
    with open(Path(__file__).parent / "data" / "bpe_torture.txt", encoding="utf-8", newline="") as f:
        return f.read()


def runs_text(seed, n):
    """Seeded text over a tiny alphabet: long runs (overlapping pairs) and many count ties."""
    rng = np.random.default_rng(seed)
    return "".join(rng.choice(list("aab  \n"), size=n).tolist())


CORPORA = {
    "shakespeare": lambda: tiny_shakespeare_text()[:30_000],
    "torture": torture_text,
    "runs": lambda: runs_text(0, 5_000),
}


@pytest.mark.parametrize("pattern", ["GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN"], ids=["gpt2", "gpt4"])
@pytest.mark.parametrize("corpus", list(CORPORA))
def test_fast_trainer_learns_the_naive_merges(nb, corpus, pattern):
    text, vocab_size = CORPORA[corpus](), 256 + 120
    naive, fast = nb.RegexTokenizer(getattr(nb, pattern)), nb.FastTokenizer(getattr(nb, pattern))
    naive.train(text, vocab_size)
    fast.train(text, vocab_size)
    assert len(naive.merges) > 0
    assert list(fast.merges.items()) == list(naive.merges.items())  # same pairs, same ids, same order


def test_fast_trainer_stops_early_like_naive(nb):
    text = "low lower lowest newer wider " * 3
    naive, fast = nb.RegexTokenizer(), nb.FastTokenizer()
    naive.train(text, 10_000)
    fast.train(text, 10_000)
    assert list(fast.merges.items()) == list(naive.merges.items())
    assert len(fast.merges) < 10_000 - 256  # ran out of pairs: every chunk is one token
    assert all(len(fast.encode_ordinary(chunk)) == 1 for chunk in regex.findall(fast.pattern, text))


def test_each_merge_is_the_most_frequent_pair(nb):
    """Replay the fast trainer's merges and re-count pairs independently (Counter) before each one."""
    text = tiny_shakespeare_text()[50_000:70_000]
    tok = nb.FastTokenizer()
    tok.train(text, 256 + 60)
    chunks = [list(c.encode("utf-8")) for c in regex.findall(tok.pattern, text)]
    for pair, new_id in tok.merges.items():
        counts = Counter(p for ids in chunks for p in zip(ids, ids[1:]))
        best = max(counts.values())
        assert counts[pair] == best, (pair, counts[pair], best)
        assert pair == min(p for p, c in counts.items() if c == best)  # documented tie rule
        chunks = [nb.merge(ids, pair, new_id) for ids in chunks]


@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_chunk_counts_equal_serial(nb, workers):
    for text in (tiny_shakespeare_text()[:250_000], torture_text() * 40):
        for pattern in (nb.GPT2_SPLIT_PATTERN, nb.GPT4_SPLIT_PATTERN):
            assert nb.count_chunks_parallel(text, pattern, workers) == nb.count_chunks(text, pattern)


# Pieces that decide where chunks end under both patterns: letters (ASCII and not), digits, runs of
# spaces and newlines, carriage returns, punctuation and a contraction; whole pieces make runs likely.
CUT_PIECES = ["a", "Zé", "文", " ", "  ", "\n", "\n\n", "\r\n", "\t", "7", ".", "'s", "-\n"]


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.sampled_from(CUT_PIECES), max_size=30).map("".join),
       targets=st.lists(st.integers(min_value=0, max_value=60), max_size=4))
def test_safe_cuts_keep_the_chunk_counts(nb, text, targets):
    """Counting slices cut at safe points gives the serial counts, for both patterns and any cut targets."""
    cuts = nb.safe_cuts(text, sorted(targets))
    assert cuts[0] == 0 and cuts[-1] == len(text) and cuts == sorted(cuts)
    for pattern in (nb.GPT2_SPLIT_PATTERN, nb.GPT4_SPLIT_PATTERN):
        sliced = sum((nb.count_chunks(text[a:b], pattern) for a, b in zip(cuts, cuts[1:])), Counter())
        assert sliced == nb.count_chunks(text, pattern), (text, cuts)


def test_two_newlines_before_a_letter_are_not_a_safe_cut(nb):
    """The case that broke the first parallel counter: GPT-2's pattern splits "\n\nA" as "\n", "\n", "A"."""
    assert nb.count_chunks("x\n\nA", nb.GPT2_SPLIT_PATTERN)[b"\n"] == 2
    assert nb.safe_cuts("x\n\nAb\nC", [0]) == [0, 6, 7]


def test_basic_wikipedia_example(nb):
    """aaabdaaabac: (a, a) occurs 4 times (overlapping) -> 256; then (256, a) and (a, b) tie at 2 and the
    smaller pair (97, 98) -> 257; then (256, 257) -> 258. Encoding gives X d X a c with X = 258."""
    tok = nb.BasicTokenizer()
    tok.train("aaabdaaabac", 256 + 3)
    assert tok.merges == {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert tok.decode([258]) == "aaab"


def make_tokenizers(nb):
    text = tiny_shakespeare_text()[:20_000] + torture_text()
    basic, regex_tok = nb.BasicTokenizer(), nb.RegexTokenizer()
    basic.train(text, 300)
    regex_tok.train(text, 400)
    regex_tok.register_special_tokens({"<|endoftext|>": 400, "<|a \"quoted\"\\n|>": 401})
    return {"basic": basic, "regex": regex_tok}


@pytest.fixture(scope="module")
def trained(nb):
    return make_tokenizers(nb)


@pytest.mark.parametrize("name", ["basic", "regex"])
def test_save_load_round_trip(nb, trained, tmp_path, name):
    tok = trained[name]
    path = tmp_path / f"{name}.bpe"
    tok.save(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "llmc-bpe v1" and lines[2] == "byte_ids identity"
    assert f"merges {len(tok.merges)}" in lines
    loaded = nb.Tokenizer().load(path)
    assert (loaded.pattern, loaded.byte_ids, loaded.special_tokens) == (tok.pattern, tok.byte_ids, tok.special_tokens)
    assert list(loaded.merges.items()) == list(tok.merges.items())
    assert loaded.vocab == tok.vocab
    text = torture_text()
    assert loaded.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")


def test_save_load_gpt2_keeps_byte_order(nb, tmp_path):
    path = tmp_path / "gpt2.bpe"
    nb.GPT2Tokenizer().save(path)
    assert path.read_text(encoding="utf-8").split("\n")[2].startswith("byte_ids 188 189 190")  # bytes 0, 1, 2
    loaded = nb.Tokenizer().load(path)
    text = torture_text()
    assert loaded.encode(text, disallowed_special=()) == gpt2_encoding().encode(text, disallowed_special=())


@pytest.mark.parametrize("damage", ["magic", "merge_line", "truncated", "byte_ids"])
def test_load_rejects_damaged_files_naming_the_line(nb, trained, tmp_path, damage):
    path = tmp_path / "tok.bpe"
    trained["regex"].save(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    if damage == "magic":
        lines[0] = "minbpe v1"
    elif damage == "merge_line":
        lines[-5] = "12 x 300"
    elif damage == "truncated":
        lines = lines[:-20]
    else:
        lines[2] = "byte_ids 1 2 3"
    path.write_text("\n".join(lines), encoding="utf-8")
    tok = nb.Tokenizer()
    with pytest.raises(ValueError, match=r"tok\.bpe line \d+"):
        tok.load(path)
    assert tok.merges == {}  # nothing half-loaded


def test_errors_are_clear(nb, trained):
    with pytest.raises(TypeError, match="RegexTokenizer"):
        nb.GPT2Tokenizer.train(nb.GPT2Tokenizer.__new__(nb.GPT2Tokenizer), "text", 300)
    with pytest.raises(TypeError, match="allowed_special"):
        trained["regex"].encode("x", allowed_special="<|endoftext|>")
    with pytest.raises(ValueError, match="not registered"):
        trained["regex"].encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(ValueError, match="10000000"):
        trained["regex"].decode([10_000_000])
    with pytest.raises(ValueError, match="already"):
        trained["basic"].register_special_tokens({"<|clash|>": 256})


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=80))
def test_round_trip_arbitrary_unicode(trained, text):
    for name, tok in trained.items():
        assert tok.decode(tok.encode(text, disallowed_special=())) == text, name


@settings(max_examples=50, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab \n'é1")), max_size=300))
def test_fast_equals_naive_on_generated_text(nb, text):
    naive, fast = nb.RegexTokenizer(), nb.FastTokenizer()
    naive.train(text, 256 + 30)
    fast.train(text, 256 + 30)
    assert list(fast.merges.items()) == list(naive.merges.items())
