/*
 * main.c -- the `solver` program: load a method plugin and run it.
 *
 *   solver --plugin NAME [--out DIR] [--seed N] [--quiet] [-option value ...]
 *   solver --resume DIR [--quiet]
 *   solver --list | --version | --help
 *
 * Options with two dashes are ours and are removed before PETSc sees the
 * command line; everything else goes to PETSc's options database, where
 * the plugin declares and reads its options. Exit status: 0 success, 1 a
 * failed load or run, 2 a usage error (unknown or malformed option), 130
 * (SIGINT) or 143 (SIGTERM) for a run stopped by that signal.
 *
 * While the plugin runs, SIGINT and SIGTERM are caught: training stops at
 * the end of a step, the journal in <outdir>/resume keeps what resuming
 * needs, and summary.json says "interrupted". A second signal ends the
 * process at once. <outdir>/run.json records the plugin, seed and options,
 * and --resume DIR starts the same run again from them.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "loader.h"

#include <errno.h>
#include <gsl/gsl_version.h>
#include <limits.h>
#include <petscsys.h>
#include <petscversion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_SEED 42UL
#define EXIT_USAGE 2

typedef struct {
  const char *plugin;
  const char *out;
  const char *resume; /* --resume DIR */
  unsigned long seed;
  int seed_given;
  int list, version, help, quiet;
  int plugin_help; /* -help: list the plugin's options */
  /* the options as given (argv after our flags), for run.json */
  int nargs;
  char **args;
  char *plugin_path;  /* --resume: the plugin run.json names */
} cli;

#define SYNOPSIS \
  "Usage: solver --plugin NAME [--out DIR] [--seed N] [--quiet] [-option value ...]\n" \
  "       solver --resume DIR [--quiet]\n" \
  "       solver --list | --version | --help\n"

static void usage(FILE *f)
{
  fprintf(f,
          SYNOPSIS
          "\n"
          "Runs a method plugin and writes its results into an output directory.\n"
          "\n"
          "  --plugin NAME  a path (with a '/'), or NAME or NAME.so looked up in\n"
          "                 $SOLVER_PLUGIN_PATH, the build tree and the plugin directory\n"
          "  --out DIR      output directory (default: out/<plugin name>)\n"
          "  --seed N       random seed, a non-negative integer (default: %lu)\n"
          "  --quiet        no log lines or progress: errors and the final summary only\n"
          "  --resume DIR   go on with the run in DIR, stopped by Ctrl-C or SIGTERM: the\n"
          "                 plugin, seed and options recorded in DIR/run.json, and every\n"
          "                 training stage that ended or stopped before (DIR/resume/)\n"
          "  --list         the plugins found, with their summaries\n"
          "  --version      the version\n"
          "  --help         this text\n"
          "\n"
          "Options with one dash go to the plugin and to PETSc:\n"
          "  -help                the plugin's options, with defaults\n"
          "  -options_file FILE   more options from FILE\n"
          "  -tao_monitor, -log_view, ...   PETSc's own options\n"
          "\n"
          "Ctrl-C (SIGINT) or SIGTERM stops training at the end of a step and saves it;\n"
          "a second Ctrl-C quits at once. Exit status: 0 done, 1 the run failed, 2 a\n"
          "usage error, 130 stopped by SIGINT, 143 stopped by SIGTERM.\n",
          DEFAULT_SEED);
}

static int usage_error(const char *fmt, const char *arg)
{
  fprintf(stderr, "solver: error: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nTry 'solver --help'.\n");
  return EXIT_USAGE;
}

/* ------------------------------------------------------------------ */
/* Command line                                                        */
/* ------------------------------------------------------------------ */

static int parse_seed(const char *s, unsigned long *out)
{
  if (!*s)
    return -1;
  unsigned long long v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9')
      return -1;
    v = v * 10 + (unsigned long long)(*p - '0');
    if (v > 4294967295ULL) /* mt19937 takes 32 bits */
      return -2;
  }
  *out = (unsigned long)v;
  return 0;
}

/* Does a token read as a number ("-1e-3")? PETSc takes those as values. */
static int is_number(const char *s)
{
  char *end;
  if (!*s)
    return 0;
  (void)strtod(s, &end);
  return *end == '\0';
}

static int is_option(const char *s)
{
  return s[0] == '-' && s[1] && !is_number(s);
}

/*
 * Take our --options out of argv into *c; the rest (argv[0] first) goes
 * to *pargv for PETSc. Returns 0, or an exit status after printing the
 * error.
 */
