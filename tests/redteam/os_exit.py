# os._exit in a cell ends the process at once: the notebook is recorded as crashed, earning nothing.
# lesson: 00_setup
# base: solution
# expect-status: crashed
# expect-points: 0
import os
os._exit(0)
