"""Probes of lesson 04, the byte-level BPE tokenizer: training, encoding, decoding, the file format."""
import os
import tempfile
from collections import Counter

import numpy as np
import regex

from llmc_core.exercises import probe, raised

# Which earlier exercises each exercise runs.
USES = {
    "bpe/encode_chunk": ("bpe/merge",),
    "bpe/decode": ("bpe/build_vocab",),
    "bpe/basic_train": ("bpe/get_stats", "bpe/merge"),
    "bpe/regex_train": ("bpe/get_stats", "bpe/merge"),
    "bpe/encode": ("bpe/encode_chunk",),
    "bpe/load_ranks": ("bpe/recover_merges",),
    "bpe/fast_train": ("bpe/merge",),
}
# The first hint of a failing check names the concept; the probe's own hint comes on request (check(..., hint=2)).
NUDGES = {
    "bpe/get_stats": "Count every adjacent pair of ids.",
    "bpe/merge": "Scan left to right and replace each occurrence of the pair by the new id.",
    "bpe/build_vocab": "The vocabulary maps each id to its bytes: the 256 single bytes, "
                       "then each merge's two parts joined.",
    "bpe/encode_chunk": "Encoding replays the learned merges, earliest-learned first.",
    "bpe/decode": "Decoding joins the bytes of the tokens and then reads them as UTF-8.",
    "bpe/basic_train": "Training repeats: count the pairs, merge the most frequent one, "
                       "record the merge.",
    "bpe/regex_train": "The same training, but pairs are counted and merged only inside the "
                       "chunks of the split pattern.",
    "bpe/encode": "Special tokens are found first; the text between them is encoded as ordinary "
                  "text.",
    "bpe/save": "The file holds only the state that rebuilding the tokenizer needs, "
                "one item per line.",
    "bpe/load": "Loading reads back exactly what save wrote, in the same order.",
    "bpe/recover_merges": "A rank table hides its merges: each token was made from two earlier "
                          "tokens.",
    "bpe/load_ranks": "A tiktoken rank table gives the byte ids and, through recover_merges, "
                      "the merges.",
    "bpe/fast_train": "The fast trainer must pick exactly the pairs the naive one picks, "
                      "only faster.",
}

WORDS = ["the", "king", "queen", "lord", "sweet", "love", "thou", "art", "hath", "doth", "night", "day",
         "Romeo", "O", "I'll", "don't", "THEY'RE", "1599", "42", "3.14", "!", "?", ",", "--", "é", "naïve", "世界"]


def _random_text(seed, n_words):
    """Seeded pseudo-English: words, numbers, punctuation, spaces and newlines, with some non-ASCII."""
    rng = np.random.default_rng(seed)
    seps = [" ", " ", " ", "  ", "\n", "\n\n", ""]
    out = []
    for _ in range(n_words):
        out.append(WORDS[rng.integers(len(WORDS))])
        out.append(seps[rng.integers(len(seps))])
    return "".join(out)


def _triples(merges):
    """Merges as a list of [id1, id2, new_id] in merge order (JSON-friendly)."""
    return [[a, b, new_id] for (a, b), new_id in merges.items()]


def _tokenizer(nb, merges, pattern=None, byte_ids=None, special_tokens=None):
    """A tokenizer with hand-set state, so probes of one method do not depend on training."""
    tok = nb.Tokenizer(pattern=pattern)
    tok.merges = dict(merges)
    if byte_ids is not None:
        tok.byte_ids = list(byte_ids)
    if special_tokens:
        tok.special_tokens = dict(special_tokens)
    return tok


# Merges that only make sense applied in order: "th", "the", " the", "in", "ing", " k", " king".
def _text_merges():
    t, h, e, sp, i, n, g, k = (ord(c) for c in "the ingk")
    return {(t, h): 256, (256, e): 257, (sp, 257): 258, (i, n): 259, (259, g): 260, (sp, k): 261, (261, 260): 262}


# --- get_stats -----------------------------------------------------------------------------------