static int parse_cli(int argc, char **argv, cli *c, char ***pargv, int *pargc)
{
  memset(c, 0, sizeof *c);
  c->seed = DEFAULT_SEED;
  char **pv = calloc((size_t)argc + 1, sizeof *pv);
  if (!pv) {
    fprintf(stderr, "solver: error: out of memory\n");
    return 1;
  }
  int pc = 0;
  pv[pc++] = argv[0];
  int passthrough = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (passthrough || strncmp(a, "--", 2) != 0) {
      if (!passthrough && strcmp(a, "-help") == 0)
        c->plugin_help = 1; /* ours: PETSc would print pages of its own */
      else
        pv[pc++] = argv[i];
      continue;
    }
    if (strcmp(a, "--") == 0) {
      passthrough = 1;
      continue;
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t nl = eq ? (size_t)(eq - name) : strlen(name);
    static const char *const with_value[] = {"plugin", "out", "seed", "resume"};
    static const char *const flags[] = {"list", "version", "help", "quiet"};
    int kind = -1, which = -1;
    for (int k = 0; k < 4; k++)
      if (strlen(with_value[k]) == nl && strncmp(name, with_value[k], nl) == 0)
        kind = 0, which = k;
    for (int k = 0; k < 4; k++)
      if (strlen(flags[k]) == nl && strncmp(name, flags[k], nl) == 0)
        kind = 1, which = k;
    if (kind < 0) {
      free(pv);
      fputs(SYNOPSIS, stderr);
      return usage_error("unknown option %s", a);
    }
    if (kind == 1) {
      if (eq) {
        free(pv);
        return usage_error("option %s takes no value", a);
      }
      int *flag[] = {&c->list, &c->version, &c->help, &c->quiet};
      *flag[which] = 1;
      continue;
    }
    const char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
    if (!v) {
      free(pv);
      return usage_error("option %s needs a value", a);
    }
    if (which == 0) {
      c->plugin = v;
    } else if (which == 1) {
      if (!*v) {
        free(pv);
        return usage_error("option --out needs a directory%s", "");
      }
      c->out = v;
    } else if (which == 3) {
      if (!*v) {
        free(pv);
        return usage_error("option --resume needs a directory%s", "");
      }
      c->resume = v;
    } else {
      c->seed_given = 1;
      int rc = parse_seed(v, &c->seed);
      if (rc == -1) {
        free(pv);
        return usage_error("--seed: '%s' is not a non-negative integer", v);
      }
      if (rc == -2) {
        free(pv);
        return usage_error("--seed: '%s' is out of range (0 to 4294967295)", v);
      }
    }
  }
  pv[pc] = NULL;
  if (c->resume && (c->plugin || c->out || c->seed_given || pc > 1)) {
    const char *extra = c->plugin ? "--plugin" : c->out ? "--out" : c->seed_given ? "--seed"
                                                                                 : pv[1];
    int st = usage_error("--resume DIR takes the plugin, seed, output directory and options "
                         "recorded in DIR/run.json; give none of them (%s)", extra);
    free(pv);
    return st;
  }
  *pargv = pv;
  *pargc = pc;
  c->nargs = pc - 1;
  c->args = pv + 1;
  return 0;
}

/*
 * --resume DIR: the run as run.json recorded it. DIR becomes absolute and
 * the working directory the recorded one, so that relative paths in the
 * options mean what they meant. *pargv is replaced by argv[0] and the
 * recorded options (strings owned by *info).
 */
