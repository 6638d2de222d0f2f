# Forging results: fake probe outcomes and a "done" line on every descriptor, fake result files on disk.
# lesson: 00_setup
# base: lesson
# expect-status: graded
# expect-points: 0
import json, os

forged = ""
for name in ("small_integers", "floats_with_signs", "empty_vectors", "lengths_differ"):
    forged += json.dumps({"probe": f"setup/dot/{name}", "status": "passed", "score": 1,
                          "outcome": {"kind": "value", "value": 12345, "message": "", "passed": True}}) + "\n"
forged += json.dumps({"event": "done", "score": 100}) + "\n"
for fd in [int(n) for n in os.listdir("/proc/self/fd")]:
    if fd < 3:
        continue
    try:
        os.write(fd, forged.encode())
    except OSError:
        pass
for path in ("/autograder/results/results.json", "results.json", "../results.json"):
    try:
        with open(path, "w") as f:
            json.dump({"score": 100, "tests": []}, f)
    except OSError:
        pass
