/*
 * conv_fft.h -- the FFT algorithm of the 2-D convolutions of conv.c, for
 * stride 1 (conv_fft.c). conv.c's ops choose it per node at compile time
 * (sv__conv_fft_chosen) and keep their builders and derivative rules; only
 * the kernels change algorithm, as cuDNN's do.
 */
#ifndef SV_CONV_FFT_H
#define SV_CONV_FFT_H

#include "ops.h"

/* The resolved geometry of a convolution: x [B, C, H, W], w [O, C, kh, kw],
   y [B, O, Ho, Wo], stride s, zero padding pad. */
typedef struct {
  size_t B, C, H, W;
  size_t O, kh, kw;
  size_t Ho, Wo;
  size_t s, pad;
} sv__conv_geom;

/* 1: the FFT kernels, 0: im2col and dgemm. Stride 1 only; by the cost
   model of conv_fft.c, or forced by the environment variable
   SOLVER_CONV2D=fft|direct (tests, benchmarks). -1 with sv_fail for any
   other value of SOLVER_CONV2D. */
SV_HIDDEN int sv__conv_fft_chosen(const sv__conv_geom *g);
/* Scratch doubles the three kernels need (the same for all three). */
SV_HIDDEN size_t sv__conv_fft_work(const sv__conv_geom *g);
/* Plans for g (FFTW's planner: one compiling thread at a time). */
SV_HIDDEN int sv__conv_fft_prepare(const sv__conv_geom *g, void **state);
SV_HIDDEN void sv__conv_fft_release(void *state);
/* y = conv2d(x, w), dx = conv2d_dx(G, w), dw = conv2d_dw(G, x), as conv.c
   defines them. */
SV_HIDDEN void sv__conv_fft_forward(const void *state, const double *x, const double *w, double *y,
                                    double *work);
SV_HIDDEN void sv__conv_fft_dx(const void *state, const double *G, const double *w, double *dx,
                               double *work);
SV_HIDDEN void sv__conv_fft_dw(const void *state, const double *G, const double *x, double *dw,
                               double *work);

#endif
