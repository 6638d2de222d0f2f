# A fork bomb: the process limit stops it, the wall clock ends it, and no process survives grading.
# lesson: 00_setup
# base: lesson
# expect-status: timeout
# expect-points: 0
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
