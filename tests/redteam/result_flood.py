# Flooding every inherited file descriptor, the results pipe included: capped, recorded, no points.
# lesson: 00_setup
# base: lesson
# expect-status: output too large
# expect-points: 0
import os
junk = b"{" * (1 << 20)
for fd in [int(n) for n in os.listdir("/proc/self/fd")]:
    if fd < 3:
        continue
    try:
        for _ in range(20):
            os.write(fd, junk)
    except OSError:
        pass