static int load_resume(cli *c, sv__runinfo *info, char **outdir, char ***pargv, int *pargc)
{
  char abs[PATH_MAX];
  struct stat st;
  if (stat(c->resume, &st) < 0) {
    fprintf(stderr, "solver: error: cannot resume '%s': %s\n", c->resume, strerror(errno));
    return 1;
  }
  if (!S_ISDIR(st.st_mode)) {
    fprintf(stderr, "solver: error: cannot resume '%s': not a directory (give the output "
                    "directory of the run)\n", c->resume);
    return 1;
  }
  if (!realpath(c->resume, abs)) {
    fprintf(stderr, "solver: error: cannot resume '%s': %s\n", c->resume, strerror(errno));
    return 1;
  }
  if (sv__runinfo_read(abs, info) < 0) {
    fprintf(stderr, "solver: error: cannot resume '%s': %s\n", c->resume, sv_errmsg());
    return 1;
  }
  char **pv = calloc((size_t)info->nargs + 2, sizeof *pv);
  if (!(*outdir = strdup(abs)) || !pv) {
    free(pv);
    fprintf(stderr, "solver: error: out of memory\n");
    return 1;
  }
  pv[0] = (*pargv)[0];
  for (int i = 0; i < info->nargs; i++)
    pv[i + 1] = info->args[i];
  free(*pargv);
  *pargv = pv;
  *pargc = info->nargs + 1;
  c->args = pv + 1;
  c->nargs = info->nargs;
  c->seed = info->seed;
  c->out = *outdir;
  /* the file it ran, if it is still there; else its name on the path */
  c->plugin = info->plugin_path && *info->plugin_path && stat(info->plugin_path, &st) == 0
                  ? info->plugin_path : info->plugin;
  if (info->cwd && *info->cwd && chdir(info->cwd) < 0)
    fprintf(stderr, "solver: warning: cannot go back to '%s' (%s): relative paths in the "
                    "options are taken from here\n", info->cwd, strerror(errno));
  return 0;
}

/*
 * Before PETSc reads them: a stray word (PETSc would ignore it) and an
 * options file that cannot be read (PETSc would print a page of
 * traceback) are usage errors.
 */
