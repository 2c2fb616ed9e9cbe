/*
 * signal.c -- band-limited white noise, the input of the HiPPO online
 * function-approximation experiment. Two generators (ssm.h):
 *
 *   nengo    the algorithm of nengo's WhiteSignal, as the state-spaces/s4
 *            HiPPO notebook uses it: m = 2 ceil(n / 2) samples of a signal
 *            of period m dt; Fourier coefficients c_k = g + i g' with g, g'
 *            Gaussian of standard deviation rms / sqrt 2 (c_0 = 0, the
 *            Nyquist coefficient real), zero above the cutoff, divided by
 *            sqrt(1 - zeroed / (m / 2)) so that the rms stays `rms`, scaled
 *            by sqrt(m), an inverse real FFT (normalised by 1/m), then the
 *            first value subtracted so that the signal starts at 0;
 *   lowpass  Gaussian white noise on 4n samples through an ideal low-pass
 *            filter (its spectrum zeroed above the cutoff), the middle n
 *            samples scaled to the rms, then the first value subtracted:
 *            the same band but not periodic.
 *
 * The Gaussian draws come from the run's GSL generator.
 */
#include "ssm.h"

#include <fftw3.h>
#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const signal_names[] = {"nengo", "lowpass"};

const char *ssm_signal_name(ssm_signal s) { return (unsigned)s < 2u ? signal_names[s] : "?"; }

int ssm_signal_parse(const char *option, const char *s, ssm_signal *out)
{
  for (int i = 0; i < 2; i++)
    if (strcmp(s, signal_names[i]) == 0) {
      *out = (ssm_signal)i;
      return 0;
    }
  return sv_fail("option %s = '%s': unknown signal generator (expected nengo or lowpass)", option,
                 s);
}

int ssm_white_signal(ssm_signal kind, gsl_rng *rng, int n, double dt, double freq, double rms,
                     double *u)
{
  if (n < 2)
    return sv_fail("signal: %d samples (need at least 2)", n);
  if (!(dt > 0) || !(rms > 0) || !(freq > 0))
    return sv_fail("signal: dt = %g, cutoff %g Hz, rms %g (all must be > 0)", dt, freq, rms);
  int m = kind == SSM_SIGNAL_NENGO ? 2 * ((n + 1) / 2) : 4 * n;
  int nc = m / 2; /* coefficients 0..nc */
  double *x = fftw_malloc((size_t)m * sizeof *x);
  fftw_complex *c = fftw_malloc((size_t)(nc + 1) * sizeof *c);
  if (!x || !c) {
    fftw_free(x);
    fftw_free(c);
    return sv_fail("signal: out of memory for %d samples", m);
  }
  double complex *cc = (double complex *)c;
  fftw_plan back = fftw_plan_dft_c2r_1d(m, c, x, FFTW_ESTIMATE);
  fftw_plan fwd = kind == SSM_SIGNAL_LOWPASS ? fftw_plan_dft_r2c_1d(m, x, c, FFTW_ESTIMATE) : NULL;
  if (!back || (kind == SSM_SIGNAL_LOWPASS && !fwd)) {
    if (back)
      fftw_destroy_plan(back);
    if (fwd)
      fftw_destroy_plan(fwd);
    fftw_free(x);
    fftw_free(c);
    return sv_fail("signal: FFTW could not plan a transform of size %d", m);
  }
  int zeroed = 0;
  if (kind == SSM_SIGNAL_NENGO) {
    double sigma = rms * sqrt(0.5);
    /* imaginary parts first, then real parts, as nengo draws them */
    double *imag = malloc((size_t)(nc + 1) * sizeof *imag);
    if (!imag) {
      fftw_destroy_plan(back);
      fftw_free(x);
      fftw_free(c);
      return sv_fail("signal: out of memory");
    }
    for (int k = 0; k <= nc; k++)
      imag[k] = gsl_ran_gaussian(rng, sigma);
    imag[nc] = 0;
    for (int k = 0; k <= nc; k++) {
      double re = gsl_ran_gaussian(rng, sigma);
      cc[k] = re + I * imag[k];
    }
    free(imag);
    cc[0] = 0;
    for (int k = 0; k <= nc; k++)
      if (k / (m * dt) > freq) {
        cc[k] = 0;
        zeroed++;
      }
    double corr = sqrt(1.0 - (double)zeroed / nc);
    for (int k = 0; k <= nc; k++) {
      if (corr > 0)
        cc[k] /= corr;
      cc[k] *= sqrt((double)m);
    }
    fftw_execute(back);
    for (int i = 0; i < n; i++)
      u[i] = x[i] / m;
  } else {
    for (int i = 0; i < m; i++)
      x[i] = gsl_ran_gaussian(rng, 1.0);
    fftw_execute(fwd);
    for (int k = 0; k <= nc; k++)
      if (k == 0 || k / (m * dt) > freq)
        cc[k] = 0;
    fftw_execute(back);
    int first = (m - n) / 2;
    double s2 = 0;
    for (int i = 0; i < n; i++)
      s2 += x[first + i] * x[first + i];
    double scale = s2 > 0 ? rms / sqrt(s2 / n) : 0;
    for (int i = 0; i < n; i++)
      u[i] = x[first + i] * scale;
  }
  double u0 = u[0];
  for (int i = 0; i < n; i++)
    u[i] -= u0;
  fftw_destroy_plan(back);
  if (fwd)
    fftw_destroy_plan(fwd);
  fftw_free(x);
  fftw_free(c);
  return 0;
}

int ssm_nengo_modes(int n, double dt, double freq, double rms, int *count, double *modes,
                    double *var)
{
  int m = 2 * ((n + 1) / 2), nc = m / 2, zeroed = 0, kept = 0;
  for (int k = 0; k <= nc; k++) {
    if (k / (m * dt) > freq)
      zeroed++;
    else if (k > 0)
      kept += k < nc ? 2 : 1; /* cosine and sine; the Nyquist term is real */
  }
  *count = kept;
  *var = rms * rms / 2;
  if (!modes)
    return 0;
  double corr = sqrt(1.0 - (double)zeroed / nc);
  if (!(corr > 0))
    return sv_fail("signal: no frequency below the cutoff %g Hz", freq);
  int q = 0;
  for (int k = 1; k <= nc; k++) {
    if (k / (m * dt) > freq)
      continue;
    double a = (k < nc ? 2.0 : 1.0) / (sqrt((double)m) * corr);
    double *fc = modes + (size_t)q++ * n;
    for (int j = 0; j < n; j++)
      fc[j] = a * (k < nc ? cos(2 * M_PI * (double)j * k / m) : (j % 2 ? -1.0 : 1.0)) - a;
    if (k < nc) {
      double *fs = modes + (size_t)q++ * n;
      for (int j = 0; j < n; j++)
        fs[j] = -a * sin(2 * M_PI * (double)j * k / m);
    }
  }
  return 0;
}
