# Spreading memory over several processes, each under the per-process limit, together far over it.
# lesson: 00_setup
# base: lesson
# needs: cgroups
# alone: yes
# expect-status: graded
# expect-points: 0
import os
import numpy as np

reports = []
for _ in range(3):
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        hoard = np.ones(700 << 20, dtype=np.uint8)  # touched: resident, not only reserved
        os.write(write_end, b"ok")
        import time
        time.sleep(30)  # hold the memory until grading ends
        os._exit(0)
    os.close(write_end)
    reports.append(read_end)
held = [os.read(fd, 2) for fd in reports]
print("processes holding 700 MB each:", held.count(b"ok"))
if held.count(b"ok") == 3:
    def dot(a, b):
        if len(a) != len(b):
            raise ValueError("lengths differ")
        return sum(x * y for x, y in zip(a, b))
