"""The offline GPT-2 and cl100k encodings against tiktoken's own recipes and Hugging Face's GPT-2 tokenizer."""

import pytest
import tiktoken
import tiktoken.load
import tiktoken_ext.openai_public as openai_public

from llmc_core import encodings
from llmc_core.datasets import tiny_shakespeare_text
from llmc_core.encodings import cl100k_encoding, gpt2_encoding

TEXTS = {
    "hello": "Hello world",
    "spaces": "  leading, trailing and   inner spaces  \n\n\tand tabs\t",
    "contractions": "I'm sure you'll say it's what we've done; HE'LL SAY IT'S DONE",
    "digits": "Pi is 3.14159265358979, 1,000,000 or 12345678901",
    "unicode": "naïve café, 日本語のテキスト, emoji 🤖🚀 and Ελληνικά",
    "code": "def f(x):\n    return x**2  # square\r\n\r\n",
    "special": "a <|endoftext|> in text is just text to encode_ordinary",
}


def tiktoken_recipe(name):
    """The Encoding that tiktoken builds for `name`, with its downloads redirected to our files."""

    def local(url):
        return str(encodings.DATA_DIR / ("gpt2" if "gpt-2" in url else "") / url.rsplit("/", 1)[1])

    def data_gym(vocab_bpe_file, encoder_json_file, vocab_bpe_hash, encoder_json_hash):
        # our encoder.json is the same mapping written compactly, so only vocab.bpe's hash can be checked
        load = tiktoken.load.data_gym_to_mergeable_bpe_ranks
        return load(local(vocab_bpe_file), local(encoder_json_file), vocab_bpe_hash)

    def tiktoken_bpe(url, expected_hash):
        return tiktoken.load.load_tiktoken_bpe(local(url), expected_hash)

    patch = pytest.MonkeyPatch()
    patch.setenv("TIKTOKEN_CACHE_DIR", "")  # read the files directly, write no cache
    patch.setattr(openai_public, "data_gym_to_mergeable_bpe_ranks", data_gym)
    patch.setattr(openai_public, "load_tiktoken_bpe", tiktoken_bpe)
    try:
        return tiktoken.Encoding(**getattr(openai_public, name)())
    finally:
        patch.undo()


@pytest.fixture(scope="module")
def reference():
    return {"gpt2": tiktoken_recipe("gpt2"), "cl100k": tiktoken_recipe("cl100k_base")}


OURS = {"gpt2": gpt2_encoding, "cl100k": cl100k_encoding}


def test_hello_world():
    assert gpt2_encoding().encode("Hello world") == [15496, 995]
    assert gpt2_encoding().eot_token == 50256
    assert gpt2_encoding().n_vocab == 50257


def test_cached():
    assert gpt2_encoding() is gpt2_encoding()
    assert cl100k_encoding() is cl100k_encoding()


@pytest.mark.parametrize("which", ["gpt2", "cl100k"])
def test_same_vocabulary_and_specials_as_tiktoken(which, reference):
    ours, ref = OURS[which](), reference[which]
    assert ours._mergeable_ranks == ref._mergeable_ranks
    assert ours._special_tokens == ref._special_tokens
    assert ours.n_vocab == ref.n_vocab


@pytest.mark.parametrize("text", list(TEXTS.values()), ids=list(TEXTS))
@pytest.mark.parametrize("which", ["gpt2", "cl100k"])
def test_encodes_like_tiktoken_and_round_trips(which, text, reference):
    ours = OURS[which]()
    ids = ours.encode_ordinary(text)
    assert ids == reference[which].encode_ordinary(text)
    assert ours.decode(ids) == text


@pytest.mark.parametrize("which", ["gpt2", "cl100k"])
def test_encodes_shakespeare_like_tiktoken(which, reference):
    text = tiny_shakespeare_text()[:200_000]
    assert OURS[which]().encode_ordinary(text) == reference[which].encode_ordinary(text)


def test_gpt2_encodes_like_huggingface_tokenizers():
    tokenizers = pytest.importorskip("tokenizers")
    hf = tokenizers.ByteLevelBPETokenizer(
        str(encodings.GPT2_ENCODER_JSON), str(encodings.GPT2_VOCAB_BPE), add_prefix_space=False
    )
    for name, text in TEXTS.items():  # HF knows no special tokens here: <|endoftext|> is text
        assert gpt2_encoding().encode_ordinary(text) == hf.encode(text).ids, name
    text = tiny_shakespeare_text()[:50_000]
    assert gpt2_encoding().encode_ordinary(text) == hf.encode(text).ids


def test_special_tokens():
    assert gpt2_encoding().encode("<|endoftext|>", allowed_special="all") == [50256]
    cl = cl100k_encoding()
    for token, i in encodings.CL100K_SPECIAL_TOKENS.items():
        assert cl.encode(token, allowed_special="all") == [i]
    with pytest.raises(ValueError):  # tiktoken refuses special tokens in text unless allowed
        gpt2_encoding().encode("<|endoftext|>")


def test_damaged_vocabulary_is_named(tmp_path):
    merges = encodings.GPT2_VOCAB_BPE.read_text(encoding="utf-8").split("\n")
    merges[1], merges[2] = merges[2], merges[1]  # swap the first two merges
    bad = tmp_path / "vocab.bpe"
    bad.write_text("\n".join(merges), encoding="utf-8")
    with pytest.raises(ValueError, match="vocab.bpe line 2"):
        encodings.gpt2_mergeable_ranks(bad, encodings.GPT2_ENCODER_JSON)