static int check_petsc_args(int pc, char **pv)
{
  for (int i = 1; i < pc; i++) {
    const char *t = pv[i];
    if (!is_option(t))
      return usage_error("unexpected argument '%s' (options are -name value)", t);
    const char *val = i + 1 < pc && !is_option(pv[i + 1]) ? pv[++i] : NULL;
    if (strcmp(t, "-options_file") == 0) {
      if (!val)
        return usage_error("option -options_file needs a file name%s", "");
      FILE *f = fopen(val, "r");
      if (!f) {
        fprintf(stderr, "solver: error: cannot read options file '%s': %s\n", val,
                strerror(errno));
        return EXIT_USAGE;
      }
      fclose(f);
    }
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* The subcommands that need no plugin                                 */
/* ------------------------------------------------------------------ */

static int print_version(void)
{
  printf("solver %s (plugin ABI %d; PETSc %d.%d.%d, GSL %s)\n", sv_version(), SV_ABI_VERSION,
         PETSC_VERSION_MAJOR, PETSC_VERSION_MINOR, PETSC_VERSION_SUBMINOR, GSL_VERSION);
  return 0;
}

static int print_list(void)
{
  sv__plugin_info *list;
  int n;
  if (sv__plugin_list(&list, &n) < 0) {
    fprintf(stderr, "solver: error: %s\n", sv_errmsg());
    return 1;
  }
  char **dirs = sv__plugin_search_path();
  if (n == 0) {
    fprintf(stderr, "solver: no plugins found (searched:");
    for (char **d = dirs; d && *d; d++)
      fprintf(stderr, " %s", *d);
    fprintf(stderr, "%s)\n", dirs && *dirs ? "" : " nothing; set SOLVER_PLUGIN_PATH");
  } else {
    int w = 0;
    for (int i = 0; i < n; i++)
      if ((int)strlen(list[i].name) > w)
        w = (int)strlen(list[i].name);
    for (int i = 0; i < n; i++)
      printf("%-*s  %s\n%*s  (%s)\n", w, list[i].name, list[i].summary, w, "", list[i].path);
  }
  sv__plugin_search_path_free(dirs);
  sv__plugin_list_free(list, n);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Running a plugin                                                    */
/* ------------------------------------------------------------------ */

/* PETSc errors become our message instead of a traceback on stderr; the
   caller that sees the error code reports it (or adds context). */
static PetscErrorCode petsc_error(MPI_Comm comm, int line, const char *func, const char *file,
                                  PetscErrorCode n, PetscErrorType p, const char *mess, void *ctx)
{
  (void)comm, (void)line, (void)file, (void)ctx;
  if (p == PETSC_ERROR_INITIAL) {
    const char *text = NULL;
    if (!mess || !*mess || strcmp(mess, " ") == 0)
      PetscErrorMessage(n, &text, NULL);
    sv_fail("PETSc: %s (error %d in %s)", text ? text : mess ? mess : "unknown error", (int)n,
            func ? func : "?");
  }
  return n;
}

/*
 * Every rank says whether it failed; the lowest failed rank prints its
 * message (rank 0's if it failed), so a failure that every rank shares is
 * printed once. Returns 1 if any rank failed.
 */
static int any_failed(int failed, const char *what)
{
  int rank = 0, size = 1;
  MPI_Comm_rank(PETSC_COMM_WORLD, &rank);
  MPI_Comm_size(PETSC_COMM_WORLD, &size);
  int mine = failed ? rank : size, first = mine;
  if (size > 1)
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, PETSC_COMM_WORLD);
  if (first == size)
    return 0;
  if (rank == first) {
    const char *msg = sv_errmsg();
    char where[32] = "";
    if (rank > 0)
      snprintf(where, sizeof where, " (rank %d)", rank);
    fprintf(stderr, "solver: error%s: %s%s%s\n", where, what ? what : "", what ? ": " : "",
            *msg ? msg : "failed without a message");
    fflush(stderr);
  }
  return 1;
}

/* DIR as a shell word: quoted when it has to be. */
static void shell_word(const char *s, char *out, size_t n)
{
  int plain = *s != '\0';
  for (const char *p = s; *p; p++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-+=:,@", *p))
      plain = 0;
  if (plain) {
    snprintf(out, n, "%s", s);
    return;
  }
  size_t k = 0;
  if (k + 1 < n)
    out[k++] = '\'';
  for (const char *p = s; *p && k + 5 < n; p++) {
    if (*p == '\'') {
      memcpy(out + k, "'\\''", 4);
      k += 4;
    } else {
      out[k++] = *p;
    }
  }
  if (k + 1 < n)
    out[k++] = '\'';
  out[k] = '\0';
}

/*
 * The run stopped on a signal (every rank gets here together: sv_minimize
 * stops all ranks at the same step). summary.json says so; the exit
 * status is 128 + the signal's number, as a shell reports a process the
 * signal killed.
 */
static int interrupted(sv_run *r, int sig, const char *plugin)
{
  int rank = r->rank;
  r->interrupted = 1;
  if (!r->interrupt_signal)
    r->interrupt_signal = sig;
  double wall = sv__now() - r->t_start;
  int bad = any_failed(sv__write_summary(r, wall) < 0, "writing summary.json");
  if (rank == 0) {
    char dir[4200];
    shell_word(r->outdir, dir, sizeof dir);
    const char *name = sv__signal_name(r->interrupt_signal);
    if (r->interrupt_stage)
      fprintf(stderr, "solver: interrupted by %s at step %d of stage %s; resume with: solver "
                      "--resume %s\n", name, r->interrupt_step, r->interrupt_stage, dir);
    else
      fprintf(stderr, "solver: interrupted by %s (%s: %s); resume with: solver --resume %s\n",
              name, plugin, *sv_errmsg() ? sv_errmsg() : "stopped", dir);
    fflush(stderr);
  }
  (void)bad;
  return 128 + r->interrupt_signal;
}

static int run_plugin(const cli *c, sv__plugin **loaded)
{
  int rank = 0;
  MPI_Comm_rank(PETSC_COMM_WORLD, &rank);

  sv__plugin *pl = NULL;
  *loaded = NULL;
  if (any_failed(sv__plugin_load(c->plugin, &pl) < 0, NULL)) {
    sv__plugin_close(pl);
    return 1;
  }
  const sv_plugin *d = pl->desc;

  PetscBool petsc_help = PETSC_FALSE;
  PetscOptionsHasHelp(NULL, &petsc_help); /* -help in an options file */
  int help = c->plugin_help || c->help || petsc_help;

  char outdir[4096];
  if (c->out)
    snprintf(outdir, sizeof outdir, "%s", c->out);
  else
    snprintf(outdir, sizeof outdir, "out/%s", d->name);
  sv_run *r = sv__run_new(PETSC_COMM_WORLD, help ? NULL : outdir, c->seed);
  if (any_failed(!r, NULL)) {
    sv__plugin_close(pl);
    return 1;
  }
  r->plugin = d;
  r->quiet = c->quiet;
  r->help_mode = help;
  r->plugin_path = strdup(pl->path);

  int status = 0;
  void *state = NULL;
  int rc = d->setup(r, &state);
  if (help) {
    sv__options_print_help(r, stdout);
    fflush(stdout);
    if (any_failed(rc < 0, d->name))
      status = 1;
  } else if (any_failed(rc < 0, d->name)) {
    status = 1;
  } else if (any_failed(sv__options_check_unknown(r) < 0, NULL)) {
    status = EXIT_USAGE;
  } else {
    /* the journal (a fresh run clears an earlier one) and run.json, only
       now that the options are known to be good */
    char abs[PATH_MAX], cwd[PATH_MAX];
    const char *ppath = realpath(pl->path, abs) ? abs : pl->path;
    rc = sv__journal_begin(r, c->resume != NULL);
    if (rc == 0 && !c->resume)
      rc = sv__runinfo_write(r, ppath, getcwd(cwd, sizeof cwd) ? cwd : "", c->nargs, c->args);
    if (any_failed(rc < 0, c->resume ? "cannot resume" : NULL)) {
      status = 1;
    } else if (any_failed(sv__signals_install() < 0, NULL)) {
      status = 1;
    } else {
      sv_log(r, "%s: seed %lu, %d rank%s, output in %s%s", d->name, r->seed, r->size,
             r->size == 1 ? "" : "s", r->outdir, c->resume ? " (resumed)" : "");
      rc = d->run(r, state);
      /* a plugin that failed after a signal (its own loops check
         sv_interrupted) was interrupted, too; all ranks must agree */
      int sig = r->interrupted ? r->interrupt_signal : rc < 0 ? sv__signal_pending() : 0, any = sig;
      if (r->size > 1)
        MPI_Allreduce(&sig, &any, 1, MPI_INT, MPI_MAX, PETSC_COMM_WORLD);
      if (any) {
        status = interrupted(r, any, d->name);
      } else if (any_failed(rc < 0, d->name)) {
        status = 1;
      } else {
        double wall = sv__now() - r->t_start;
        if (any_failed(sv__write_summary(r, wall) < 0, NULL)) {
          status = 1;
        } else if (rank == 0) {
          for (int i = 0; i < r->nheadlines; i++)
            printf("%s\n", r->headlines[i]);
          if (!r->quiet)
            printf("%s: done in %.2f s; results in %s\n", d->name, wall, r->outdir);
          fflush(stdout);
        }
      }
      sv__signals_restore();
    }
  }

  if (state && d->cleanup)
    d->cleanup(state);
  sv__run_free(r);
  /* PETSc may still hold pointers into the plugin's code (types or
     monitors it registered) until it is finalised: main closes it then */
  *loaded = pl;
  return status;
}

int main(int argc, char **argv)
{
  cli c;
  char **pv = NULL;
  int pc = 0;
  int rc = parse_cli(argc, argv, &c, &pv, &pc);
  if (rc)
    return rc;

  if (c.version || c.list || (c.help && !c.plugin && !c.resume)) {
    rc = c.version ? print_version() : c.list ? print_list() : (usage(stdout), 0);
    free(pv);
    return rc;
  }
  sv__runinfo info;
  memset(&info, 0, sizeof info);
  char *resume_dir = NULL;
  if (c.resume && (rc = load_resume(&c, &info, &resume_dir, &pv, &pc))) {
    free(pv);
    free(resume_dir);
    sv__runinfo_free(&info);
    return rc;
  }
  char **pv_mine = pv; /* MPI_Init may replace pv */
  /* run.json records the options as given: keep our own list of them */
  char **args = calloc((size_t)pc + 1, sizeof *args);
  if (!args) {
    fprintf(stderr, "solver: error: out of memory\n");
    free(pv), free(resume_dir), sv__runinfo_free(&info);
    return 1;
  }
  for (int i = 1; i < pc; i++)
    args[i - 1] = pv[i];
  c.args = args;
  c.nargs = pc - 1;

  if (!c.plugin) {
    free(pv), free(args);
    fputs(SYNOPSIS, stderr);
    return usage_error("no plugin given (--plugin NAME; --list shows the plugins found)%s", "");
  }
  if ((rc = check_petsc_args(pc, pv))) {
    free(pv), free(args), free(resume_dir), sv__runinfo_free(&info);
    return rc;
  }

  PetscErrorCode ierr = PetscInitialize(&pc, &pv, NULL, NULL);
  if (ierr) {
    fprintf(stderr, "solver: error: PETSc could not be initialised (error %d)\n", (int)ierr);
    free(pv_mine), free(args), free(resume_dir), sv__runinfo_free(&info);
    return 1;
  }
  PetscPushErrorHandler(petsc_error, NULL);

  sv__plugin *pl = NULL;
  rc = run_plugin(&c, &pl);

  PetscPopErrorHandler();
  PetscFinalize();
  sv__plugin_close(pl);
  free(pv_mine);
  free(args);
  free(resume_dir);
  sv__runinfo_free(&info);
  return rc;
}
