#ifndef CONVLENS_MACHINE_PEAK_H
#define CONVLENS_MACHINE_PEAK_H

/// Widest FMA the CPU runs: 512 (AVX-512F), 256 (AVX2 + FMA) or 0 (neither).
int convlens_fma_width(void);

/// FP32 fused multiply-adds on one core for about `seconds`, in independent chains wide enough
/// to keep every FMA pipe busy at `width` bits (256 or 512; 0 = the widest available).
/// Returns the rate in GFLOP/s (one FMA = 2 FLOP), or 0 when `width` is not supported.
double convlens_fma_gflops(int width, double seconds);

#endif