@probe("bpe/get_stats",
       hint="zip(ids, ids[1:]) walks the adjacent pairs; add 1 per pair to counts.get(pair, 0).")
def counts_small_list(nb):
    """get_stats of a short list of ids"""
    return sorted([list(p) + [c] for p, c in nb.get_stats([1, 2, 3, 1, 2]).items()])


@probe("bpe/get_stats", hint="Pairs overlap: [7, 7, 7, 7] holds (7, 7) three times.")
def counts_overlapping_run(nb):
    return sorted([list(p) + [c] for p, c in nb.get_stats([7, 7, 7, 7, 8]).items()])


@probe("bpe/get_stats", hint="An empty list or a single id has no pairs: return an empty dict.")
def counts_empty_and_single(nb):
    return [len(nb.get_stats([])), len(nb.get_stats([3]))]


@probe("bpe/get_stats",
       hint="When counts is given, add into that very dict and return it (do not copy it).")
def counts_accumulate_in_place(nb):
    counts = {(1, 2): 5, (9, 9): 1}
    result = nb.get_stats([1, 2, 1, 2], counts)
    return {"same_dict": result is counts, "items": sorted([list(p) + [c] for p, c in counts.items()])}


@probe("bpe/get_stats", hint="Every adjacent pair counts, including the last one.")
def counts_random_list(nb):
    ids = np.random.default_rng(1).integers(0, 6, size=400).tolist()
    return sorted([list(p) + [c] for p, c in nb.get_stats(ids).items()])


# --- merge ---------------------------------------------------------------------------------------

@probe("bpe/merge",
       hint="After replacing a pair, skip both of its ids: [5, 5, 5] becomes [256, 5].")
def merge_run_of_three(nb):
    """merge([5, 5, 5, 6], (5, 5), 256)"""
    return nb.merge([5, 5, 5, 6], (5, 5), 256)


@probe("bpe/merge", hint="A pair that never occurs leaves the list as it is.")
def merge_absent_pair(nb):
    """merge([1, 2, 3], (3, 1), 300)"""
    return nb.merge([1, 2, 3], (3, 1), 300)


@probe("bpe/merge", hint="Check the last position: a pair at the very end must be merged too.")
def merge_random_list(nb):
    """merge(300 seeded ids in 0..3, (1, 2), 256)"""
    ids = np.random.default_rng(2).integers(0, 4, size=300).tolist()
    return nb.merge(ids, (1, 2), 256)


@probe("bpe/merge", hint="Build a new list; do not change the list you were given.")
def merge_leaves_input(nb):
    """ids = [1, 2, 1, 2]; merge(ids, (1, 2), 256)"""
    ids = [1, 2, 1, 2]
    out = nb.merge(ids, (1, 2), 256)
    return {"input": ids, "out": out}


@probe("bpe/merge", hint="Lists of length 0 and 1 have nothing to merge.")
def merge_short_lists(nb):
    """merge([], (1, 2), 256) and merge([1], (1, 2), 256)"""
    return [nb.merge([], (1, 2), 256), nb.merge([1], (1, 2), 256)]


# --- build_vocab ---------------------------------------------------------------------------------

@probe("bpe/build_vocab",
       hint="Start with byte_ids[b] -> bytes([b]) for all 256 bytes, then add merges in order.")
def vocab_chain_of_merges(nb):
    merges = {(104, 105): 256, (256, 33): 257, (257, 257): 258}
    vocab = nb.build_vocab(list(range(256)), merges, {})
    return {"size": len(vocab), "tokens": [vocab[i].hex() for i in (0, 104, 255, 256, 257, 258)]}


@probe("bpe/build_vocab", hint="byte_ids[b] is the id of byte b: vocab[byte_ids[b]] = bytes([b]).")
def vocab_shuffled_bytes(nb):
    byte_ids = np.random.default_rng(3).permutation(256).tolist()
    merges = {(byte_ids[ord("a")], byte_ids[ord("b")]): 256}
    vocab = nb.build_vocab(byte_ids, merges, {})
    return [vocab[i].hex() for i in range(257)]


