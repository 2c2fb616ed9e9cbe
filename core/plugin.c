/*
 * plugin.c -- finding, opening and checking method plugins.
 *
 * A plugin is a shared object exporting sv_plugin_entry(), which returns a
 * constant descriptor. `--plugin NAME` is a path when it contains a '/';
 * otherwise NAME and NAME.so are tried in each directory of the search
 * path: $SOLVER_PLUGIN_PATH, then the build tree, then the installed
 * plugin directory. Every refusal says which file and why.
 */
#include "loader.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Search path                                                         */
/* ------------------------------------------------------------------ */

typedef struct {
  char **v;
  int n, cap;
  int oom;
} strlist;

static void strlist_add(strlist *l, const char *s, size_t len)
{
  if (l->oom || len == 0)
    return;
  for (int i = 0; i < l->n; i++)
    if (strlen(l->v[i]) == len && strncmp(l->v[i], s, len) == 0)
      return; /* listed already: the first one wins anyway */
  if (l->n + 1 >= l->cap) {
    int cap = l->cap ? 2 * l->cap : 8;
    char **v = realloc(l->v, (size_t)cap * sizeof *v);
    if (!v) {
      l->oom = 1;
      return;
    }
    l->v = v;
    l->cap = cap;
  }
  char *copy = strndup(s, len);
  if (!copy) {
    l->oom = 1;
    return;
  }
  l->v[l->n++] = copy;
  l->v[l->n] = NULL;
}

/* Add each entry of a colon-separated list. */
static void strlist_add_path(strlist *l, const char *path)
{
  if (!path)
    return;
  for (const char *s = path;;) {
    const char *e = strchr(s, ':');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    strlist_add(l, s, len);
    if (!e)
      break;
    s = e + 1;
  }
}

char **sv__plugin_search_path(void)
{
  strlist l = {0};
  strlist_add_path(&l, getenv("SOLVER_PLUGIN_PATH"));
#ifdef SV_BUILD_PLUGIN_DIR
  strlist_add_path(&l, SV_BUILD_PLUGIN_DIR);
#endif
#ifdef SV_PLUGIN_DIR
  strlist_add_path(&l, SV_PLUGIN_DIR);
#endif
  if (!l.oom && !l.v) {
    l.v = calloc(1, sizeof *l.v);
    l.oom = !l.v;
  }
  if (l.oom) {
    sv__plugin_search_path_free(l.v);
    sv_fail("plugin search path: out of memory");
    return NULL;
  }
  return l.v;
}

void sv__plugin_search_path_free(char **dirs)
{
  if (!dirs)
    return;
  for (char **d = dirs; *d; d++)
    free(*d);
  free(dirs);
}

