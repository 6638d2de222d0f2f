"""Speedrun result cards: check them, rank them, and make leaderboards of them.

A card is the `speedrun.json` that `llmc speedrun` writes (llmc_core/speedrun.py). Leaderboards:
- a learner's own file (`llmc speedrun --leaderboard FILE`): a JSON object holding a list of cards, appended to;
- the cohort's, built by `llmc grade` from the `speedrun.json` in each submission: a table in
  `summary.md`, and Gradescope's `leaderboard` field in each student's results.json.

A card from a submission is untrusted data: it is read with a size limit, parsed as JSON (never
run), and every field is type- and range-checked against `CARD_SPEC`; a card that fails says why
in one line and is left off the board, and nothing else about grading changes. A card is
self-reported: it records everything needed to run it again (options, seed, budget), which is how
an instructor verifies a winner. Cards compete only with cards of the same budget and reference
workload (`group_of`); lower validation bits per byte ranks higher.
"""
import json

from llmc_core.fileio import atomic_write_json

CARD_NAME = "speedrun.json"
CARD_FORMAT = "llmc-speedrun"
LEADERBOARD_FORMAT = "llmc-speedrun-leaderboard"
MAX_CARD_BYTES = 64 << 10
MAX_LEADERBOARD_BYTES = 64 << 20
MAX_TEXT = 200  # characters of any text field
MAX_OPTIONS = 100


class CardError(ValueError):
    """A card that is not a valid speedrun card; the message names the field and what is wrong."""


# ---------------------------------------------------------------------------------------------
# checking one card


def number(lo, hi, integer=False):
    """A checker of a number in [lo, hi] (an int when `integer`); booleans, NaN and infinities are refused."""
    def check(value, where):
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise CardError(f"{where} must be {'an integer' if integer else 'a number'}, got {kind(value)}")
        if not lo <= value <= hi:  # False for NaN and for an infinity
            raise CardError(f"{where} must be between {lo:g} and {hi:g}, got {short(value)}")
        return value
    return check


def text(choices=None, max_len=MAX_TEXT):
    """A checker of a printable string of at most max_len characters (one of `choices` if given)."""
    def check(value, where):
        if not isinstance(value, str):
            raise CardError(f"{where} must be text, got {kind(value)}")
        if len(value) > max_len or not value.isprintable():
            raise CardError(f"{where} must be printable text of at most {max_len} characters")
        if choices is not None and value not in choices:
            raise CardError(f"{where} must be one of {', '.join(choices)}, got {short(value)}")
        return value
    return check


def options(value, where):
    """The run's options: {TrainConfig field: a bool, number or short text}."""
    if not isinstance(value, dict) or len(value) > MAX_OPTIONS:
        raise CardError(f"{where} must be an object of at most {MAX_OPTIONS} options, got {kind(value)}")
    for key, v in value.items():
        text(max_len=40)(key, f"{where} key")
        if not isinstance(v, bool):
            (text(max_len=1000) if isinstance(v, str) else number(-1e18, 1e18))(v, f"{where}.{key}")
    return dict(value)


CARD_SPEC = {
    "format": text([CARD_FORMAT]),
    "version": number(1, 1, integer=True),
    "name": text(max_len=64),
    "val_bpb": number(1e-3, 32.0),  # validation bits per byte; 8 would be a model no better than raw bytes
    "budget": {"reference_steps": number(1, 1e9, integer=True), "seconds": number(0, 1e8),
               "clock": text(["cpu", "wall"])},
    "calibration": {"seconds_per_reference_step": number(1e-9, 1e5), "reference": text(),
                    "threads": number(0, 1 << 16, integer=True), "device": text(max_len=40),
                    "timed_steps": number(1, 1e6, integer=True)},
    "recipe": text(),
    "options": options,
    "steps": number(0, 1e12, integer=True),
    "tokens": number(0, 1e16, integer=True),
    "parameters": number(1, 1e13, integer=True),
    "seed": number(0, 2**64, integer=True),
    "unigram_bpb": number(0, 64.0),
    "used_s": number(0, 1e8),
    "wall_s": number(0, 1e8),
    "software": {"python": text(max_len=40), "torch": text(max_len=40), "numpy": text(max_len=40),
                 "llmc": text(max_len=40)},
    "date": text(max_len=40),
}


