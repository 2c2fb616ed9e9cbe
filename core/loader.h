/*
 * loader.h -- what the `solver` program needs from the core beyond the run
 * context: the plugin loader (plugin.c), the checks and listings around
 * plugin options (options.c), and the progress bar's hooks for the logger
 * (progress.c). Never installed; the unit tests include it.
 */
#ifndef SV_LOADER_H
#define SV_LOADER_H

#include "internal.h"

#include <stddef.h>
#include <stdio.h>

/* ------------------------------------------------------------------ */
/* Plugins (plugin.c)                                                  */
/* ------------------------------------------------------------------ */

/* The size of the version-1 descriptor: a plugin's struct_size may be
   larger (a newer plugin), never smaller. */
#define SV_PLUGIN_V1_SIZE \
  (offsetof(sv_plugin, cleanup) + sizeof(((sv_plugin *)0)->cleanup))

typedef struct {
  void *handle;           /* from dlopen */
  const sv_plugin *desc;  /* checked descriptor */
  char *path;             /* the file that was opened */
} sv__plugin;

/* The search path, in order: $SOLVER_PLUGIN_PATH, SV_BUILD_PLUGIN_DIR,
   SV_PLUGIN_DIR (each colon-separated; empty entries skipped). Returns a
   NULL-terminated malloc'd array of malloc'd strings, or NULL (out of
   memory, message set). */
SV_HIDDEN char **sv__plugin_search_path(void);
SV_HIDDEN void sv__plugin_search_path_free(char **dirs);

/* Resolve NAME: a path with a '/' as is, else NAME then NAME.so in each
   search directory. *path is malloc'd. */
SV_HIDDEN int sv__plugin_resolve(const char *name, char **path);

/* Open a file and check its descriptor; every refusal names the file and
   the reason. *out is malloc'd; close it with sv__plugin_close. */
SV_HIDDEN int sv__plugin_open(const char *path, sv__plugin **out);

/* Resolve and open. */
SV_HIDDEN int sv__plugin_load(const char *name, sv__plugin **out);
SV_HIDDEN void sv__plugin_close(sv__plugin *p);

/* Every *.so in the search path whose entry point loads, in search order
   (a name found twice is listed once: the one --plugin would pick). */
typedef struct {
  char *name;             /* descriptor name */
  char *summary;
  char *path;
} sv__plugin_info;

SV_HIDDEN int sv__plugin_list(sv__plugin_info **out, int *n);
SV_HIDDEN void sv__plugin_list_free(sv__plugin_info *list, int n);

/* ------------------------------------------------------------------ */
/* Options (options.c)                                                 */
/* ------------------------------------------------------------------ */

/* After the plugin's setup: fail with "unknown option -xyz (did you mean
   -xy?)" for an option in PETSc's database that no one used or declared
   and that is not PETSc's own (-tao_*, -log_*, ...). */
SV_HIDDEN int sv__options_check_unknown(sv_run *r);

/* Is `name` (with or without its dash) one of PETSc's own options? */
SV_HIDDEN int sv__option_is_petsc(const char *name);

/* Edit distance (insertions, deletions, substitutions and transpositions
   of adjacent characters), ignoring case. */
SV_HIDDEN int sv__edit_distance(const char *a, const char *b);

/* The -help listing: plugin name and summary, then each declared option
   with its type, default and help text in aligned columns. */
SV_HIDDEN void sv__options_print_help(const sv_run *r, FILE *out);

/* Free the run's option declarations. */
SV_HIDDEN void sv__options_free(sv_run *r);

/* ------------------------------------------------------------------ */
/* Progress (progress.c)                                               */
/* ------------------------------------------------------------------ */

/* A logger about to print while a bar is drawn on the terminal: erase it
   first, and draw it again after. Both do nothing without a bar. */
SV_HIDDEN void sv__progress_clear(sv_run *r);
SV_HIDDEN void sv__progress_redraw(sv_run *r);
/* Free the progress state (sv__run_free). */
SV_HIDDEN void sv__progress_free(sv_run *r);

#endif