static int is_file(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static char *join(const char *dir, const char *name, const char *ext)
{
  size_t dl = strlen(dir), nl = strlen(name), el = strlen(ext);
  int sep = dl > 0 && dir[dl - 1] != '/';
  char *p = malloc(dl + (size_t)sep + nl + el + 1);
  if (!p)
    return NULL;
  memcpy(p, dir, dl);
  if (sep)
    p[dl] = '/';
  memcpy(p + dl + (size_t)sep, name, nl);
  memcpy(p + dl + (size_t)sep + nl, ext, el + 1);
  return p;
}

static int ends_with(const char *s, const char *suffix)
{
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

int sv__plugin_resolve(const char *name, char **path)
{
  *path = NULL;
  if (!name || !*name)
    return sv_fail("no plugin name given");

  if (strchr(name, '/')) {
    struct stat st;
    if (stat(name, &st) < 0)
      return sv_fail("no such plugin file '%s': %s", name, strerror(errno));
    if (S_ISDIR(st.st_mode))
      return sv_fail("plugin '%s' is a directory, not a shared object", name);
    if (!(*path = strdup(name)))
      return sv_fail("plugin '%s': out of memory", name);
    return 0;
  }

  char **dirs = sv__plugin_search_path();
  if (!dirs)
    return -1;
  int suffixed = ends_with(name, ".so");
  for (char **d = dirs; *d; d++) {
    for (int k = 0; k < (suffixed ? 1 : 2); k++) {
      char *cand = join(*d, name, k ? ".so" : "");
      if (!cand) {
        sv__plugin_search_path_free(dirs);
        return sv_fail("plugin '%s': out of memory", name);
      }
      if (is_file(cand)) {
        sv__plugin_search_path_free(dirs);
        *path = cand;
        return 0;
      }
      free(cand);
    }
  }

  /* not found: say where we looked */
  char where[1024];
  size_t k = 0;
  where[0] = '\0';
  for (char **d = dirs; *d && k < sizeof where; d++) {
    int w = snprintf(where + k, sizeof where - k, "%s%s", k ? ", " : "", *d);
    if (w > 0)
      k += (size_t)w;
  }
  sv__plugin_search_path_free(dirs);
  const char *hint = "";
  if (is_file(name))
    hint = "; a file of that name is in the current directory: give it as ./NAME";
  if (!where[0])
    return sv_fail("no such plugin '%s' (searched: nothing; set SOLVER_PLUGIN_PATH)%s", name,
                   hint);
  return sv_fail("no such plugin '%s' (searched: %s)%s", name, where, hint);
}

/* ------------------------------------------------------------------ */
/* Opening and checking                                                */
/* ------------------------------------------------------------------ */

static int has_elf_magic(const char *path)
{
  unsigned char m[4] = {0};
  FILE *f = fopen(path, "rb");
  if (!f)
    return 0;
  size_t n = fread(m, 1, 4, f);
  fclose(f);
  return n == 4 && m[0] == 0x7f && m[1] == 'E' && m[2] == 'L' && m[3] == 'F';
}

/* A plugin's name becomes a directory name (out/<name>): keep it tame. */
static int check_plugin_name(const char *path, const char *name)
{
  if (!*name)
    return sv_fail("'%s': the descriptor's name is empty", path);
  if (name[0] == '.' || strlen(name) > 64)
    return sv_fail("'%s': plugin name '%.64s' is not a usable name", path, name);
  for (const char *s = name; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
      return sv_fail("'%s': plugin name '%s' may contain only letters, digits, '_', '-' and '.'",
                     path, name);
  return 0;
}

static int check_descriptor(const char *path, const sv_plugin *d)
{
  if (!d)
    return sv_fail("'%s': its entry point %s returned no descriptor", path,
                   SV_PLUGIN_ENTRY_NAME);
  /* abi_version is the first field in every version: read it first */
  if (d->abi_version != SV_ABI_VERSION)
    return sv_fail("'%s' was built for ABI version %u, this solver has %d", path,
                   (unsigned)d->abi_version, SV_ABI_VERSION);
  if (d->struct_size < SV_PLUGIN_V1_SIZE)
    return sv_fail("'%s' has a %u-byte descriptor, smaller than the %zu bytes of ABI version %d",
                   path, (unsigned)d->struct_size, (size_t)SV_PLUGIN_V1_SIZE, SV_ABI_VERSION);
  if (d->real_size != sizeof(double))
    return sv_fail("'%s' was built with %u-byte reals, this solver uses %zu-byte doubles", path,
                   (unsigned)d->real_size, sizeof(double));
  if (!d->name)
    return sv_fail("'%s': the descriptor has no name", path);
  if (check_plugin_name(path, d->name) < 0)
    return -1;
  if (!d->setup)
    return sv_fail("'%s' (%s): the descriptor has no setup callback", path, d->name);
  if (!d->run)
    return sv_fail("'%s' (%s): the descriptor has no run callback", path, d->name);
  return 0;
}

int sv__plugin_open(const char *path, sv__plugin **out)
{
  *out = NULL;
  if (!path || !*path)
    return sv_fail("no plugin file given");
  if (access(path, R_OK) < 0)
    return sv_fail("cannot read plugin '%s': %s", path, strerror(errno));

  dlerror();
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *why = dlerror();
    if (!has_elf_magic(path))
      return sv_fail("'%s' is not a shared object: %s", path, why ? why : "dlopen failed");
    return sv_fail("'%s' cannot be loaded: %s", path, why ? why : "dlopen failed");
  }

  sv_plugin_entry_fn entry = NULL;
  dlerror();
  *(void **)(&entry) = dlsym(h, SV_PLUGIN_ENTRY_NAME);
  if (!entry) {
    dlclose(h);
    return sv_fail("'%s' has no entry point %s", path, SV_PLUGIN_ENTRY_NAME);
  }
  const sv_plugin *desc = entry();
  if (check_descriptor(path, desc) < 0) {
    dlclose(h);
    return -1;
  }

  sv__plugin *p = calloc(1, sizeof *p);
  if (!p || !(p->path = strdup(path))) {
    free(p);
    dlclose(h);
    return sv_fail("plugin '%s': out of memory", path);
  }
  p->handle = h;
  p->desc = desc;
  *out = p;
  return 0;
}

int sv__plugin_load(const char *name, sv__plugin **out)
{
  char *path;
  *out = NULL;
  if (sv__plugin_resolve(name, &path) < 0)
    return -1;
  int rc = sv__plugin_open(path, out);
  free(path);
  return rc;
}

void sv__plugin_close(sv__plugin *p)
{
  if (!p)
    return;
  if (p->handle)
    dlclose(p->handle);
  free(p->path);
  free(p);
}

/* ------------------------------------------------------------------ */
/* Listing                                                             */
/* ------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.so file names of one directory, sorted. */
static int dir_plugins(const char *dir, strlist *files)
{
  DIR *d = opendir(dir);
  if (!d)
    return 0; /* a missing directory on the path is not an error */
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.' && ends_with(e->d_name, ".so"))
      strlist_add(files, e->d_name, strlen(e->d_name));
  closedir(d);
  if (files->oom)
    return sv_fail("listing '%s': out of memory", dir);
  if (files->n > 1)
    qsort(files->v, (size_t)files->n, sizeof *files->v, cmp_str);
  return 0;
}

void sv__plugin_list_free(sv__plugin_info *list, int n)
{
  for (int i = 0; i < n; i++) {
    free(list[i].name);
    free(list[i].summary);
    free(list[i].path);
  }
  free(list);
}

int sv__plugin_list(sv__plugin_info **out, int *nout)
{
  *out = NULL;
  *nout = 0;
  char **dirs = sv__plugin_search_path();
  if (!dirs)
    return -1;
  sv__plugin_info *list = NULL;
  int n = 0, cap = 0, rc = 0;
  strlist seen = {0}; /* file names already listed: the first one shadows */
  for (char **d = dirs; *d && rc == 0; d++) {
    strlist files = {0};
    rc = dir_plugins(*d, &files);
    for (int i = 0; rc == 0 && i < files.n; i++) {
      int dup = 0;
      for (int j = 0; j < seen.n && !dup; j++)
        dup = strcmp(seen.v[j], files.v[i]) == 0;
      if (dup)
        continue;
      char *path = join(*d, files.v[i], "");
      sv__plugin *p = NULL;
      if (!path) {
        rc = sv_fail("listing plugins: out of memory");
        break;
      }
      if (sv__plugin_open(path, &p) < 0) {
        free(path); /* not a loadable plugin: not listed */
        continue;
      }
      strlist_add(&seen, files.v[i], strlen(files.v[i]));
      if (n == cap) {
        cap = cap ? 2 * cap : 8;
        sv__plugin_info *l = realloc(list, (size_t)cap * sizeof *l);
        if (!l) {
          rc = sv_fail("listing plugins: out of memory");
          sv__plugin_close(p);
          free(path);
          break;
        }
        list = l;
      }
      list[n].name = strdup(p->desc->name);
      list[n].summary = strdup(p->desc->summary ? p->desc->summary : "");
      list[n].path = path;
      n++;
      sv__plugin_close(p);
      if (!list[n - 1].name || !list[n - 1].summary || seen.oom)
        rc = sv_fail("listing plugins: out of memory");
    }
    sv__plugin_search_path_free(files.v);
  }
  sv__plugin_search_path_free(seen.v);
  sv__plugin_search_path_free(dirs);
  if (rc < 0) {
    sv__plugin_list_free(list, n);
    return -1;
  }
  sv_clear_error(); /* refusals of files that are not plugins are not errors here */
  *out = list;
  *nout = n;
  return 0;
}
