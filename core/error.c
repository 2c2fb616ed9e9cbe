/*
 * error.c -- the last error message of this thread, and the version.
 *
 * Every fallible call returns -1 after sv_fail() has left a message here;
 * callers add context on the way up with sv_fail_context(). One buffer per
 * thread, so concurrent callers never see each other's messages.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SV_ERRMSG_MAX 2048

static _Thread_local char errmsg[SV_ERRMSG_MAX];

const char *sv_version(void)
{
#ifdef PACKAGE_VERSION
  return PACKAGE_VERSION;
#else
  return "unknown";
#endif
}

const char *sv_errmsg(void)
{
  return errmsg;
}

void sv_clear_error(void)
{
  errmsg[0] = '\0';
}

/* The arguments may include sv_errmsg() itself, so format into a scratch
   buffer first and copy. */
int sv_fail(const char *fmt, ...)
{
  char tmp[SV_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  int k = fmt ? vsnprintf(tmp, sizeof tmp, fmt, ap) : -1;
  va_end(ap);
  if (k < 0)
    snprintf(tmp, sizeof tmp, "error (unprintable message)");
  memcpy(errmsg, tmp, sizeof tmp);
  return -1;
}

int sv_fail_context(const char *fmt, ...)
{
  char ctx[SV_ERRMSG_MAX], tmp[SV_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  int k = fmt ? vsnprintf(ctx, sizeof ctx, fmt, ap) : -1;
  va_end(ap);
  if (k < 0)
    ctx[0] = '\0';
  if (!ctx[0])
    return -1;
  /* a message too long for the buffer keeps its beginning */
  int n = errmsg[0] ? snprintf(tmp, sizeof tmp, "%s: %s", ctx, errmsg)
                    : snprintf(tmp, sizeof tmp, "%s", ctx);
  if (n < 0)
    return -1;
  memcpy(errmsg, tmp, sizeof tmp);
  return -1;
}
