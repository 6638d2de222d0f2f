"""The course website's pages, for MkDocs: `python -m llmc_core.site build/site-src`, then `mkdocs build` (`make site`).

- each lesson is a page with its prose and the outputs (plots, tables, samples) of its executed solution, and the
  exercise code as learners see it (`# YOUR CODE HERE`): the solution code never reaches the site;
- the README, its lesson map linked to those pages, is the home page; docs/*.md are reference pages.
Executed solutions are cached under the cache folder by content, so a second build only converts.
"""
import argparse
import hashlib
import os
import re
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

import nbformat

from llmc_core.build import course_sources, project_settings, strip_solutions
from llmc_core.course import LESSONS, REPO_DIR
from llmc_core.fileio import atomic_write_bytes, atomic_write_text
from llmc_core.notebook import cell_source

LIST_ITEM = re.compile(r"^([-*+]|\d+\.)\s")
# MathJax reads the math that pymdownx.arithmatex marks (mkdocs.yml loads MathJax itself).
MATHJAX_CONFIG = """window.MathJax = {
  tex: {inlineMath: [["\\\\(", "\\\\)"]], displayMath: [["\\\\[", "\\\\]"]], processEscapes: true},
  options: {processHtmlClass: "arithmatex", ignoreHtmlClass: ".*"}
};
"""


@contextmanager
def kernel_environment():
    """What the kernel inherits: the small size, and matplotlib's inline backend (figures become outputs)."""
    saved = {name: os.environ.get(name) for name in ("LLMC_SMALL", "MPLBACKEND")}
    os.environ["LLMC_SMALL"] = "1"
    os.environ.pop("MPLBACKEND", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def executed(solution, cache, timeout=1200):
    """The solution run top to bottom at the small size (LLMC_SMALL=1), from the cache when it has this version."""
    path = Path(cache) / f"{solution.stem}.{hashlib.sha256(solution.read_bytes()).hexdigest()[:16]}.ipynb"
    if path.exists():
        return nbformat.read(path, as_version=4)
    from nbclient import NotebookClient
    nb = nbformat.read(solution, as_version=4)
    with kernel_environment():
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(solution.parent)}}).execute()
    atomic_write_text(path, nbformat.writes(nb))
    return nb


def blank_line_before_lists(text):
    """MkDocs' Markdown starts a list only after a blank line; Jupyter's (CommonMark) does not need one."""
    out, fenced, previous = [], False, ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and LIST_ITEM.match(line) and previous.strip() and not LIST_ITEM.match(previous) \
                and not previous.startswith((" ", "\t", "|")):
            out.append("")
        out.append(line)
        previous = line
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def lesson_page_notebook(nb, name, project):
    """The page's notebook: a Colab badge first, exercise code stubbed out (and its outputs dropped)."""
    nb = nbformat.from_dict(nb)
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "code":
            stubbed = strip_solutions(cell_source(cell), f"{name}, cell {number}")
            if stubbed != cell_source(cell):
                cell.source, cell.outputs = stubbed, []
        elif cell.cell_type == "markdown":  # docs/ pages sit at the site's root
            cell.source = blank_line_before_lists(cell_source(cell).replace("](../docs/", "](../"))
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(project.colab_badge(f"lessons/{name}")))
    return nb


def write_lesson_page(nb, stem, folder):
    """lessons/STEM.md and the images of its outputs in lessons/STEM_files/."""
    from nbconvert import MarkdownExporter
    body, resources = MarkdownExporter().from_notebook_node(nb, resources={"output_files_dir": f"{stem}_files"})
    for relative, data in resources.get("outputs", {}).items():
        atomic_write_bytes(folder / relative, data)
    atomic_write_text(folder / f"{stem}.md", body)


def home_page(readme):
    """The README with its links pointed at the site's pages: docs/ at the root, each lesson at its page."""
    text = blank_line_before_lists(readme.replace("](docs/", "]("))
    for lesson in LESSONS:
        text = re.sub(rf"^(\|[^|\n]*\| )`{lesson.notebook}`", rf"\1[`{lesson.notebook}`](lessons/{lesson.notebook}.md)",
                      text, flags=re.M)
    return text


def build_pages(out, root=REPO_DIR, cache=None, execute=True, names=None):
    """Write the site's Markdown sources to `out`; return the lesson pages written."""
    root, out = Path(root), Path(out)
    project = project_settings(root)
    if out.exists():
        shutil.rmtree(out)
    (out / "lessons").mkdir(parents=True)
    atomic_write_text(out / "js" / "mathjax-config.js", MATHJAX_CONFIG)
    atomic_write_text(out / "index.md", home_page((root / "README.md").read_text(encoding="utf-8")))
    for page in sorted((root / "docs").glob("*.md")):
        atomic_write_text(out / page.name, blank_line_before_lists(page.read_text(encoding="utf-8")))
    pages = []
    for solution in course_sources(root):
        if names and solution.stem not in names:
            continue
        if execute:
            nb = executed(solution, cache or root / "build" / "executed")
        else:
            nb = nbformat.read(solution, as_version=4)
        write_lesson_page(lesson_page_notebook(nb, solution.name, project), solution.stem, out / "lessons")
        pages.append(out / "lessons" / f"{solution.stem}.md")
    return pages


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m llmc_core.site", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the Markdown sources (mkdocs.yml's docs_dir)")
    parser.add_argument("--no-execute", action="store_true",
                        help="render the solutions without running them (no outputs)")
    parser.add_argument("--cache", type=Path, default=None, help="executed solutions (default: build/executed)")
    args = parser.parse_args(argv)
    for page in build_pages(args.out, cache=args.cache, execute=not args.no_execute):
        print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
