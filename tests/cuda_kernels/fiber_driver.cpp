// A stand-alone driver for the emulator runtime (no Python): runs block_sum and warp_sum_double
// in thread order and in race-exposure order and checks the results.  Used to test the aarch64
// context switch under qemu (tests/test_cuda_diagnostics.py).
#include <cstdio>
#include <cmath>
#include <vector>
extern "C" {
struct cuemu_launch_config { unsigned grid[3]; unsigned block[3]; unsigned long shmem; unsigned long static_limit; int fibers; unsigned long long race_seed; };
int cuemu_launch(void (*fn)(void**), void** args, const cuemu_launch_config* cfg);
const char* cuemu_error_message(void);
void cuemu_set_workers(int);
void t_block_sum(void**); void t_warp(void**); void t_shuffles(void**);
}
int main() {
    int fails = 0;
    for (int race = 0; race < 2; race++) {
        int n = 5000, threads = 256, blocks = (n + threads - 1) / threads;
        std::vector<float> x(n), sums(blocks, 0.0f); float total = 0;
        double want = 0;
        for (int i = 0; i < n; i++) { x[i] = std::sin(i * 0.37f); want += x[i]; }
        float* ps = sums.data(); float* pt = &total; const float* px = x.data();
        void* args[] = {&ps, &pt, &px, &n};
        cuemu_launch_config cfg = {{(unsigned)blocks, 1, 1}, {(unsigned)threads, 1, 1}, 4ul * threads, 49152, 1, (unsigned long long)race * 7};
        int rc = cuemu_launch(t_block_sum, args, &cfg);
        bool ok = rc == 0 && std::fabs(total - want) < 1e-2;
        std::printf("block_sum race=%d rc=%d total=%f want=%f %s\n", race, rc, total, want, ok ? "OK" : "FAIL");
        fails += !ok;
        std::vector<double> v(96), out(96);
        for (int i = 0; i < 96; i++) v[i] = i * 0.5;
        double* po = out.data(); const double* pv = v.data();
        void* a2[] = {&po, &pv};
        cuemu_launch_config c2 = {{1, 1, 1}, {96, 1, 1}, 0, 49152, 1, (unsigned long long)race * 3};
        rc = cuemu_launch(t_warp, a2, &c2);
        bool ok2 = rc == 0;
        for (int w = 0; w < 3; w++) { double s = 0; for (int l = 0; l < 32; l++) s += v[32 * w + l]; for (int l = 0; l < 32; l++) ok2 &= std::fabs(out[32 * w + l] - s) < 1e-9; }
        std::printf("warp_sum_double race=%d rc=%d %s\n", race, rc, ok2 ? "OK" : "FAIL");
        fails += !ok2;
    }
    std::printf(fails ? "FAILED\n" : "ALL OK\n");
    return fails;
}
