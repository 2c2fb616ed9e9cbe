/*
 * progress.c -- progress of a long loop, on rank 0's stderr.
 *
 * On a terminal: one line redrawn in place (at most ~10 times a second)
 * with a bar, percent, rate, ETA and the last loss. Otherwise (a log file,
 * a pipe, CI): a plain line every ~5 seconds, so logs stay readable.
 * Quiet mode draws nothing. The logger erases the bar before it prints and
 * draws it again after, so log lines never mix with it. A stochastic
 * stage shows "epoch e/E batch b/B" and its running metric; after SIGINT
 * or SIGTERM the line says the run is stopping after this step.
 */
#include "loader.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define REDRAW_SECONDS 0.1 /* terminal */
#define LINE_SECONDS 5.0   /* plain lines */
#define STATS_ROOM 58      /* " 45% 2250/5000, 812 steps/s, ETA 0:03, loss 1.234e-03" */

static int visible(const sv_run *r)
{
  return r && r->rank == 0 && !r->quiet && r->prog_active;
}

static int term_width(void)
{
  struct winsize ws;
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
    return ws.ws_col < 300 ? ws.ws_col : 300;
  return 80;
}

/* 75 -> "1:15", 3725 -> "1:02:05" */
static void format_duration(double s, char *buf, size_t n)
{
  if (!(s >= 0) || s > 1e8) {
    snprintf(buf, n, "?");
    return;
  }
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static void format_rate(double rate, char *buf, size_t n)
{
  if (rate >= 100)
    snprintf(buf, n, "%.0f", rate);
  else if (rate >= 10)
    snprintf(buf, n, "%.1f", rate);
  else
    snprintf(buf, n, "%.2f", rate);
}

/* "45% 2250/5000, 812 steps/s, ETA 0:03, loss 1.234e-03" (parts that are
   not known yet are left out). */
static void format_stats(const sv_run *r, double now, char *buf, size_t n)
{
  double elapsed = now - r->prog_t0;
  double rate = elapsed > 0 && r->prog_done > 0 ? (double)r->prog_done / elapsed : 0;
  size_t k = 0;
  buf[0] = '\0';
#define ADD(...) \
  do { \
    if (k < n) { \
      int w_ = snprintf(buf + k, n - k, __VA_ARGS__); \
      if (w_ > 0) \
        k += (size_t)w_; \
    } \
  } while (0)
  if (r->prog_total > 0) {
    double frac = (double)r->prog_done / (double)r->prog_total;
    if (frac > 1)
      frac = 1;
    if (r->prog_epochs > 0)
      ADD("%3d%% epoch %ld/%ld batch %ld/%ld", (int)(100 * frac), r->prog_epoch, r->prog_epochs,
          r->prog_batch, r->prog_batches);
    else
      ADD("%3d%% %ld/%ld", (int)(100 * frac), r->prog_done, r->prog_total);
  } else {
    ADD("%ld", r->prog_done);
  }
  if (rate > 0) {
    char rb[32];
    format_rate(rate, rb, sizeof rb);
    ADD(", %s steps/s", rb);
    if (r->prog_total > r->prog_done) {
      char eb[32];
      format_duration((double)(r->prog_total - r->prog_done) / rate, eb, sizeof eb);
      ADD(", ETA %s", eb);
    }
  }
  if (!isnan(r->prog_loss))
    ADD(", loss %.3e", r->prog_loss);
  if (r->prog_metric_name && !isnan(r->prog_metric))
    ADD(", %s %.4g", r->prog_metric_name, r->prog_metric);
  if (sv_interrupted(r))
    ADD(", %s: stopping after this step", sv__signal_name(sv_interrupted(r)));
#undef ADD
}

/* The bar line: "\r<what> [#####.....] <stats>\033[K", cut to the width. */
static void draw_bar(sv_run *r, double now)
{
  char stats[160], line[512];
  format_stats(r, now, stats, sizeof stats);
  int width = term_width() - 1; /* never touch the last column: no wrap */
  if (width > (int)sizeof line - 8)
    width = (int)sizeof line - 8;
  const char *what = r->prog_what ? r->prog_what : "";
  /* the bar keeps its width while the numbers grow: leave room for the
     longest stats line, not the current one */
  int barw = width - (int)strlen(what) - 4 - STATS_ROOM;
  if (barw > 30)
    barw = 30;
  char bar[40];
  int nb = 0;
  if (barw >= 8 && r->prog_total > 0) {
    double frac = (double)r->prog_done / (double)r->prog_total;
    if (frac > 1)
      frac = 1;
    if (frac < 0)
      frac = 0;
    int fill = (int)(frac * barw);
    bar[nb++] = '[';
    for (int i = 0; i < barw; i++)
      bar[nb++] = i < fill ? '#' : '.';
    bar[nb++] = ']';
  }
  bar[nb] = '\0';
  int len = snprintf(line, sizeof line, "%s%s%s %s", what, nb ? " " : "", bar, stats);
  if (len < 0)
    return;
  if (len > width)
    line[width > 0 ? width : 0] = '\0';
  fprintf(stderr, "\r%s\033[K", line);
  fflush(stderr);
  r->prog_last = now;
}

static void print_line(sv_run *r, double now)
{
  char stats[160];
  format_stats(r, now, stats, sizeof stats);
  fprintf(stderr, "%s: %s\n", r->prog_what ? r->prog_what : "progress", stats);
  fflush(stderr);
  r->prog_last = now;
}

void sv_progress_begin(sv_run *r, const char *what, long total)
{
  if (!r || r->rank != 0)
    return;
  if (r->prog_active)
    sv_progress_end(r);
  free(r->prog_what);
  r->prog_what = strdup(what && *what ? what : "progress");
  r->prog_total = total > 0 ? total : 0;
  r->prog_done = 0;
  r->prog_loss = NAN;
  r->prog_epochs = 0;
  free(r->prog_metric_name);
  r->prog_metric_name = NULL;
  r->prog_t0 = sv__now();
  r->prog_last = r->prog_t0;
  r->prog_active = 1;
  if (visible(r) && r->is_tty)
    draw_bar(r, r->prog_t0);
}

void sv_progress_update(sv_run *r, long done, double loss)
{
  if (!visible(r))
    return;
  r->prog_done = done > 0 ? done : 0;
  r->prog_loss = loss;
  double now = sv__now();
  /* the first update after a signal is shown at once: the user learns
     that the run heard it */
  int news = sv_interrupted(r) && !r->prog_told;
  if (news)
    r->prog_told = 1;
  if (r->is_tty) {
    if (news || now - r->prog_last >= REDRAW_SECONDS)
      draw_bar(r, now);
  } else if (news || now - r->prog_last >= LINE_SECONDS) {
    print_line(r, now);
  }
}

void sv__progress_epoch(sv_run *r, long epoch, long epochs, long batch, long batches,
                        const char *metric_name, double metric)
{
  if (!r || r->rank != 0)
    return;
  r->prog_epoch = epoch;
  r->prog_epochs = epochs;
  r->prog_batch = batch;
  r->prog_batches = batches;
  r->prog_metric = metric;
  if (!metric_name) {
    free(r->prog_metric_name);
    r->prog_metric_name = NULL;
  } else if (!r->prog_metric_name || strcmp(r->prog_metric_name, metric_name) != 0) {
    free(r->prog_metric_name);
    r->prog_metric_name = strdup(metric_name); /* NULL on no memory: no metric shown */
  }
}

void sv_progress_end(sv_run *r)
{
  if (!r || r->rank != 0 || !r->prog_active)
    return;
  sv__progress_clear(r);
  r->prog_active = 0;
  r->prog_epochs = 0;
  free(r->prog_what);
  r->prog_what = NULL;
}

void sv__progress_clear(sv_run *r)
{
  if (visible(r) && r->is_tty) {
    fputs("\r\033[K", stderr);
    fflush(stderr);
  }
}

void sv__progress_redraw(sv_run *r)
{
  if (visible(r) && r->is_tty)
    draw_bar(r, sv__now());
}

void sv__progress_free(sv_run *r)
{
  if (!r)
    return;
  free(r->prog_what);
  r->prog_what = NULL;
  free(r->prog_metric_name);
  r->prog_metric_name = NULL;
  r->prog_active = 0;
}
