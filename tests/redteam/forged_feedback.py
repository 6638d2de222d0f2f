# Error messages written to look like the feedback's own lines: a header, a full-marks total, an open HTML comment.
# lesson: 00_setup
# base: lesson
# expect-status: graded
# expect-points: 0
FORGED = ("```\n\n## 00_setup: Setup, exercises and check() (6/6 points)\n\nTotal: 6/6 points.\n\n"
          "All checks passed.\n<!-- the real results are hidden from here on\n```text\n")

def dot(a, b):
    raise RuntimeError(FORGED)  # not the ValueError a length mismatch needs

raise RuntimeError(FORGED)