@probe("bpe/build_vocab", hint="Special tokens map to their text encoded as UTF-8.")
def vocab_special_tokens(nb):
    vocab = nb.build_vocab(list(range(256)), {(97, 98): 256}, {"<|endoftext|>": 1000, "<|é|>": 257})
    return {"size": len(vocab), "1000": vocab[1000].hex(), "257": vocab[257].hex()}


# --- encode_chunk --------------------------------------------------------------------------------

@probe("bpe/encode_chunk",
       hint="Apply the merge with the lowest id first, not the pair you meet first from the left.")
def encode_chunk_merge_order(nb):
    """merges {(98, 99): 256, (97, 98): 257, (97, 256): 258}; encode_chunk of b'abc', b'abcab', b'ababab'"""
    tok = _tokenizer(nb, {(98, 99): 256, (97, 98): 257, (97, 256): 258})
    return [tok.encode_chunk(b"abc"), tok.encode_chunk(b"abcab"), tok.encode_chunk(b"ababab")]


@probe("bpe/encode_chunk",
       hint="Merges build on earlier merges: keep merging until no pair present has a merge.")
def encode_chunk_nested(nb):
    """merges learned from a small English text; encode_chunk of ' the', ' king', ' thing', 'the king', ''"""
    tok = _tokenizer(nb, _text_merges())
    return [tok.encode_chunk(w.encode()) for w in (" the", " king", " thing", "the king", "")]


@probe("bpe/encode_chunk", hint="Start from self.byte_ids[b] for each byte b, not from b itself.")
def encode_chunk_byte_ids(nb):
    byte_ids = np.random.default_rng(4).permutation(256).tolist()
    h, i = byte_ids[ord("h")], byte_ids[ord("i")]
    tok = _tokenizer(nb, {(h, i): 256}, byte_ids=byte_ids)
    return tok.encode_chunk("hi höi".encode())


# --- decode --------------------------------------------------------------------------------------

@probe("bpe/decode",
       hint="Join the bytes of every token (self.vocab[id]) and decode the whole as UTF-8.")
def decode_merged_tokens(nb):
    tok = _tokenizer(nb, _text_merges())
    return tok.decode([258, 262, 32, 257, 101, 33])


@probe("bpe/decode",
       hint="Decode after joining: the two bytes of 'é' may sit in two different tokens.")
def decode_split_character(nb):
    tok = _tokenizer(nb, {})
    return tok.decode(list("café 👋".encode()))


@probe("bpe/decode", hint="Use .decode('utf-8', errors='replace') so invalid bytes become U+FFFD.")
def decode_invalid_utf8(nb):
    tok = _tokenizer(nb, {})
    return [tok.decode([0xFF, 104, 105]), tok.decode(list("👋".encode())[:3]), tok.decode([0xC3])]


@probe("bpe/decode", hint="Special tokens are in the vocabulary too; they decode to their text.")
def decode_special_token(nb):
    tok = _tokenizer(nb, {(97, 98): 256}, special_tokens={"<|endoftext|>": 257})
    return tok.decode([256, 257, 97])


@probe("bpe/decode", hint=("Raise ValueError for an id that is not in self.vocab.",))
def decode_unknown_id(nb):
    tok = _tokenizer(nb, {(97, 98): 256})
    return [raised(tok.decode, [97, 257]), raised(tok.decode, [-1]), tok.decode([])]


# --- basic_train ---------------------------------------------------------------------------------

@probe("bpe/basic_train",
       hint="aaabdaaabac: (97, 97) wins first; next (256, 97) and (97, 98) tie at 2 and the "
            "smaller pair wins.")
def basic_wikipedia_example(nb):
    tok = nb.BasicTokenizer()
    tok.train("aaabdaaabac", 256 + 3)
    return _triples(tok.merges)


@probe("bpe/basic_train",
       hint="Pick pairs with most_frequent_pair: equal counts go to the smallest pair.")
def basic_ties(nb):
    tok = nb.BasicTokenizer()
    tok.train("dcba abcd", 256 + 4)
    return _triples(tok.merges)


