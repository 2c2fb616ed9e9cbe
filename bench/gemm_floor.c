/*
 * gemm_floor.c -- the matrix products of one mlp_step step, alone.
 *
 * One step of bench/mlp_step (4x32 tanh MLP, 128 points, u'' and the
 * weight gradient) runs the cblas_dgemm calls of one of the tables below,
 * counted by interposing cblas_dgemm (LD_PRELOAD) under a run of mlp_step:
 * 14 calls for the Taylor-mode graph (the default: u, u', u'' stacked into
 * 384 rows per layer), 48 for reverse-over-reverse (`mlp_step -reverse`).
 * Timing them alone gives a ceiling on the steps per second that graph can
 * reach on this machine however fast every other kernel is. Not a test: a
 * diagnosis for bench/README.md.
 *
 * Usage: gemm_floor [-steps N] [-reverse]     (OPENBLAS_NUM_THREADS applies)
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#endif
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  int M, N, K, ta, tb, count;
} gemm_shape;

/* C[M,N] = op(A) op(B), op(A) [M,K]; how many of each per step. */
static const gemm_shape jet_shapes[] = {
    {384, 32, 32, 0, 0, 3}, {384, 32, 32, 0, 1, 3}, {32, 32, 384, 1, 0, 3},
    {384, 32, 1, 0, 0, 1},  {384, 32, 1, 0, 1, 1},  {1, 32, 384, 1, 0, 1},
    {32, 1, 384, 1, 0, 1},  {384, 1, 32, 0, 0, 1},
};
static const gemm_shape reverse_shapes[] = {
    {32, 32, 128, 1, 0, 12}, {128, 32, 32, 0, 1, 12}, {128, 32, 32, 0, 0, 12},
    {1, 32, 128, 1, 0, 3},   {128, 32, 1, 0, 0, 3},   {32, 1, 128, 1, 0, 2},
    {128, 32, 1, 0, 1, 2},   {128, 1, 32, 0, 1, 1},   {128, 1, 32, 0, 0, 1},
};
#define COUNT(a) (int)(sizeof a / sizeof *a)

static const gemm_shape *shapes = jet_shapes;
static int NSHAPES = COUNT(jet_shapes);

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void one_step(const double *A, const double *B, double *C)
{
  for (int k = 0; k < NSHAPES; k++) {
    const gemm_shape *s = &shapes[k];
    for (int c = 0; c < s->count; c++)
      cblas_dgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                  s->tb ? CblasTrans : CblasNoTrans, s->M, s->N, s->K, 1.0, A,
                  s->ta ? s->M : s->K, B, s->tb ? s->K : s->N, 0.0, C, s->N);
  }
}

int main(int argc, char **argv)
{
  int steps = 3000;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-steps") == 0 && i + 1 < argc)
      steps = atoi(argv[++i]);
    else if (strcmp(argv[i], "-reverse") == 0)
      shapes = reverse_shapes, NSHAPES = COUNT(reverse_shapes);
    else {
      fprintf(stderr, "usage: gemm_floor [-steps N] [-reverse]\n");
      return 2;
    }
  }
  if (steps < 1) {
    fprintf(stderr, "gemm_floor: -steps needs a positive integer\n");
    return 2;
  }
  size_t big = 384 * 384;
  double *A = malloc(big * sizeof *A), *B = malloc(big * sizeof *B), *C = malloc(big * sizeof *C);
  if (!A || !B || !C) {
    fprintf(stderr, "gemm_floor: out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < big; i++) {
    A[i] = 1e-3 * (double)(i % 997);
    B[i] = 1.0 / (double)(i + 1);
  }
  double flops = 0;
  int calls = 0;
  for (int k = 0; k < NSHAPES; k++) {
    flops += 2.0 * shapes[k].M * shapes[k].N * shapes[k].K * shapes[k].count;
    calls += shapes[k].count;
  }
  for (int i = 0; i < 100; i++)
    one_step(A, B, C);
  double t0 = now();
  for (int i = 0; i < steps; i++)
    one_step(A, B, C);
  double t = (now() - t0) / steps;
  printf("gemm_calls_per_step %d\ngemm_flops_per_step %.0f\n", calls, flops);
  printf("gemm_us_per_step %.1f\ngemm_gflops %.1f\ngemm_ceiling_steps_per_second %.0f\n", t * 1e6,
         flops / t * 1e-9, 1 / t);
  free(A), free(B), free(C);
  return 0;
}
