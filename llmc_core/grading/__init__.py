"""Instructor grading: sandboxed batch grading, gradebook and feedback, releases, Gradescope.

See docs/instructors.md. The command line is in `cli.py`; the pipeline in `grade.py`.
"""