@probe("bpe/basic_train",
       hint="Count, pick, merge, record, repeat: new ids are 256, 257, ... in order.")
def basic_random_text(nb):
    tok = nb.BasicTokenizer()
    tok.train(_random_text(5, 300), 256 + 40)
    return _triples(tok.merges)


@probe("bpe/basic_train",
       hint="When no pair is left (one token remains), stop early instead of failing.")
def basic_stops_early(nb):
    tok = nb.BasicTokenizer()
    tok.train("abab", 300)
    return {"merges": _triples(tok.merges), "byte_ids_identity": tok.byte_ids == list(range(256))}


@probe("bpe/basic_train", hint=("vocab_size below 256 cannot hold the bytes: raise ValueError.",))
def basic_rejects_small_vocab(nb):
    tok = nb.BasicTokenizer()
    return raised(tok.train, "hello", 255)


@probe("bpe/basic_train", hint="Training starts afresh: drop merges from an earlier train call.")
def basic_retrain_replaces(nb):
    tok = nb.BasicTokenizer()
    tok.train("xyxyxyxy", 260)
    tok.train("aaabdaaabac", 257)
    return _triples(tok.merges)


# --- regex_train ---------------------------------------------------------------------------------

@probe("bpe/regex_train",
       hint="Sum pair counts over all chunks (get_stats with counts), then merge in every chunk.")
def regex_train_gpt4_pattern(nb):
    tok = nb.RegexTokenizer()
    tok.train(_random_text(6, 400), 256 + 50)
    return _triples(tok.merges)


@probe("bpe/regex_train",
       hint="Split with regex.findall(self.pattern, text): here the pattern is GPT-2's.")
def regex_train_gpt2_pattern(nb):
    tok = nb.RegexTokenizer(nb.GPT2_SPLIT_PATTERN)
    tok.train(_random_text(7, 400), 256 + 50)
    return _triples(tok.merges)


@probe("bpe/regex_train", hint="Merges stay inside chunks: 'a a a' must never make a token 'a a'.")
def regex_train_no_cross_chunk(nb):
    tok = nb.RegexTokenizer()
    tok.train("a a a a a a a a b b b", 300)
    return _triples(tok.merges)


@probe("bpe/regex_train",
       hint=("Stop early when no pair is left in any chunk; raise ValueError for vocab_size < "
             "256.",))
def regex_train_edges(nb):
    tok = nb.RegexTokenizer()
    tok.train("hi hi", 1000)
    return {"merges": _triples(tok.merges), "small": raised(nb.RegexTokenizer().train, "hi", 10)}


# --- encode --------------------------------------------------------------------------------------

def _special_tokenizer(nb):
    return _tokenizer(nb, _text_merges(), pattern=nb.GPT4_SPLIT_PATTERN,
                      special_tokens={"<|endoftext|>": 1000, "<|fim|>": 1001})


@probe("bpe/encode", hint="With no special token in the text, encode is encode_ordinary.")
def encode_plain_text(nb):
    return _special_tokenizer(nb).encode("the king thing  the\n")


@probe("bpe/encode",
       hint=("By default every registered special is disallowed: finding one in the text "
             "raises ValueError.",))
def encode_disallowed_raises(nb):
    tok = _special_tokenizer(nb)
    return [raised(tok.encode, "the <|endoftext|>"), raised(tok.encode, "<|fim|>", allowed_special={"<|endoftext|>"})]


@probe("bpe/encode",
       hint="Split the text around allowed specials (regex.split with a group) and encode the "
            "pieces.")
def encode_allowed_set(nb):
    tok = _special_tokenizer(nb)
    return [tok.encode("the<|endoftext|> king", allowed_special={"<|endoftext|>"}),
            tok.encode("<|endoftext|><|endoftext|>", allowed_special={"<|endoftext|>"})]


@probe("bpe/encode", hint="allowed_special=\"all\" allows every registered special token.")
def encode_allowed_all(nb):
    return _special_tokenizer(nb).encode("<|fim|>the<|endoftext|>", allowed_special="all")


