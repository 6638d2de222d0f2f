// <cuda_runtime.h> for the CPU emulator.  Code written for nvcc includes it (or gets it
// implicitly) and with it the host's fixed-width integer types, which device code then uses
// (int64_t indices, uintptr_t alignment checks).  NVRTC code has neither: it stays strict.
#pragma once
#include <stdint.h>
