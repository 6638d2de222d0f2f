# Reserving memory without bound: the address-space limit turns it into a MemoryError in this cell only.
# lesson: 00_setup
# base: solution
# expect-status: graded
# expect-points: max
import numpy as np
hoard = []
while True:
    hoard.append(np.empty(100_000_000, dtype=np.uint8))
