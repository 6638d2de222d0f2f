# Searching the disk for any 00_setup notebook whose dot() works (solutions, other students) and using it.
# lesson: 00_setup
# base: lesson
# needs: namespaces
# expect-status: graded
# expect-points: 0
import json, os

def working_dot(path):
    try:
        cells = json.load(open(path))["cells"]
        space = {}
        for cell in cells:
            source = "".join(cell["source"])
            if cell["cell_type"] == "code" and source.startswith("def dot"):
                exec(source, space)
                if space["dot"]([1, 2], [3, 4]) == 11:
                    return space["dot"]
    except Exception:
        return None

def search(roots, skip=(".venv", "proc", "sys", "usr", "lib", ".git", "node_modules", "site-packages")):
    for root in roots:
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = [s for s in subfolders if s not in skip]
            for name in files:
                if name == "00_setup.ipynb":
                    found = working_dot(os.path.join(folder, name))
                    if found:
                        return found

import llmc_core
repo = os.path.dirname(os.path.dirname(llmc_core.__file__))
found = search([repo, "/tmp", "/root", "/home", "/srv", "/work"])
if found:
    dot = found
