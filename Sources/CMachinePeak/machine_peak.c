// The machine's real FP32 peak, measured rather than computed from a clock figure: the
// kernel's "cpu MHz" is not the clock under load (turbo, and on VMs often the base clock),
// so a percentage of "peak" computed from it can exceed 100 %.
//
// Each kernel runs 12 independent FMA chains: with an FMA latency of 4 cycles and two FMA
// pipes, 8 chains in flight are enough on every x86 core this runs on; 12 leaves slack.
// The chains converge (x <- x*m + c with |m| < 1), so no value overflows or goes denormal.
#include "machine_peak.h"

#include <immintrin.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static volatile float sink;

#define CHAINS 12
#define BLOCK 4096

#define DEFINE_KERNEL(name, isa, vec, set1, fma, add, lanes, reduce)                  \
    __attribute__((target(isa))) static double name(double seconds) {                \
        vec x[CHAINS];                                                                   \
        for (int k = 0; k < CHAINS; k++) x[k] = set1(1.0f + 0.01f * (float)k);           \
        const vec m = set1(0.999f), c = set1(0.001f);                                    \
        long blocks = 0;                                                                 \
        double start = now_seconds(), elapsed;                                           \
        do {                                                                             \
            for (int i = 0; i < BLOCK; i++)                                              \
                for (int k = 0; k < CHAINS; k++) x[k] = fma(x[k], m, c);                 \
            blocks++;                                                                    \
            elapsed = now_seconds() - start;                                             \
        } while (elapsed < seconds);                                                     \
        vec total = x[0];                                                                \
        for (int k = 1; k < CHAINS; k++) total = add(total, x[k]);                       \
        sink = reduce(total);                                                            \
        return (double)blocks * BLOCK * CHAINS * (lanes) * 2.0 / elapsed / 1e9;          \
    }

__attribute__((target("avx2,fma"))) static float sum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_hadd_ps(s, s);
    s = _mm_hadd_ps(s, s);
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx512f"))) static float sum512(__m512 v) { return _mm512_reduce_add_ps(v); }

DEFINE_KERNEL(fma256, "avx2,fma", __m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, 8, sum256)
DEFINE_KERNEL(fma512, "avx512f", __m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, 16, sum512)

int convlens_fma_width(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 256;
    return 0;
}

double convlens_fma_gflops(int width, double seconds) {
    int widest = convlens_fma_width();
    if (width == 0) width = widest;
    if (width == 512 && widest >= 512) return fma512(seconds);
    if (width == 256 && widest >= 256) return fma256(seconds);
    return 0;
}
