// cg::reduce over a thread_block_tile, with cg::plus / cg::less / cg::greater, for the CPU emulator.
#pragma once
#include <cooperative_groups.h>

namespace cooperative_groups {

template <class T> struct plus { T operator()(T a, T b) const { return a + b; } };
template <class T> struct less { T operator()(T a, T b) const { return a < b ? a : b; } };
template <class T> struct greater { T operator()(T a, T b) const { return a > b ? a : b; } };

// A butterfly: after log2(N) exchanges every lane of the tile holds op over all lanes.
template <unsigned int N, class T, class Op>
T reduce(const thread_block_tile<N>& tile, T value, Op op) {
    for (unsigned int offset = N / 2; offset > 0; offset /= 2) value = op(value, tile.shfl_xor(value, offset));
    return value;
}

}  // namespace cooperative_groups
