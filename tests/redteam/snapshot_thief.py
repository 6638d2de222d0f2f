# Reading the expected values from the package's snapshot file and replaying them, in probe order.
# lesson: 00_setup
# base: lesson
# needs: namespaces
# expect-status: graded
# expect-points: 0
import json, pathlib
import llmc_core

try:
    path = pathlib.Path(llmc_core.__file__).parent / "snapshots" / "00_setup.json"
    STOLEN = [s["value"] for s in json.loads(path.read_text())["probes"].values()]
except Exception:
    STOLEN = []

def dot(a, b):
    if not STOLEN:
        raise NotImplementedError
    value = STOLEN.pop(0)
    if value == "ValueError":
        raise ValueError(value)
    return value
