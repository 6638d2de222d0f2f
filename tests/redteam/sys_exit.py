# sys.exit in a cell: the cell fails, loading goes on, the rest of the notebook still counts.
# lesson: 00_setup
# base: solution
# position: start
# expect-status: graded
# expect-points: max
import sys
sys.exit("leaving early")
