"""Speedrun cards: checked as untrusted input, ranked fairly, and collected by `llmc grade`
into a cohort leaderboard."""
import json
import zipfile

import pytest

from llmc_core.course import solution_path
from llmc_core.grading.grade import grade
from llmc_core.grading.leaderboard import (
    MAX_CARD_BYTES,
    CardError,
    append_to_leaderboard,
    check_card,
    gradescope_leaderboard,
    parse_card,
    ranked,
    read_leaderboard,
    table_text,
)


def card(val_bpb=1.8, budget=1000, name="ann", **changes):
    """A valid card, as `llmc speedrun` writes it, with some fields changed."""
    made = {"format": "llmc-speedrun", "version": 1, "name": name, "val_bpb": val_bpb,
            "budget": {"reference_steps": budget, "seconds": 0.3 * budget, "clock": "cpu"},
            "calibration": {"seconds_per_reference_step": 0.3, "reference": "gpt2 L4 NH4 C128 T128 B16 V4096",
                            "threads": 2, "device": "cpu", "timed_steps": 8},
            "recipe": "modern", "options": {"rope": True, "norm": "rms", "muon_lr": 0.02},
            "steps": 700, "tokens": 700 * 2048, "parameters": 1_234_567, "seed": 1337, "unigram_bpb": 3.1,
            "used_s": 299.5, "wall_s": 305.2,
            "software": {"python": "3.11.9", "torch": "2.4.0", "numpy": "1.26.4", "llmc": "0.9.0"},
            "date": "2026-11-29T21:00:00Z"}
    made.update(changes)
    return made


def test_a_valid_card_passes_unchanged():
    assert check_card(card()) == card()
    assert parse_card(json.dumps(card()).encode()) == card()


def test_unknown_fields_are_dropped():
    assert "comment" not in check_card(card(comment="hi"))


def with_value(path, value):
    made = card()
    *parents, last = path.split(".")
    target = made
    for key in parents:
        target = target[key]
    target[last] = value
    return made


@pytest.mark.parametrize("path, value, message", [
    ("val_bpb", "1.5", "val_bpb must be a number, got text"),
    ("val_bpb", float("nan"), "val_bpb must be between"),
    ("val_bpb", float("inf"), "val_bpb must be between"),
    ("val_bpb", -1.0, "val_bpb must be between"),
    ("tokens", True, "tokens must be an integer, got a boolean"),
    ("tokens", 1.5, "tokens must be an integer, got a number"),
    ("seed", 10**30, "seed must be between"),
    ("budget.clock", "moon", "budget.clock must be one of cpu, wall"),
    ("budget.reference_steps", 0, "budget.reference_steps must be between 1"),
    ("calibration", [1, 2], "calibration must be an object, got a list"),
    ("name", "\x1b[31mred", "name must be printable text"),
    ("recipe", "x" * 201, "recipe must be printable text of at most 200"),
    ("options", {"lr": [1]}, "options.lr must be a number, got a list"),
    ("options", {str(i): 1 for i in range(101)}, "options must be an object of at most 100"),
    ("software.torch", None, "software.torch must be text, got null"),
], ids=lambda v: str(v)[:20])
def test_bad_fields_are_named(path, value, message):
    with pytest.raises(CardError, match=message.replace("[", r"\[")):
        check_card(with_value(path, value))


def test_missing_fields_are_listed():
    broken = card()
    del broken["budget"], broken["seed"]
    with pytest.raises(CardError, match="card lacks budget, seed"):
        check_card(broken)


