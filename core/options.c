/*
 * options.c -- plugin options over PETSc's options database.
 *
 * A plugin declares each option where it reads it (sv_opt_int and
 * friends), with a default and a line of help. Every declaration is
 * recorded in the run, which gives three things: summary.json lists the
 * values used, -help lists the options without running anything, and an
 * option on the command line that nobody declared is an error instead of
 * being silently ignored.
 *
 * Values are read as text and parsed here, so that "-n abc" is an error
 * that names the option and the value, not a PETSc traceback.
 */
#include "loader.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <petscsys.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *type_name(sv_opttype t)
{
  switch (t) {
  case SV_OPTTYPE_INT: return "int";
  case SV_OPTTYPE_REAL: return "real";
  case SV_OPTTYPE_BOOL: return "bool";
  case SV_OPTTYPE_STRING: return "string";
  }
  return "?";
}

/* ------------------------------------------------------------------ */
/* Declarations                                                        */
/* ------------------------------------------------------------------ */

static int check_name(const char *name)
{
  if (!name || name[0] != '-' || !name[1])
    return sv_fail("option name '%s' must be a dash and a name (\"-n\")", name ? name : "(null)");
  if (isdigit((unsigned char)name[1]) || name[1] == '-')
    return sv_fail("option name '%s' must start with a letter after its dash", name);
  for (const char *s = name + 1; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_')
      return sv_fail("option name '%s': only letters, digits and '_' may follow the dash", name);
  return 0;
}

static sv_optdecl *find_decl(const sv_run *r, const char *name)
{
  for (int i = 0; i < r->nopts; i++)
    if (r->opts[i].name && strcasecmp(r->opts[i].name, name) == 0)
      return &r->opts[i];
  return NULL;
}

static int replace(char **field, const char *text)
{
  char *copy = NULL;
  if (text && !(copy = strdup(text)))
    return -1;
  free(*field);
  *field = copy;
  return 0;
}

/* Record (or update) a declaration with its default as text. PETSc's names
   are case-insensitive, so "-N" and "-n" are the same option. */
static sv_optdecl *declare(sv_run *r, const char *name, sv_opttype type, const char *def,
                           const char *help)
{
  if (check_name(name) < 0)
    return NULL;
  sv_optdecl *d = find_decl(r, name);
  if (d && d->type != type) {
    sv_fail("option %s declared twice, as %s and as %s", name, type_name(d->type),
            type_name(type));
    return NULL;
  }
  if (!d) {
    if (r->nopts == r->capopts) {
      int cap = r->capopts ? 2 * r->capopts : 16;
      sv_optdecl *o = realloc(r->opts, (size_t)cap * sizeof *o);
      if (!o) {
        sv_fail("option %s: out of memory", name);
        return NULL;
      }
      r->opts = o;
      r->capopts = cap;
    }
    d = &r->opts[r->nopts];
    memset(d, 0, sizeof *d);
    if (!(d->name = strdup(name))) {
      sv_fail("option %s: out of memory", name);
      return NULL;
    }
    r->nopts++;
    d->type = type;
  }
  if (replace(&d->def, def) < 0 || replace(&d->help, help) < 0 || replace(&d->value, def) < 0) {
    sv_fail("option %s: out of memory", name);
    return NULL;
  }
  return d;
}

void sv__options_free(sv_run *r)
{
  if (!r)
    return;
  for (int i = 0; i < r->nopts; i++) {
    free(r->opts[i].name);
    free(r->opts[i].def);
    free(r->opts[i].value);
    free(r->opts[i].help);
  }
  free(r->opts);
  r->opts = NULL;
  r->nopts = r->capopts = 0;
}

/* ------------------------------------------------------------------ */
/* Reading and parsing values                                          */
/* ------------------------------------------------------------------ */

/* The option's text from PETSc's database into buf (n bytes). *set is 0
   when the option was not given. A value that fills the buffer is an
   error: PETSc would have cut it silently. */
static int get_text(const char *name, char *buf, size_t n, int *set)
{
  PetscBool up = PETSC_FALSE, flg = PETSC_FALSE;
  if (PetscInitialized(&up) || !up)
    return sv_fail("option %s: PETSc is not initialised", name);
  buf[0] = '\0';
  if (PetscOptionsGetString(NULL, NULL, name, buf, n, &flg))
    return sv_fail("option %s: cannot read it from PETSc's options", name);
  *set = flg == PETSC_TRUE;
  if (*set && strlen(buf) >= n - 1)
    return sv_fail("option %s: value longer than %zu characters", name, n - 2);
  return 0;
}

/* Shortest text that reads back as the same double. */
static void format_real(double x, char *buf, size_t n)
{
  for (int prec = 6; prec <= 17; prec++) {
    snprintf(buf, n, "%.*g", prec, x);
    if (strtod(buf, NULL) == x)
      return;
  }
}

/* The text given for a declared option: 1 when given, 0 when not (or in
   help mode, where nothing is read), -1 on error. */
static int given_text(sv_run *r, const char *name, char *text, size_t n)
{
  int set;
  if (r->help_mode)
    return 0;
  if (get_text(name, text, n, &set) < 0)
    return -1;
  return set ? 1 : 0;
}

/* Keep the value used, as text, for summary.json. */
static int record(sv_optdecl *d, const char *name, const char *text)
{
  return replace(&d->value, text) < 0 ? sv_fail("option %s: out of memory", name) : 0;
}

static int parse_real(const char *name, const char *text, double *out)
{
  if (!*text)
    return sv_fail("option %s needs a value (a real number)", name);
  char *end;
  errno = 0;
  double x = strtod(text, &end);
  if (end == text || *end != '\0' || isspace((unsigned char)text[0]))
    return sv_fail("option %s: '%s' is not a real number", name, text);
  if (!isfinite(x) || errno == ERANGE)
    return sv_fail("option %s: '%s' is not a finite real number", name, text);
  *out = x;
  return 0;
}

/* An integer, also written as an exact real ("1e5"). */
static int parse_int(const char *name, const char *text, int *out)
{
  if (!*text)
    return sv_fail("option %s needs a value (an integer)", name);
  char *end;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (end != text && *end == '\0' && !isspace((unsigned char)text[0])) {
    if (errno == ERANGE || v < INT_MIN || v > INT_MAX)
      return sv_fail("option %s: '%s' is out of range for an integer", name, text);
    *out = (int)v;
    return 0;
  }
  double x = strtod(text, &end);
  if (end != text && *end == '\0' && !isspace((unsigned char)text[0]) && isfinite(x) &&
      x == floor(x)) {
    if (x < INT_MIN || x > INT_MAX)
      return sv_fail("option %s: '%s' is out of range for an integer", name, text);
    *out = (int)x;
    return 0;
  }
  return sv_fail("option %s: '%s' is not an integer", name, text);
}

/* "-flag" alone means true, as in PETSc. */
static int parse_bool(const char *name, const char *text, int *out)
{
  static const char *const yes[] = {"", "1", "true", "yes", "on"};
  static const char *const no[] = {"0", "false", "no", "off"};
  for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
    if (strcasecmp(text, yes[i]) == 0) {
      *out = 1;
      return 0;
    }
  for (size_t i = 0; i < sizeof no / sizeof *no; i++)
    if (strcasecmp(text, no[i]) == 0) {
      *out = 0;
      return 0;
    }
  return sv_fail("option %s: '%s' is not a boolean (true or false)", name, text);
}

/* ------------------------------------------------------------------ */
/* The public calls                                                    */
/* ------------------------------------------------------------------ */

int sv_opt_int(sv_run *r, const char *name, int def, const char *help, int *out)
{
  if (!r || !out)
    return sv_fail("sv_opt_int %s: needs a run and an output", name ? name : "");
  *out = def;
  char text[256];
  snprintf(text, sizeof text, "%d", def);
  sv_optdecl *d = declare(r, name, SV_OPTTYPE_INT, text, help);
  if (!d)
    return -1;
  int given = given_text(r, name, text, sizeof text);
  if (given <= 0)
    return given;
  if (parse_int(name, text, out) < 0)
    return -1;
  return record(d, name, text);
}

int sv_opt_real(sv_run *r, const char *name, double def, const char *help, double *out)
{
  if (!r || !out)
    return sv_fail("sv_opt_real %s: needs a run and an output", name ? name : "");
  *out = def;
  char text[256];
  format_real(def, text, sizeof text);
  sv_optdecl *d = declare(r, name, SV_OPTTYPE_REAL, text, help);
  if (!d)
    return -1;
  int given = given_text(r, name, text, sizeof text);
  if (given <= 0)
    return given;
  if (parse_real(name, text, out) < 0)
    return -1;
  return record(d, name, text);
}

int sv_opt_bool(sv_run *r, const char *name, int def, const char *help, int *out)
{
  if (!r || !out)
    return sv_fail("sv_opt_bool %s: needs a run and an output", name ? name : "");
  *out = def != 0;
  sv_optdecl *d = declare(r, name, SV_OPTTYPE_BOOL, def ? "true" : "false", help);
  if (!d)
    return -1;
  char text[256];
  int given = given_text(r, name, text, sizeof text);
  if (given <= 0)
    return given;
  if (parse_bool(name, text, out) < 0)
    return -1;
  return record(d, name, *out ? "true" : "false");
}

int sv_opt_string(sv_run *r, const char *name, const char *def, const char *help, char *out,
                  size_t outsize)
{
  if (!r || !out || outsize == 0)
    return sv_fail("sv_opt_string %s: needs a run and an output buffer", name ? name : "");
  out[0] = '\0';
  sv_optdecl *d = declare(r, name, SV_OPTTYPE_STRING, def, help);
  if (!d)
    return -1;
  if (def) {
    if (strlen(def) >= outsize)
      return sv_fail("option %s: default '%s' is longer than %zu characters", name, def,
                     outsize - 1);
    memcpy(out, def, strlen(def) + 1);
  }
  if (r->help_mode)
    return 0;
  /* two bytes more than fits: get_text reports a value that fills it */
  size_t n = outsize + 2 > 256 ? outsize + 2 : 256;
  char *text = malloc(n);
  if (!text)
    return sv_fail("option %s: out of memory", name);
  int set, rc = get_text(name, text, n, &set);
  if (rc == 0 && set) {
    size_t len = strlen(text);
    if (len == 0)
      rc = sv_fail("option %s needs a value (a string)", name);
    else if (len >= outsize)
      rc = sv_fail("option %s: value '%.40s%s' is longer than %zu characters", name, text,
                   len > 40 ? "..." : "", outsize - 1);
    else if (replace(&d->value, text) < 0)
      rc = sv_fail("option %s: out of memory", name);
    else
      memcpy(out, text, len + 1);
  }
  free(text);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Options nobody declared                                             */
/* ------------------------------------------------------------------ */

/* PETSc's own options: each entry matches itself and entry_* (so "log"
   covers -log_view and -log_trace). Names are case-insensitive. */
static const char *const petsc_options[] = {
  "tao", "ksp", "pc", "snes", "ts", "mat", "vec", "dm", "da", "is", "sf", "ao", "pf",
  "log", "malloc", "options", "help", "info", "on_error", "mpi", "no_signal_handler",
  "checkstack", "check_pointer_intensity", "fp_trap", "viewer", "draw", "petsc", "version",
  "history", "start_in_debugger", "debugger", "stop_for_debugger", "display", "nox",
  "x_virtual", "saws", "objects_dump", "memory_view", "get_total_flops", "tmp", "shared_tmp",
  "not_shared_tmp", "skip_petscrc", "device", "default_device_type", "use_gpu_aware_mpi",
  "cuda", "hip", "sycl", "kokkos", "citations", "compare", "blas", "omp", "hwloc",
  "matload", "random", "bag", "error_output", "python", "ftrace", "gpu",
};

int sv__option_is_petsc(const char *name)
{
  if (!name)
    return 0;
  while (*name == '-')
    name++;
  for (size_t i = 0; i < sizeof petsc_options / sizeof *petsc_options; i++) {
    size_t k = strlen(petsc_options[i]);
    if (strncasecmp(name, petsc_options[i], k) == 0 && (name[k] == '\0' || name[k] == '_'))
      return 1;
  }
  return 0;
}

int sv__edit_distance(const char *a, const char *b)
{
  size_t n = strlen(a), m = strlen(b);
  if (n > 200 || m > 200) /* option names are short; do not spend on junk */
    return (int)(n > m ? n : m);
  /* three rows of the optimal-string-alignment table */
  int rows[3][201];
  int *pp = rows[0], *p = rows[1], *c = rows[2];
  for (size_t j = 0; j <= m; j++)
    p[j] = (int)j;
  for (size_t i = 1; i <= n; i++) {
    c[0] = (int)i;
    for (size_t j = 1; j <= m; j++) {
      int ai = tolower((unsigned char)a[i - 1]), bj = tolower((unsigned char)b[j - 1]);
      int cost = ai != bj;
      int v = p[j] + 1;
      if (c[j - 1] + 1 < v)
        v = c[j - 1] + 1;
      if (p[j - 1] + cost < v)
        v = p[j - 1] + cost;
      if (i > 1 && j > 1 && ai == tolower((unsigned char)b[j - 2]) &&
          tolower((unsigned char)a[i - 2]) == bj && pp[j - 2] + 1 < v)
        v = pp[j - 2] + 1;
      c[j] = v;
    }
    int *t = pp;
    pp = p;
    p = c;
    c = t;
  }
  return p[m];
}

/* The declared option closest to `name` (both without dashes), if close
   enough to be a likely typo. */
static const char *suggest(const sv_run *r, const char *name)
{
  const char *best = NULL;
  int bestd = INT_MAX;
  int len = (int)strlen(name);
  for (int i = 0; i < r->nopts; i++) {
    const char *cand = r->opts[i].name + 1;
    int d = sv__edit_distance(name, cand);
    if (d < bestd) {
      bestd = d;
      best = r->opts[i].name;
    }
  }
  if (best && bestd <= 1 + len / 4 && bestd < len)
    return best;
  return NULL;
}

int sv__options_check_unknown(sv_run *r)
{
  if (!r)
    return sv_fail("options: no run");
  PetscBool up = PETSC_FALSE;
  if (PetscInitialized(&up) || !up)
    return sv_fail("options: PETSc is not initialised");
  PetscInt n = 0;
  char **names = NULL, **values = NULL;
  if (PetscOptionsLeftGet(NULL, &n, &names, &values))
    return sv_fail("options: cannot list the options given");

  const char *first = NULL;
  char others[512];
  size_t ko = 0;
  int nothers = 0;
  others[0] = '\0';
  for (PetscInt i = 0; i < n; i++) {
    const char *nm = names[i];
    if (!nm)
      continue;
    while (*nm == '-')
      nm++;
    char dashed[256];
    snprintf(dashed, sizeof dashed, "-%s", nm);
    if (find_decl(r, dashed) || sv__option_is_petsc(nm))
      continue;
    if (!first) {
      first = nm;
    } else {
      nothers++;
      if (ko < sizeof others) {
        int w = snprintf(others + ko, sizeof others - ko, "%s-%s", ko ? ", " : "", nm);
        if (w > 0)
          ko += (size_t)w;
      }
    }
  }

  int rc = 0;
  if (first) {
    const char *s = suggest(r, first);
    const char *plugin = r->plugin && r->plugin->name ? r->plugin->name : "the plugin";
    char hint[320];
    if (s)
      snprintf(hint, sizeof hint, " (did you mean %s?)", s);
    else
      snprintf(hint, sizeof hint, " (not an option of %s; -help lists them)", plugin);
    if (nothers)
      rc = sv_fail("unknown option -%s%s; also unknown: %s", first, hint, others);
    else
      rc = sv_fail("unknown option -%s%s", first, hint);
  }
  PetscOptionsLeftRestore(NULL, &n, &names, &values);
  return rc;
}

/* ------------------------------------------------------------------ */
/* -help                                                               */
/* ------------------------------------------------------------------ */

void sv__options_print_help(const sv_run *r, FILE *out)
{
  if (!r || r->rank != 0)
    return;
  const sv_plugin *pl = r->plugin;
  const char *name = pl && pl->name ? pl->name : "plugin";
  fprintf(out, "%s: %s\n\n", name, pl && pl->summary ? pl->summary : "");
  fprintf(out, "Usage: solver --plugin %s [--out DIR] [--seed N] [--quiet] [-option value ...]\n\n",
          name);
  if (r->nopts == 0) {
    fprintf(out, "%s declares no options.\n", name);
  } else {
    /* column widths: "-name <type>" and the default */
    int w1 = (int)strlen("option"), w2 = (int)strlen("default");
    for (int i = 0; i < r->nopts; i++) {
      const sv_optdecl *o = &r->opts[i];
      int k = (int)(strlen(o->name) + strlen(type_name(o->type)) + 3);
      if (k > w1)
        w1 = k;
      const char *def = o->def ? o->def : "(none)";
      k = (int)strlen(def) + (o->type == SV_OPTTYPE_STRING && o->def ? 2 : 0);
      if (k > w2)
        w2 = k;
    }
    if (w2 > 30)
      w2 = 30;
    fprintf(out, "Options of %s:\n", name);
    fprintf(out, "  %-*s  %-*s  %s\n", w1, "option", w2, "default", "description");
    for (int i = 0; i < r->nopts; i++) {
      const sv_optdecl *o = &r->opts[i];
      char col1[300], col2[300];
      snprintf(col1, sizeof col1, "%s <%s>", o->name, type_name(o->type));
      if (!o->def)
        snprintf(col2, sizeof col2, "(none)");
      else if (o->type == SV_OPTTYPE_STRING)
        snprintf(col2, sizeof col2, "\"%s\"", o->def);
      else
        snprintf(col2, sizeof col2, "%s", o->def);
      fprintf(out, "  %-*s  %-*s  %s\n", w1, col1, w2, col2, o->help ? o->help : "");
    }
  }
  fprintf(out,
          "\nPETSc's own options (-tao_type, -tao_monitor, -log_view, ...) go to PETSc;\n"
          "-options_file FILE reads options from a file, one or more per line.\n");
}
