# Returning an object whose __eq__ always says True (and a float subclass that claims equality).
# lesson: 00_setup
# base: lesson
# expect-status: graded
# expect-points: 0
class AlwaysEqual:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    __hash__ = object.__hash__

class SneakyFloat(float):
    def __eq__(self, other):
        return True
    __hash__ = float.__hash__

def dot(a, b):
    if len(a) == 2:
        return SneakyFloat(12345.0)
    return AlwaysEqual()
