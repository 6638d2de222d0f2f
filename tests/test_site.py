"""The course website builds with `mkdocs build --strict`: a page per lesson, solution code never on it."""
import html
import re
import subprocess
import sys

import pytest

from llmc_core.build import BEGIN, project_settings
from llmc_core.course import LESSONS, REPO_DIR, SOLUTIONS_DIR
from llmc_core.notebook import read_notebook
from llmc_core.site import (
    blank_line_before_lists,
    build_pages,
    executed,
    home_page,
    lesson_page_notebook,
    write_lesson_page,
)
from test_build import SOLUTIONS, solution_only_lines

FIRST = SOLUTIONS_DIR / f"{LESSONS[0].notebook}.ipynb"


def mkdocs_build(source, site):
    """`mkdocs build` with the repository's mkdocs.yml (strict), reading `source` and writing `site`."""
    config = source.parent / "mkdocs.yml"
    config.write_text(f"INHERIT: {REPO_DIR / 'mkdocs.yml'}\ndocs_dir: {source}\nsite_dir: {site}\n")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "-f", str(config)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Every lesson rendered without running it, except the first, which runs (a few seconds)."""
    folder = tmp_path_factory.mktemp("site")
    build_pages(folder / "src", execute=False)
    first = executed(FIRST, folder / "cache")
    write_lesson_page(lesson_page_notebook(first, FIRST.name, project_settings()),
                      FIRST.stem, folder / "src" / "lessons")
    result = mkdocs_build(folder / "src", folder / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "site"


def test_home_page_is_the_readme_with_lessons_linked(site):
    home = (site / "index.html").read_text()
    for lesson in LESSONS:
        assert f'href="lessons/{lesson.notebook}/"' in home
    assert "docs/" not in home_page("[the trainer](docs/trainer.md)")


def test_lesson_pages_show_outputs(site):
    page = (site / "lessons" / FIRST.stem / "index.html").read_text()
    assert "YOUR CODE HERE" in page and "✓" in page  # the check() cell's output from the executed solution


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_no_solution_code_on_the_site(site, path):
    page = html.unescape(re.sub(r"<[^>]+>", "", (site / "lessons" / path.stem / "index.html").read_text()))
    leaked = solution_only_lines(read_notebook(path)) & {line.strip() for line in page.splitlines()}
    assert "YOUR CODE HERE" in page and BEGIN not in page and leaked == set()


def test_reference_pages_are_there(site):
    for page in sorted((REPO_DIR / "docs").glob("*.md")):
        assert (site / page.stem / "index.html").exists()


def test_a_broken_link_fails_the_build(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "index.md").write_text("[nowhere](missing.md)\n")
    result = mkdocs_build(tmp_path / "src", tmp_path / "site")
    assert result.returncode != 0 and "missing.md" in result.stderr


def test_lists_right_after_a_paragraph_become_lists_but_code_stays():
    text = "You will write:\n- a\n- b\n  more\n- c\n\n```\nkeys:\n- y\n```\n"
    assert blank_line_before_lists(text) == "You will write:\n\n- a\n- b\n  more\n- c\n\n```\nkeys:\n- y\n```\n"
