"""The instructor's overview of a graded class: `grades/summary.md` and `grades/summary.png`.

Built from the same judged results as the gradebook (`write_summary` is called where it is written):
- per exercise, the share of students who passed all its probes and the mean points;
- per lesson, the distribution of scores: a table here, one histogram per lesson in the image;
- the slowest notebooks (wall-clock seconds in the sandbox), to set `--timeout` and spot runaway code;
- the probes that most students failed (a wrong answer, not a missing one), with the hint they were shown;
- the cohort's speedrun leaderboard, from the `speedrun.json` cards in the submissions (leaderboard.py).
"""
import io
import statistics
from collections import defaultdict

from llmc_core.checking import format_points
from llmc_core.exercises import exercises
from llmc_core.fileio import atomic_write_bytes, atomic_write_text
from llmc_core.grading.leaderboard import table_markdown

BINS = 10           # score histogram: tenths of the lesson's points
SLOWEST = 10        # notebooks listed by grading time
COMMON_FAILURE = 0.5  # a probe is a common failure when more than half of the students who submitted failed it


def exercise_rows(graded):
    """[(exercise, max points, pass rate, mean points)] in gradebook order; a student passes when every probe does."""
    earned, possible, passed = defaultdict(list), {}, defaultdict(list)
    for _, results, _ in graded:
        for lesson_results in results.values():
            for exercise, rs in exercises(lesson_results).items():
                earned[exercise].append(sum(r.points for r in rs))
                possible[exercise] = sum(r.max_points for r in rs)
                passed[exercise].append(all(r.status == "passed" for r in rs))
    return [(e, possible[e], sum(passed[e]) / len(passed[e]), statistics.fmean(earned[e])) for e in earned]


def lesson_scores(graded):
    """{lesson: (max points, [each student's points])}, students who submitted nothing included (as 0)."""
    scores = {}
    for _, results, _ in graded:
        for lesson, rs in results.items():
            _, points = scores.setdefault(lesson, (sum(r.max_points for r in rs), []))
            points.append(sum(r.points for r in rs))
    return scores


def histogram(points, max_points, bins=BINS):
    """Students per tenth of the maximum: [n in [0, 10%), ..., n in [90%, 100%]]."""
    counts = [0] * bins
    for p in points:
        counts[min(int(bins * p / max_points), bins - 1) if max_points else 0] += 1
    return counts


def slowest_notebooks(graded, n=SLOWEST):
    """[(seconds, student, lesson, status)] of the notebooks that took longest to grade."""
    rows = [(state.get("wall_s", 0.0), student, lesson, state["status"])
            for student, _, states in graded for lesson, state in states.items()
            if state and state["status"] != "missing"]
    return sorted(rows, key=lambda row: -row[0])[:n]


def common_failures(graded, threshold=COMMON_FAILURE):
    """[(probe id, students who failed it, students who submitted the lesson, hint)], most failed first."""
    failed, submitted, hints = defaultdict(int), defaultdict(int), {}
    for _, results, states in graded:
        for lesson, rs in results.items():
            if states.get(lesson) and states[lesson]["status"] == "missing":
                continue
            for r in rs:
                submitted[r.probe_id] += 1
                if r.status == "failed":  # a wrong result; "not implemented" and crashes say nothing about a trap
                    failed[r.probe_id] += 1
                    hints[r.probe_id] = r.hint
    rows = [(p, failed[p], submitted[p], hints[p]) for p in failed if failed[p] > threshold * submitted[p]]
    return sorted(rows, key=lambda row: (-row[1] / row[2], row[0]))


def percent(x):
    return f"{100 * x:.0f}%"


def summary_markdown(graded, speedruns=None):
    lines = [f"# Class summary: {len(graded)} students", "", "## Exercises", "",
             "| exercise | points | passed by | mean points |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| `{e}` | {format_points(m)} | {percent(rate)} | {mean:.2f} |"
              for e, m, rate, mean in exercise_rows(graded)]
    lines += ["", "## Lessons", "", "Scores as a share of the lesson's points (histograms: summary.png).", "",
              "| lesson | points | mean | median | min | max | "
              + " | ".join(f"{10 * i}%+" for i in range(BINS)) + " |",
              "| --- " * 6 + "| ---: " * BINS + "|"]
    for lesson, (max_points, points) in lesson_scores(graded).items():
        counts = histogram(points, max_points)
        stats = [statistics.fmean(points), statistics.median(points), min(points), max(points)]
        lines.append(f"| `{lesson}` | {format_points(max_points)} | " + " | ".join(f"{s:.2f}" for s in stats)
                     + " | " + " | ".join(map(str, counts)) + " |")
    lines += ["", f"## Slowest notebooks (top {SLOWEST})", "", "| seconds | student | lesson | status |",
              "| ---: | --- | --- | --- |"]
    lines += [f"| {s:.1f} | {student} | `{lesson}` | {status} |"
              for s, student, lesson, status in slowest_notebooks(graded)]
    failures = common_failures(graded)
    lines += ["", "## Checks most students failed", ""]
    lines += ["| check | failed by | hint |", "| --- | ---: | --- |"] if failures else [
        f"No check was failed by more than {percent(COMMON_FAILURE)} of the students who submitted its lesson."]
    lines += [f"| `{p}` | {n}/{of} | {hint.replace('|', '/')} |" for p, n, of, hint in failures]
    if speedruns and (speedruns["entries"] or speedruns["rejected"]):
        lines += ["", "## Speedrun leaderboard", ""] + table_markdown(speedruns["entries"], speedruns["rejected"])
    return "\n".join(lines) + "\n"


def summary_png(graded):
    """One histogram per lesson of the students' scores (share of the lesson's points), as PNG bytes."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state in the grader
    from matplotlib.ticker import MaxNLocator

    scores = lesson_scores(graded)
    columns = min(4, max(1, len(scores)))
    rows = -(-max(1, len(scores)) // columns)
    figure = Figure(figsize=(3.2 * columns, 2.4 * rows), layout="constrained")
    for index, (lesson, (max_points, points)) in enumerate(scores.items()):
        ax = figure.add_subplot(rows, columns, index + 1)
        ax.bar([10 * i for i in range(BINS)], histogram(points, max_points), width=9, align="edge")
        ax.set(title=lesson, xlabel="score (% of points)", ylabel="students", xlim=(0, 100))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def write_summary(out, graded, speedruns=None):
    """Write OUT/summary.md and OUT/summary.png; `graded` is [(student, {lesson: [ProbeResult]}, {lesson: state})],
    `speedruns` the cohort's speedrun cards (leaderboard.add_submission_card)."""
    if not graded:
        return
    atomic_write_text(out / "summary.md", summary_markdown(graded, speedruns))
    atomic_write_bytes(out / "summary.png", summary_png(graded))
