# An endless loop while the notebook loads: the notebook times out and earns nothing, the batch goes on.
# lesson: 00_setup
# base: solution
# expect-status: timeout
# expect-points: 0
while True:
    pass
