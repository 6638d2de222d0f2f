# Returning numbers no float can hold (a 400-digit integer, the largest unsigned 64-bit value): only these checks fail.
# lesson: 00_setup
# base: lesson
# expect-status: graded
# expect-points: 0
import numpy as np

def dot(a, b):
    if all(isinstance(x, int) for x in a + b) and a:
        return np.uint64(2 ** 64 - 1)  # compared with an integer: wrong, but comparable
    return 10 ** 400  # compared with a float: OverflowError inside the comparison
