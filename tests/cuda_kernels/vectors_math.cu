#include <cuda_bf16.h>
// float4 / int4 / float2 loads and stores, make_* constructors.
extern "C" __global__ void vectors(float4* out4, int4* outi, float2* out2, const float4* inp, int n4) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n4) return;
    float4 v = inp[i];
    out4[i] = make_float4(v.w, v.z, v.y, v.x);
    outi[i] = make_int4((int)v.x, (int)v.y, (int)v.z, i);
    out2[i] = make_float2(v.x + v.y, v.z * v.w);
}

// One column per math function.
extern "C" __global__ void math_functions(float* out, const float* x, const float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float a = x[i], b = y[i];
    float* o = out + 16 * i;
    o[0] = expf(a);          o[1] = __expf(a);        o[2] = tanhf(a);       o[3] = rsqrtf(b);
    o[4] = fmaxf(a, b);      o[5] = fminf(a, b);      o[6] = __fdividef(a, b); o[7] = sqrtf(b);
    o[8] = logf(b);          o[9] = powf(b, a);       o[10] = fabsf(a);      o[11] = erff(a);
    o[12] = sinf(a);         o[13] = cosf(a);         o[14] = max(a, b);     o[15] = fmaf(a, b, 1.0f);
}

// float -> bfloat16 (round to nearest even) -> float, and bf16 arithmetic through float.
extern "C" __global__ void bf16_roundtrip(float* out, __nv_bfloat16* stored, const float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    __nv_bfloat16 h = __float2bfloat16(x[i]);
    stored[i] = h;
    out[i] = __bfloat162float(h);
}
