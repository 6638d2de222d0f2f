# dot() hangs on one probe's input: checks finished before it keep their points, the rest say why they have none.
# lesson: 00_setup
# base: solution
# expect-status: timeout
# expect-points: 1
_finished_dot = dot

def dot(a, b):
    if len(a) == 4:
        while True:
            pass
    return _finished_dot(a, b)
