# 200 MB printed: the grader drains and drops it (keeping a short tail), grading is unaffected.
# lesson: 00_setup
# base: solution
# expect-status: graded
# expect-points: max
import sys
line = "x" * 999 + "\n"
for _ in range(200_000):
    sys.stdout.write(line)
