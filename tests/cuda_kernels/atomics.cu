// Histogram with float and int atomics from many blocks at once; max and CAS.
extern "C" __global__ void histogram(float* weight_sum, int* count, int* max_value, unsigned int* cas_hits,
                                     const int* bins, const float* weights, const int* values, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    atomicAdd(&weight_sum[bins[i]], weights[i]);
    atomicAdd(&count[bins[i]], 1);
    atomicMax(max_value, values[i]);
    // each thread claims slot values[i] % 64 once: only the first CAS on a slot succeeds
    if (atomicCAS(&cas_hits[values[i] & 63], 0u, 1u) == 0u) atomicAdd(&cas_hits[64], 1u);
}