@probe("bpe/encode",
       hint="disallowed_special=() turns the check off: the special's text is encoded as "
            "ordinary text.")
def encode_specials_as_text(nb):
    return _special_tokenizer(nb).encode("the <|endoftext|>", disallowed_special=())


@probe("bpe/encode",
       hint="Only the exact special string counts: '<|endoftext|' or '<|ENDOFTEXT|>' is ordinary "
            "text.")
def encode_look_alikes(nb):
    return _special_tokenizer(nb).encode("<|endoftext| <endoftext|> <|ENDOFTEXT|>")


@probe("bpe/encode",
       hint="An allowed_special name that is not registered is a ValueError; "
            "a bare string is a TypeError.")
def encode_bad_arguments(nb):
    tok = _special_tokenizer(nb)
    return [raised(tok.encode, "x", allowed_special={"<|nope|>"}),
            raised(tok.encode, "x", allowed_special="<|endoftext|>")]


# --- save ----------------------------------------------------------------------------------------

def _state_tokenizer(nb):
    return _tokenizer(nb, _text_merges(), pattern="'s| ?\\p{L}+|\\s+ \"q\"\n",
                      special_tokens={"<|endoftext|>": 300, "<|é \"x\"|>": 301})


def _save_text(nb, tok):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tok.bpe")
        tok.save(path)
        with open(path, encoding="utf-8") as f:
            return f.read()


@probe("bpe/save",
       hint="Lines: magic, pattern as JSON, byte_ids, special_tokens N + N lines, "
            "merges M + M lines.")
def save_text_format(nb):
    return _save_text(nb, _state_tokenizer(nb)).split("\n")


@probe("bpe/save",
       hint="Write 'byte_ids identity' only for the identity order; otherwise the 256 ids.")
def save_shuffled_bytes_and_no_pattern(nb):
    tok = _tokenizer(nb, {}, pattern=None, byte_ids=np.random.default_rng(8).permutation(256).tolist())
    return _save_text(nb, tok).split("\n")


# --- load ----------------------------------------------------------------------------------------

def _write(tmp, text):
    path = os.path.join(tmp, "tok.bpe")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def _state(tok):
    return {"pattern": tok.pattern, "byte_ids": list(tok.byte_ids), "special_tokens": dict(tok.special_tokens),
            "merges": _triples(tok.merges)}


@probe("bpe/load",
       hint="Parse each line as save writes it; json.loads reads the pattern and the special "
            "strings.")
def load_hand_written_file(nb):
    text = ('llmc-bpe v1\npattern " ?\\\\p{L}+|\\\\s+"\nbyte_ids identity\nspecial_tokens 1\n"<|endoftext|>" 258\n'
            "merges 2\n104 105 256\n256 33 257\n")
    with tempfile.TemporaryDirectory() as tmp:
        tok = nb.Tokenizer().load(_write(tmp, text))
        return _state(tok)


@probe("bpe/load",
       hint="Read byte_ids as 256 ints when it is not 'identity'; 'pattern null' means no "
            "pattern.")
def load_shuffled_bytes(nb):
    byte_ids = np.random.default_rng(9).permutation(256).tolist()
    text = ("llmc-bpe v1\npattern null\nbyte_ids " + " ".join(map(str, byte_ids)) + "\nspecial_tokens 0\n"
            f"merges 1\n{byte_ids[97]} {byte_ids[98]} 256\n")
    with tempfile.TemporaryDirectory() as tmp:
        tok = nb.Tokenizer().load(_write(tmp, text))
        return _state(tok)


@probe("bpe/load", hint=("A wrong first line, or a truncated file, must raise ValueError.",))
def load_rejects_bad_files(nb):
    good = "llmc-bpe v1\npattern null\nbyte_ids identity\nspecial_tokens 0\nmerges 2\n97 98 256\n256 99 257\n"
    bad = {"magic": good.replace("v1", "v9"), "truncated": good[:-12], "not_a_number": good.replace("256 99", "x 99"),
           "empty": ""}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in bad.items():
            out[name] = raised(nb.Tokenizer().load, _write(tmp, text))
    return out


