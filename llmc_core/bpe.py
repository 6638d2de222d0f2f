"""Lesson 04's fast BPE trainer, shipped so that `llmc tokenizer train` and the trainer can use it.

The teaching source is the solution notebook `solutions/04_bpe_tokenizer.ipynb` (section 12,
"A fast trainer"); these functions are the same code, and tests/test_tokenizer.py checks that
their source equals the notebook's cells, so the two cannot drift apart. Read the notebook for
the why of each step.
"""
import heapq
import multiprocessing
from collections import Counter, defaultdict

import regex


def merge(ids, pair, new_id):
    """Replace each occurrence of pair in ids by new_id, scanning left to right.

    ids: list of ints; pair: (int, int); new_id: int. Returns a new list; ids is not changed.
    Example: merge([5, 5, 5, 6], (5, 5), 256) -> [256, 5, 6]
    """
    out = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def count_chunks(text, pattern):
    """Counter of the UTF-8 bytes of each chunk of text under pattern."""
    return Counter(chunk.encode("utf-8") for chunk in regex.findall(pattern, text))


def count_chunks_parallel(text, pattern, workers=1):
    """count_chunks, on slices of text in `workers` processes; slices are cut before a letter that follows a newline."""
    # why fork: a spawned child cannot import functions defined in a notebook (Windows has no fork)
    if workers <= 1 or len(text) < 100_000 or "fork" not in multiprocessing.get_all_start_methods():
        return count_chunks(text, pattern)
    cuts = [0]
    for k in range(1, workers):
        found = regex.compile(r"\n(?=\p{L})").search(text, max(cuts[-1], len(text) * k // workers))
        if found:
            cuts.append(found.end())
    cuts.append(len(text))
    with multiprocessing.get_context("fork").Pool(len(cuts) - 1) as pool:
        parts = pool.starmap(count_chunks, [(text[a:b], pattern) for a, b in zip(cuts, cuts[1:])])
    return sum(parts, Counter())


def train_merges_fast(chunk_counts, vocab_size):
    """Merges {(id1, id2): new_id} learned from chunk_counts (dict bytes -> int), ids 256.. in order.

    Gives exactly the merges of RegexTokenizer.train on the same chunks: counts over all chunks,
    ties to the smallest pair, stop early when no pair is left. Raises ValueError if vocab_size < 256.
    """
    if vocab_size < 256:
        raise ValueError(f"vocab_size={vocab_size} is below 256, the number of single bytes; ask for at least 256")
    words = [list(chunk) for chunk in chunk_counts]
    weights = list(chunk_counts.values())
    counts = defaultdict(int)    # pair -> occurrences in the corpus
    where = defaultdict(set)     # pair -> indices of words that contain it (may hold stale ones)
    for w, ids in enumerate(words):
        for pair in zip(ids, ids[1:]):
            counts[pair] += weights[w]
            where[pair].add(w)
    heap = [(-c, pair) for pair, c in counts.items()]
    heapq.heapify(heap)
    merges = {}
    for new_id in range(256, vocab_size):
        while heap and counts.get(heap[0][1], 0) != -heap[0][0]:
            heapq.heappop(heap)  # stale entry: the count changed since it was pushed
        if not heap:
            break
        pair = heapq.heappop(heap)[1]
        merges[pair] = new_id
        delta = defaultdict(int)  # pair -> change of its count in this step
        for w in where.pop(pair):
            ids, weight = words[w], weights[w]
            merged = merge(ids, pair, new_id)
            if len(merged) == len(ids):
                continue  # stale index entry: this word no longer holds the pair
            # subtle: pairs overlap ("aaa"), so recount the whole word rather than patch neighbours
            for p in zip(ids, ids[1:]):
                delta[p] -= weight
            for p in zip(merged, merged[1:]):
                delta[p] += weight
                if new_id in p:
                    where[p].add(w)
            words[w] = merged
        for p, d in delta.items():
            if d:
                counts[p] += d
                if counts[p] > 0:
                    heapq.heappush(heap, (-counts[p], p))
                else:
                    del counts[p]
    return merges
