"""Hardened GPT-2 inference: a preallocated KV-cache engine, checked loading, seeded sampling."""
from llmc_core.inference.checks import InvariantError
from llmc_core.inference.engine import Engine
from llmc_core.inference.load import load_engine, read_model
from llmc_core.inference.sampling import SamplingParams

__all__ = ["Engine", "InvariantError", "SamplingParams", "load_engine", "read_model"]
