/*
 * signals.c -- a user's request to stop: SIGINT (Ctrl-C) and SIGTERM.
 *
 * The `solver` program installs these handlers around the plugin's run.
 * A handler only records the signal in a flag; the optimizer reads the flag
 * once per step (sv__stage_eval sums it over the ranks with the loss, so
 * every rank stops at the same step), saves what a resume needs and
 * returns. Each handler is installed with SA_RESETHAND: a second Ctrl-C
 * gets the default action and ends the process at once, for a user who
 * does not want to wait for the end of a step.
 *
 * The flag is process-wide state, the one piece of it in the core: a
 * signal has no other way in. Nothing else here is touched from the
 * handler (async-signal-safe: one store to a volatile sig_atomic_t).
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t pending;
static struct sigaction old_int, old_term;
static int installed;

static void on_signal(int sig)
{
  if (!pending)
    pending = sig;
}

int sv__signals_install(void)
{
  if (installed)
    return 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  /* SA_RESTART: a read or write in progress goes on (the step ends
     normally); SA_RESETHAND: the second signal is not caught */
  sa.sa_flags = SA_RESTART | SA_RESETHAND;
  pending = 0;
  if (sigaction(SIGINT, &sa, &old_int) < 0)
    return sv_fail("cannot catch SIGINT: %s", strerror(errno));
  if (sigaction(SIGTERM, &sa, &old_term) < 0) {
    int e = errno;
    sigaction(SIGINT, &old_int, NULL);
    return sv_fail("cannot catch SIGTERM: %s", strerror(e));
  }
  installed = 1;
  return 0;
}

void sv__signals_restore(void)
{
  if (!installed)
    return;
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  installed = 0;
}

/* While a resumed stage replays its on_step calls, a signal is ignored:
   the calls are those of steps that ran before, and one that raised the
   signal then would raise it again. The replay takes a moment. */
void sv__signals_hold(int hold)
{
  if (!installed)
    return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = hold ? SIG_IGN : on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = hold ? 0 : SA_RESTART | SA_RESETHAND;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

int sv__signal_pending(void)
{
  return (int)pending;
}

void sv__signal_clear(void)
{
  pending = 0;
}

const char *sv__signal_name(int sig)
{
  switch (sig) {
  case SIGINT: return "SIGINT";
  case SIGTERM: return "SIGTERM";
  case 0: return "no signal";
  default: return "a signal";
  }
}

int sv_interrupted(const sv_run *r)
{
  (void)r;
  return (int)pending;
}
