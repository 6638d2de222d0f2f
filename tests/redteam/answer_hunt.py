# Reading answers from wherever an installed or checked-out course keeps them (build/, dist/, tests/, wheels...).
# lesson: 00_setup
# base: lesson
# needs: namespaces
# alone: yes
# expect-status: graded
# expect-points: 0
import json, os

PLANTED = PLANTED_PATHS  # the test writes a working solution notebook at each of these places

def working_dot(path):
    try:
        space = {}
        for cell in json.load(open(path))["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "code" and source.startswith("def dot"):
                exec(source, space)
                return space["dot"] if space["dot"]([1, 2], [3, 4]) == 11 else None
    except Exception:
        return None

def search(top, skip=("proc", "sys", "dev", "usr")):
    for folder, subfolders, files in os.walk(top):
        subfolders[:] = [s for s in subfolders if folder != "/" or s not in skip]
        for name in files:
            if name.endswith(".ipynb") and "00_setup" in name:
                yield os.path.join(folder, name)

readable = [p for p in PLANTED if os.access(p, os.R_OK)]
print("readable planted answers:", readable)
for path in readable + sorted(set(search("/")) - {os.path.abspath("00_setup.ipynb")}):
    found = working_dot(path)
    if found:
        print("answer found at", path)
        dot = found
        break
