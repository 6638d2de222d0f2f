"""Performance counters of the CPU emulator, as plain dicts.

    prof = kernel(grid, block, args, profile=True)      # one launch
    with profiling() as launches:                       # every launch inside, e.g. a learner's function
        run_my_layer(...)
    prof = probing.profile_launch(code, "gelu", grid, block, args)   # on the emulator, whatever the backend

A profiled launch runs a second build of the kernel in which every memory access and basic
block reports itself to the runtime (profiler.cpp); a normal launch runs the normal build, so
counting costs nothing when it is off.  The counters:

global memory, per array argument (`arrays`) and summed (`global`), split into loads and stores:
  *_requests      warp-wide requests (one per warp and access instruction executed)
  *_bytes         bytes the lanes asked for
  *_useful_bytes  distinct bytes among them (a broadcast counts once)
  *_sectors       32-byte sectors the requests touched (what DRAM/L2 move), *_lines 128-byte lines
  efficiency      useful bytes / bytes moved (sectors x 32): 1.0 for a coalesced float copy
  unique_sectors  distinct sectors over the whole launch (the traffic with a perfect cache)
  atomic_requests, atomic_ops (lanes), atomic_same_address (lanes that hit an address another
                  lane of the same request also hit: they serialise)
shared memory (`shared`): requests, bytes, wavefronts (32 banks of 4 bytes: a request takes as
  many passes as its busiest bank has distinct words) and bank_conflicts (passes beyond the
  minimum the bytes need).
barriers (block-wide, summed over blocks), warp_ops (shuffles, votes, __syncwarp per warp),
warp_blocks (basic blocks executed, per warp), divergent_blocks (of those, executed by only part
of the warp's threads), divergent_branches (of those, the ones after which the lanes went to
different blocks: a branch the lanes disagree on), lane_efficiency (average fraction of the 32
lanes active in them).

Counts are of the accesses the compiled code (g++ -O2) makes; values kept in registers are not
memory accesses, as on a GPU.  Local variables and the emulator's own data are not counted.
"""
from __future__ import annotations

import ctypes
from contextlib import contextmanager

_sink: list | None = None


@contextmanager
def profiling():
    """Profile every launch inside the block; yields the list their profiles are appended to."""
    global _sink
    old, _sink = _sink, []
    try:
        yield _sink
    finally:
        _sink = old


def active() -> bool:
    return _sink is not None


def collect(profile: dict) -> None:
    if _sink is not None:
        _sink.append(profile)


_fields_cache: dict[int, tuple[list[str], list[str], int]] = {}


def _fields(lib) -> tuple[list[str], list[str], int]:
    key = id(lib)
    if key not in _fields_cache:
        space = (ctypes.c_char_p * 64)()
        scalar = (ctypes.c_char_p * 64)()
        sizes = (ctypes.c_int * 3)()
        lib.cuemu_profile_fields(space, scalar, sizes)
        ns, nc, max_spaces = sizes
        _fields_cache[key] = ([s.decode() for s in space[:ns]], [s.decode() for s in scalar[:nc]], max_spaces)
    return _fields_cache[key]


def _memory(row: dict) -> dict:
    out = dict(row)
    moved = (row["load_sectors"] + row["store_sectors"]) * 32
    useful = row["load_useful_bytes"] + row["store_useful_bytes"]
    out["bytes_moved"] = moved
    out["efficiency"] = useful / moved if moved else None
    for kind in ("load", "store"):
        sectors, req = row[f"{kind}_sectors"], row[f"{kind}_requests"]
        out[f"{kind}_efficiency"] = row[f"{kind}_useful_bytes"] / (sectors * 32) if sectors else None
        out[f"{kind}_sectors_per_request"] = sectors / req if req else None
    return out


GLOBAL_FIELDS = ("load_requests", "load_bytes", "load_useful_bytes", "load_sectors", "load_lines",
                 "store_requests", "store_bytes", "store_useful_bytes", "store_sectors", "store_lines",
                 "atomic_requests", "atomic_ops", "atomic_same_address", "unique_sectors")
SHARED_FIELDS = ("load_requests", "load_bytes", "store_requests", "store_bytes", "wavefronts", "bank_conflicts",
                 "atomic_requests", "atomic_ops", "atomic_same_address")


def buffer(lib):
    """Room for the counts of one profiled launch (the runtime fills it)."""
    space_names, scalar_names, max_spaces = _fields(lib)
    return (ctypes.c_ulonglong * ((max_spaces + 1) * len(space_names) + len(scalar_names)))()


def read(raw, lib, names: list[str], launch: dict) -> dict:
    """The profile of a launch from its filled buffer; `names` label the address ranges it passed."""
    space_names, scalar_names, max_spaces = _fields(lib)
    nf = len(space_names)
    rows = [dict(zip(space_names, raw[i * nf:(i + 1) * nf])) for i in range(max_spaces + 1)]
    scalars = dict(zip(scalar_names, raw[(max_spaces + 1) * nf:]))
    arrays = {}
    for i, name in enumerate(names[:max_spaces]):
        row = {k: rows[i][k] for k in GLOBAL_FIELDS}
        if name in arrays:   # the same array passed twice: add up
            row = {k: row[k] + arrays[name][k] for k in GLOBAL_FIELDS}
        arrays[name] = row
    total = {k: sum(r[k] for r in arrays.values()) for k in GLOBAL_FIELDS}
    blocks = scalars["warp_blocks"]
    prof = dict(launch)
    prof.update({
        "global": _memory(total),
        "arrays": {name: _memory(r) for name, r in arrays.items()},
        "shared": {k: rows[max_spaces][k] for k in SHARED_FIELDS},
        "barriers": scalars["barriers"],
        "warp_ops": scalars["warp_ops"],
        "warp_blocks": blocks,
        "divergent_blocks": scalars["divergent_blocks"],
        "divergent_branches": scalars["divergent_branches"],
        "lane_efficiency": scalars["active_lanes"] / (32 * blocks) if blocks else None,
        "static_shared_bytes": scalars["max_static_shared_bytes"],
    })
    prof["shared_bytes_per_block"] = prof["static_shared_bytes"] + launch["dynamic_shared_bytes"]
    return prof



def counter(profile: dict, path: str):
    """The value at a dotted path, e.g. counter(prof, "arrays.inp.load_sectors")."""
    value = profile
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            known = ", ".join(value) if isinstance(value, dict) else "none (not a dict)"
            raise ValueError(f"no counter {path!r} in this profile: at {key!r} the keys are {known}")
        value = value[key]
    return value


def missed(profile: dict, limits: dict) -> list[str]:
    """One sentence per counter above its limit ({dotted path: largest allowed value}), saying
    by how much; an empty list when every counter is within its limit.  What a probe reports."""
    out = []
    for path, limit in limits.items():
        value = counter(profile, path)
        if value is not None and value > limit:
            ratio = f" ({value / limit:.2f}x)" if limit else ""
            out.append(f"{profile['kernel']}: {path} is {value:,}, above the limit {limit:,}{ratio}")
    return out