def checked(value, spec, where="card"):
    """`value` checked against `spec` (a checker, or a dict of them); returns it with only the known fields."""
    if callable(spec):
        return spec(value, where)
    if not isinstance(value, dict):
        raise CardError(f"{where} must be an object, got {kind(value)}")
    missing = [key for key in spec if key not in value]
    if missing:
        raise CardError(f"{where} lacks {', '.join(missing)}")
    return {key: checked(value[key], sub, f"{where}.{key}" if where != "card" else key) for key, sub in spec.items()}


def check_card(card):
    """The card, checked (CardError says what is wrong), with only the fields of CARD_SPEC."""
    return checked(card, CARD_SPEC)


def parse_card(data, max_bytes=MAX_CARD_BYTES):
    """A checked card from the bytes of a speedrun.json; CardError when they are not one."""
    if len(data) > max_bytes:
        raise CardError(f"it is {len(data):,} bytes, over the {max_bytes:,}-byte limit for a card")
    try:
        card = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise CardError("it is not UTF-8 text") from None
    except RecursionError:
        raise CardError("its JSON is nested too deeply") from None
    except ValueError as e:
        raise CardError(f"its JSON does not parse ({str(e)[:100]})") from None
    return check_card(card)


def kind(value):
    names = {dict: "an object", list: "a list", str: "text", bool: "a boolean", int: "an integer",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def short(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------------------------------------
# ranking


def group_of(card):
    """What a card competes within: cards of the same budget on the same reference workload."""
    return card["budget"]["reference_steps"], card["calibration"]["reference"]


def ranked(entries):
    """[(rank, name, card)] of [(name, card)]: grouped by group_of (largest budget first), best bpb first in each."""
    rows, groups = [], sorted({group_of(card) for _, card in entries}, key=lambda g: (-g[0], g[1]))
    for group in groups:
        members = sorted((e for e in entries if group_of(e[1]) == group), key=lambda e: (e[1]["val_bpb"], e[0]))
        rows += [(rank, name, card) for rank, (name, card) in enumerate(members, start=1)]
    return rows


def row_cells(rank, name, card):
    """The cells of one leaderboard row, as text."""
    return [str(rank), name, f"{card['val_bpb']:.4f}", card["recipe"], f"{card['parameters']:,}",
            f"{card['tokens']:,}", f"{card['budget']['reference_steps']:,}",
            f"{1 / card['calibration']['seconds_per_reference_step']:.2f}", f"{card['wall_s']:.0f}"]


HEADER = ["rank", "name", "val bpb", "recipe", "parameters", "tokens", "budget (ref. steps)",
          "machine (ref. steps/s)", "wall s"]
TEXT_COLUMNS = (1, 3)  # name and recipe: left-aligned; numbers right-aligned


def table_text(entries):
    """The ranked leaderboard as aligned plain text, one line per card."""
    rows = [HEADER] + [row_cells(*row) for row in ranked(entries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    return "\n".join("  ".join(cell.ljust(w) if i in TEXT_COLUMNS else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))).rstrip() for row in rows)


def table_markdown(entries, rejected=()):
    """Markdown lines of the cohort leaderboard; `rejected`: [(name, why)] of cards left off it."""
    from llmc_core.grading.gradebook import message_line as escape  # learner-made text, shown as inert text
    lines = ["Self-reported `speedrun.json` cards, ranked by validation bits per byte within each budget "
             "(each card's options and seed let you run it again).", "",
             "| " + " | ".join(HEADER) + " |",
             "| " + " | ".join("---" if i in TEXT_COLUMNS else "---:" for i in range(len(HEADER))) + " |"]
    lines += ["| " + " | ".join(escape(c) for c in row_cells(*row)) + " |" for row in ranked(entries)]
    if rejected:
        lines += ["", "Cards not counted:", ""] + [f"- {escape(name)}: {escape(why)}" for name, why in rejected]
    return lines


def gradescope_leaderboard(card):
    """Gradescope's `leaderboard` entries for one submission's card (lower bpb ranks higher)."""
    return [{"name": "val bpb", "value": round(card["val_bpb"], 5), "order": "asc"},
            {"name": "budget (reference steps)", "value": card["budget"]["reference_steps"]},
            {"name": "recipe", "value": card["recipe"]},
            {"name": "parameters", "value": card["parameters"]}]


# ---------------------------------------------------------------------------------------------
# a leaderboard file


def read_leaderboard(path):
    """([(name, card)], [(index, why)]) of a leaderboard file; a missing file is an empty board."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], []
    if len(data) > MAX_LEADERBOARD_BYTES:
        raise ValueError(f"{path} is {len(data):,} bytes, too large for a leaderboard; start a new file")
    try:
        board = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValueError(f"{path} is not a speedrun leaderboard ({str(e)[:100]}); pass another file, "
                         "or move this one away to start a new board") from None
    if not (isinstance(board, dict) and board.get("format") == LEADERBOARD_FORMAT
            and isinstance(board.get("cards"), list)):
        raise ValueError(f"{path} is not a speedrun leaderboard written by `llmc speedrun`; pass another file")
    good, bad = [], []
    for index, card in enumerate(board["cards"]):
        try:
            card = check_card(card)
            good.append((card["name"], card))
        except CardError as e:
            bad.append((index, str(e)))
    return good, bad


def append_to_leaderboard(path, card):
    """Add a card to a leaderboard file (created if missing); every card already there is kept, even a bad one."""
    read_leaderboard(path)  # refuses a file that is not a leaderboard before writing over it
    cards = json.loads(path.read_text(encoding="utf-8"))["cards"] if path.exists() else []
    atomic_write_json(path, {"format": LEADERBOARD_FORMAT, "cards": cards + [check_card(card)]})


# ---------------------------------------------------------------------------------------------
# the cohort's board, from the submissions


def submission_card(student):
    """(card, None) for the speedrun.json in a student's submission, (None, why) for a bad one,
    (None, None) for none."""
    from llmc_core.grading.protocol import MISSING, TOO_LARGE
    from llmc_core.grading.submissions import read_submission_file
    found = read_submission_file(student, CARD_NAME, MAX_CARD_BYTES)
    if found.status == MISSING:
        return None, None
    if found.status == TOO_LARGE:
        return None, f"{CARD_NAME} is over the {MAX_CARD_BYTES:,}-byte limit for a card"
    if found.status != "ok":
        return None, found.message
    try:
        return parse_card(found.data), None
    except CardError as e:
        return None, f"{CARD_NAME} is not a valid speedrun card: {e}"


def add_submission_card(student, results, board):
    """Put the student's card on `board` ({"entries": [(name, card)], "rejected": [(name, why)]}) and into
    their Gradescope `results` (the leaderboard field, or a line saying why the card was not counted)."""
    try:
        card, why = submission_card(student)
    except Exception as e:  # noqa: BLE001  a card that breaks the reader costs the card only, never the grade
        card, why = None, f"{CARD_NAME} could not be read: {type(e).__name__}"
    if card is not None:
        board["entries"].append((student.name, card))
        results["leaderboard"] = gradescope_leaderboard(card)
    elif why is not None:
        board["rejected"].append((student.name, why))
        results["output"] = "\n".join(line for line in (results["output"], f"Leaderboard: {why}") if line)
