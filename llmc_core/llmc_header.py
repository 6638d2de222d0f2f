"""llm.c's file header, shared by all its binary files: 256 little-endian int32 (1024 bytes).

Slot 0 is a magic number saying what the file is, slot 1 its format version, the rest are the
file's own fields; unused slots are zero. Token shards, model checkpoints, debug states and
tokenizer files all start this way (see docs/trainer.md), so one reader checks them all and
names the file, and the kind of file it really is, in every error.
"""
from pathlib import Path

import numpy as np

HEADER_INTS = 256
HEADER_BYTES = 4 * HEADER_INTS

MODEL_MAGIC = 20240326
DEBUG_STATE_MAGIC = 20240327
TOKENIZER_MAGIC = 20240328
SHARD_MAGIC = 20240520
# what each magic number means, so that a wrong file is named as what it is
KINDS = {
    MODEL_MAGIC: "an llm.c model checkpoint",
    DEBUG_STATE_MAGIC: "an llm.c debug state",
    TOKENIZER_MAGIC: "an llm.c tokenizer file",
    SHARD_MAGIC: "an llm.c token shard",
    20240801: "a Llama-3 token shard (uint32 tokens)",
    20240522: "an llm.c eval file (HellaSwag/MMLU)",
    20240527: "an llm.c CUDA training state",
    # b"PK\x03\x04": a zip archive, which is how torch.save stores e.g. pytorch_model.bin
    0x04034B50: "a zip archive such as a PyTorch pytorch_model.bin: pass torch.load(path, weights_only=True) instead",
}


def header_bytes(magic: int, version: int, *fields: int) -> bytes:
    """The 1024-byte header: magic, version, then `fields` in slots 2, 3, ...; the rest zero."""
    values = [magic, version, *fields]
    if len(values) > HEADER_INTS:
        raise ValueError(f"an llm.c header holds {HEADER_INTS} ints, got {len(values)}")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[: len(values)] = values
    return header.tobytes()


def read_header(path, magic: int, versions, fix: str = "") -> tuple[np.ndarray, int]:
    """(the 256 header ints as int64, file size) of the llm.c file at `path`, checked.

    Raises ValueError naming the file if it is missing, shorter than the header, has another magic
    number (saying what kind of file that number means) or a version not in `versions`. `fix` is
    appended to the messages: how to get a good file.
    """
    path = Path(path)
    what = KINDS[magic]
    fix = f"; {fix}" if fix else ""
    if not path.is_file():
        raise ValueError(f"{path} does not exist (or is not a file); expected {what}{fix}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(HEADER_BYTES)
    if len(raw) >= 4:  # the magic first: a wrong kind of file should be named as such, not as truncated
        found = int(np.frombuffer(raw[:4], dtype="<i4")[0])
        if found != magic:
            kind = KINDS.get(found, "not an llm.c file")
            raise ValueError(f"{path}: wrong magic number {found}, expected {magic} for {what}; "
                             f"magic {found} is {kind}{fix}")
    if len(raw) < HEADER_BYTES:
        raise ValueError(f"{path}: truncated: {size} bytes, shorter than llm.c's {HEADER_BYTES}-byte header "
                         f"of {what}{fix}")
    header = np.frombuffer(raw, dtype="<i4").astype(np.int64)
    if int(header[1]) not in versions:
        known = ", ".join(str(v) for v in versions)
        raise ValueError(f"{path}: {what} of version {int(header[1])}; this reader knows version {known}{fix}")
    return header, size


def check_unused(path, header, first_unused: int, what: str):
    """ValueError naming the file if a header slot from `first_unused` on is not zero (llm.c writes zeros)."""
    nonzero = np.flatnonzero(header[first_unused:])
    if nonzero.size:
        slot = first_unused + int(nonzero[0])
        raise ValueError(f"{path}: header slot {slot} holds {int(header[slot])}, but {what} leaves slots "
                         f"{first_unused}.. zero: the file is damaged")