@pytest.mark.parametrize("data, message", [
    (b"[1, 2]", "card must be an object, got a list"),
    (b'{"val_bpb": ', "its JSON does not parse"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[" * (MAX_CARD_BYTES // 2 + 1) + b"]" * (MAX_CARD_BYTES // 2 + 1), "over the"),  # refused before parsing
    (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
    (("1" * 5000).encode(), "does not parse"),             # an integer with more digits than Python converts
    (json.dumps(card(val_bpb=float("nan"))).encode(), "val_bpb must be between"),  # JSON's NaN extension
], ids=["list", "truncated", "binary", "huge", "deep", "long-int", "nan"])
def test_bad_card_bytes_give_a_message_not_a_crash(data, message):
    with pytest.raises(CardError, match=message):
        parse_card(data)


def test_ranking_is_by_bpb_within_each_budget():
    entries = [("ann", card(1.8)), ("bob", card(1.7)), ("cy", card(1.6, budget=500)), ("dee", card(1.9)),
               ("eve", card(1.5, budget=500))]
    assert [(rank, name) for rank, name, _ in ranked(entries)] == [
        (1, "bob"), (2, "ann"), (3, "dee"), (1, "eve"), (2, "cy")]  # the larger budget's group first
    lines = table_text(entries).splitlines()
    assert lines[0].split()[:3] == ["rank", "name", "val"] and "bob" in lines[1] and "1.7000" in lines[1]


def test_gradescope_entries_rank_lower_bpb_higher():
    entries = gradescope_leaderboard(card(1.23456789))
    assert entries[0] == {"name": "val bpb", "value": 1.23457, "order": "asc"}
    assert all(set(e) <= {"name", "value", "order"} for e in entries)


def test_leaderboard_file_appends_and_keeps_bad_cards(tmp_path):
    path = tmp_path / "board.json"
    append_to_leaderboard(path, card(1.8, name="ann"))
    append_to_leaderboard(path, card(1.6, name="bob"))
    board = json.loads(path.read_text())
    board["cards"].append({"val_bpb": "cheat"})
    path.write_text(json.dumps(board))
    append_to_leaderboard(path, card(1.7, name="cy"))
    entries, bad = read_leaderboard(path)
    assert [name for _, name, _ in ranked(entries)] == ["bob", "cy", "ann"]
    assert bad == [(2, "card lacks format, version, name, budget, calibration, recipe, options, steps, tokens, "
                       "parameters, seed, unigram_bpb, used_s, wall_s, software, date")]
    assert len(json.loads(path.read_text())["cards"]) == 4  # the bad card is still in the file


def test_a_file_that_is_not_a_leaderboard_is_refused_and_kept(tmp_path):
    path = tmp_path / "notes.json"
    path.write_text('{"my": "notes"}')
    with pytest.raises(ValueError, match="not a speedrun leaderboard"):
        append_to_leaderboard(path, card())
    assert path.read_text() == '{"my": "notes"}'


# ---------------------------------------------------------------------------------------------
# the cohort leaderboard of `llmc grade`


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Five students with 00_setup's solution: three good cards (one in a zip), a forged one, and none."""
    root = tmp_path_factory.mktemp("cohort")
    subs = root / "subs"
    cards = {"ann": card(1.82, name="Ann"), "bob": card(1.71, name="Bob", recipe="custom (rope | x)"),
             "dee": card(val_bpb="0.01; DROP TABLE", name="Dee")}
    for student in ("ann", "bob", "dee", "fay"):
        (subs / student / "work").mkdir(parents=True)
        (subs / student / "00_setup.ipynb").write_bytes(solution_path("00_setup").read_bytes())
        if student in cards:
            (subs / student / "work" / "speedrun.json").write_text(json.dumps(cards[student]))
    with zipfile.ZipFile(subs / "cy.zip", "w") as archive:
        archive.write(solution_path("00_setup"), "00_setup.ipynb")
        archive.writestr("speedrun.json", json.dumps(card(1.95, name="Cy")))
    out = root / "grades"
    grade(subs, out, lessons=["00_setup"], jobs=2, progress=False)
    return out


def results(out, student):
    return json.loads((out / "results" / f"{student}.json").read_text())


def test_cohort_leaderboard_in_the_summary(cohort):
    text = (cohort / "summary.md").read_text()
    board = text[text.index("## Speedrun leaderboard"):]
    rows = [line for line in board.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[:3] for row in rows] == [["| 1", "bob", "1.7100"], ["| 2", "ann", "1.8200"],
                                                      ["| 3", "cy", "1.9500"]]
    assert r"custom (rope \| x)" in rows[0]  # learner text cannot break the table
    assert "- dee: speedrun.json is not a valid speedrun card: val_bpb must be a number, got text" in board
    assert "fay" not in board  # no card, nothing to say


def test_gradescope_results_carry_the_leaderboard(cohort):
    assert results(cohort, "bob")["leaderboard"][0] == {"name": "val bpb", "value": 1.71, "order": "asc"}
    assert results(cohort, "cy")["leaderboard"][0]["value"] == 1.95  # read from inside the zip
    dee = results(cohort, "dee")
    assert "leaderboard" not in dee and "Leaderboard: speedrun.json is not a valid speedrun card" in dee["output"]
    assert "leaderboard" not in results(cohort, "fay")


def test_a_card_never_changes_the_grade(cohort):
    scores = {s: results(cohort, s)["score"] for s in ("ann", "bob", "cy", "dee", "fay")}
    assert len(set(scores.values())) == 1 and scores["ann"] > 0
