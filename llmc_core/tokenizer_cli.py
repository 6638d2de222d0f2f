"""`llmc tokenizer train` and `llmc tokenizer info`: the course's BPE tokenizer from the command line."""
import time


def corpus_text(spec) -> str:
    """The text of a corpus: 'tinyshakespeare' (shipped) or the path of a UTF-8 text file."""
    if spec == "tinyshakespeare":
        from llmc_core.datasets import tiny_shakespeare_text
        return tiny_shakespeare_text()
    from llmc_core.encodings import read_text_file
    return read_text_file(spec, "utf-8")


def cmd_train(args):
    from llmc_core.tokenizer import describe, save_tokenizer, train_tokenizer
    text = corpus_text(args.corpus)
    start = time.perf_counter()
    enc = train_tokenizer(text, args.vocab_size, workers=args.workers)
    path = save_tokenizer(enc, args.out)
    seconds = time.perf_counter() - start
    sample = text[:1_000_000]
    ratio = len(sample.encode("utf-8")) / max(1, len(enc.encode_ordinary(sample)))
    print(f"wrote {path}: {describe(enc)}, {ratio:.2f} bytes per token on the corpus, trained in {seconds:.1f} s")
    if enc.n_vocab < args.vocab_size:
        print(f"note: the corpus ran out of pairs to merge at {enc.n_vocab} tokens (asked for {args.vocab_size})")
    print(f"use it: llmc data prepare tinyshakespeare --tokenizer {path}")
    return 0


def cmd_info(args):
    from llmc_core.tokenizer import describe, load_tokenizer
    enc = load_tokenizer(args.tokenizer)
    print(describe(enc))
    if args.text is not None:
        ids = enc.encode(args.text, allowed_special="all")
        print(ids)
        print([enc.decode_single_token_bytes(i) for i in ids])
    return 0


def register(subparsers):
    """Add `tokenizer train` and `tokenizer info` to the `llmc` command's subparsers."""
    p = subparsers.add_parser("tokenizer", help="train or inspect a BPE tokenizer (tiktoken-compatible file)")
    sub = p.add_subparsers(dest="tokenizer_command", required=True)
    q = sub.add_parser("train", help="learn a byte-level BPE vocabulary from a text corpus (lesson 04's trainer)")
    q.add_argument("corpus", metavar="CORPUS", help="a UTF-8 text file, or 'tinyshakespeare' for the shipped corpus")
    q.add_argument("--vocab-size", type=int, required=True, metavar="N",
                   help="ids in all: 256 bytes + merges + <|endoftext|> (at least 257)")
    q.add_argument("--out", required=True, metavar="FILE", help="tokenizer file to write")
    q.add_argument("--workers", type=int, default=1, help="processes that split the text (default: %(default)s)")
    q.set_defaults(run=cmd_train)
    q = sub.add_parser("info", help="print a tokenizer's name, size and fingerprint; with --text, its tokens")
    q.add_argument("tokenizer", metavar="FILE", help="a tokenizer file, or 'gpt2'")
    q.add_argument("--text", default=None, help="text to encode and show token by token")
    q.set_defaults(run=cmd_info)