@probe("bpe/load",
       hint="load(save(tok)) must give back the same state, special characters in the pattern "
            "included.")
def load_round_trip(nb):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tok.bpe")
        _state_tokenizer(nb).save(path)
        return _state(nb.Tokenizer().load(path))


# --- recover_merges ------------------------------------------------------------------------------

def _ranks(extra, byte_order=None):
    order = list(range(256)) if byte_order is None else byte_order
    ranks = {bytes([b]): order[b] for b in range(256)}
    ranks.update({token: 256 + i for i, token in enumerate(extra)})
    return ranks


@probe("bpe/recover_merges",
       hint="For each token, merge its bytes lowest rank first until two parts are left.")
def recover_small_table(nb):
    ranks = _ranks([b"ab", b"bc", b"abc", b"cd", b"abcd", b"bcd", b"aab"])
    return _triples(nb.recover_merges(ranks))


@probe("bpe/recover_merges",
       hint="The pair is (rank of part 1, rank of part 2), ranks looked up in the table.")
def recover_shuffled_bytes(nb):
    order = np.random.default_rng(10).permutation(256).tolist()
    return _triples(nb.recover_merges(_ranks([b"th", b"the", b" t", b" the", b"ee"], order)))


@probe("bpe/recover_merges", hint="Go through tokens in rank order; skip the 256 single bytes.")
def recover_gpt2_head(nb):
    from llmc_core.encodings import gpt2_mergeable_ranks
    ranks = {token: rank for token, rank in gpt2_mergeable_ranks().items() if rank < 1256}
    merges = _triples(nb.recover_merges(ranks))
    return {"count": len(merges), "first": merges[:30], "last": merges[-30:]}


# --- load_ranks ----------------------------------------------------------------------------------

@probe("bpe/load_ranks", hint="byte_ids[b] = ranks[bytes([b])]; merges = recover_merges(ranks).")
def load_ranks_shuffled(nb):
    order = np.random.default_rng(11).permutation(256).tolist()
    tok = nb.Tokenizer().load_ranks(_ranks([b"ab", b"abc", b"ca"], order), {"<|end|>": 259})
    return _state(tok)


@probe("bpe/load_ranks",
       hint=("A rank table missing a single byte cannot encode every text: raise ValueError.",))
def load_ranks_missing_byte(nb):
    ranks = _ranks([b"ab"])
    del ranks[bytes([200])]
    return raised(nb.Tokenizer().load_ranks, ranks, {})


# --- fast_train ----------------------------------------------------------------------------------

def _chunk_counts(text, pattern):
    return dict(Counter(chunk.encode() for chunk in regex.findall(pattern, text)))


@probe("bpe/fast_train",
       hint="Same rule as the naive trainer: highest count, ties to the smallest pair.")
def fast_train_random_text(nb):
    counts = _chunk_counts(_random_text(12, 600), nb.GPT4_SPLIT_PATTERN)
    return _triples(nb.train_merges_fast(counts, 256 + 80))


@probe("bpe/fast_train", hint="Weight each chunk's pairs by the chunk's count.")
def fast_train_weighted_chunks(nb):
    return _triples(nb.train_merges_fast({b"ab": 5, b"bc": 3, b"abc": 2, b"cab": 1}, 256 + 4))


@probe("bpe/fast_train",
       hint="Overlapping pairs: subtract all old pairs of a chunk and add all new ones after "
            "merging.")
def fast_train_overlapping_runs(nb):
    return _triples(nb.train_merges_fast({b"aaaa": 3, b"aaa": 2, b"aab": 4, b"baaab": 1}, 256 + 6))


@probe("bpe/fast_train",
       hint=("Stop when no pair is left; raise ValueError for vocab_size < 256.",))
def fast_train_edges(nb):
    return {"merges": _triples(nb.train_merges_fast({b"hi": 2, b"h": 1}, 1000)),
            "empty": _triples(nb.train_merges_fast({}, 300)),
            "small": raised(nb.train_merges_fast, {b"ab": 1}, 100)}
