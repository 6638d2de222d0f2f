"""Probes of each lesson, one module per exercise-id prefix (see llmc_core.course.LESSONS)."""
