# Spreading memory over several processes, each under the per-process limit, together far over it.
# lesson: 00_setup
# base: lesson
# needs: cgroups
# alone: yes
# expect-status: graded
# expect-points: 0
import os
import time

import numpy as np

reports, children = [], []
for _ in range(3):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        hoard = np.ones(700 << 20, dtype=np.uint8)  # touched: resident, not only reserved
        os.write(write_end, b"ok")
        time.sleep(30)  # hold the memory until grading ends
        os._exit(0)
    os.close(write_end)
    reports.append(read_end)
    children.append(pid)
held = [os.read(fd, 2) for fd in reports]
# Each "ok" was true when sent, but the OOM killer may then pick an earlier hoarder, not the newest:
# count those still alive once the last one has reported.
time.sleep(0.5)
alive = sum(os.waitpid(pid, os.WNOHANG) == (0, 0) for pid in children)
print("processes holding 700 MB each:", alive)
if alive == 3:
    def dot(a, b):
        if len(a) != len(b):
            raise ValueError("lengths differ")
        return sum(x * y for x, y in zip(a, b))
