/*
 * test_checkpoint.c -- checkpoints: bit-exact round trips, and every
 * truncation, every flipped byte, a wrong model and a missing file are
 * errors with a message, never a crash, and leave the params unchanged.
 */
#include "internal.h"

#include <check.h>
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static void make_tmpdir(void)
{
  snprintf(tmpdir, sizeof tmpdir, "%s/sv_ckpt_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
  DIR *d = opendir(tmpdir);
  if (!d)
    return;
  struct dirent *e;
  char path[512];
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
      unlink(path);
    }
  }
  closedir(d);
  rmdir(tmpdir);
}

static char *tpath(const char *name)
{
  static char buf[4][512];
  static int k;
  char *p = buf[k++ % 4];
  snprintf(p, 512, "%s/%s", tmpdir, name);
  return p;
}

/* A model with blocks of the given sizes ("W0" [rows, cols] style names),
   frozen, values filled by fill(i). */
static sv_graph *graph;

static sv_params *model(int nblocks, const char *const *names, const int *sizes)
{
  sv_params *p = sv_params_new();
  ck_assert_ptr_nonnull(p);
  for (int i = 0; i < nblocks; i++) {
    int dims[1] = {sizes[i]};
    ck_assert_ptr_nonnull(sv_param(graph, p, names[i], 1, dims));
  }
  ck_assert_ptr_nonnull(sv_params_data(p));
  return p;
}

static const char *const NAMES3[] = {"net.l0.W", "net.l0.b", "net.out.W"};
static const int SIZES3[] = {6, 3, 4};

static void fill_tricky(sv_params *p)
{
  double *v = sv_params_data(p);
  /* values whose bits a text round trip or a float conversion would lose */
  const double special[] = {0.1, -0.0, 1.0 / 3.0, DBL_MIN / 8, DBL_MAX, -INFINITY,
                            M_PI, 1e-300};
  for (size_t i = 0; i < sv_params_count(p); i++)
    v[i] = i < 8 ? special[i] : sin(1.0 + (double)i) * exp((double)i);
  if (sv_params_count(p) > 8) {
    uint64_t bits = 0x7ff8000000abcdefull; /* a NaN with a payload */
    memcpy(&v[8], &bits, sizeof bits);
  }
}

static unsigned char *slurp(const char *path, size_t *n)
{
  FILE *fp = fopen(path, "rb");
  ck_assert_ptr_nonnull(fp);
  fseek(fp, 0, SEEK_END);
  long len = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  unsigned char *s = malloc(len > 0 ? (size_t)len : 1);
  ck_assert_ptr_nonnull(s);
  ck_assert_uint_eq(fread(s, 1, (size_t)len, fp), (size_t)len);
  fclose(fp);
  *n = (size_t)len;
  return s;
}

static void spit(const char *path, const void *s, size_t n)
{
  FILE *fp = fopen(path, "wb");
  ck_assert_ptr_nonnull(fp);
  ck_assert_uint_eq(fwrite(s, 1, n, fp), n);
  ck_assert_int_eq(fclose(fp), 0);
}

static int count_dir_entries(void)
{
  DIR *d = opendir(tmpdir);
  ck_assert_ptr_nonnull(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      n++;
  closedir(d);
  return n;
}

static void setup(void)
{
  make_tmpdir();
  graph = sv_graph_new();
  ck_assert_ptr_nonnull(graph);
  sv_clear_error();
}

static void teardown(void)
{
  sv_graph_free(graph);
  graph = NULL;
  remove_tmpdir();
}

/* ------------------------------------------------------------------ */

START_TEST(round_trip_bit_exact)
{
  sv_params *a = model(3, NAMES3, SIZES3);
  fill_tricky(a);
  const char *path = tpath("ck.bin");
  ck_assert_int_eq(sv_checkpoint_save(a, path), 0);

  /* into a model that is declared but not yet frozen: load freezes it */
  sv_params *b = sv_params_new();
  for (int i = 0; i < 3; i++) {
    int dims[1] = {SIZES3[i]};
    ck_assert_ptr_nonnull(sv_param(graph, b, NAMES3[i], 1, dims));
  }
  ck_assert_int_eq(sv_checkpoint_load(b, path), 0);
  ck_assert_uint_eq(sv_params_count(b), 13);
  ck_assert_int_eq(memcmp(sv_params_data(a), sv_params_data(b), 13 * sizeof(double)), 0);

  /* over existing values, and saved again: the same bytes */
  sv_params *c = model(3, NAMES3, SIZES3);
  for (int i = 0; i < 13; i++)
    sv_params_data(c)[i] = 42.0;
  ck_assert_int_eq(sv_checkpoint_load(c, path), 0);
  ck_assert_int_eq(memcmp(sv_params_data(a), sv_params_data(c), 13 * sizeof(double)), 0);
  ck_assert_int_eq(sv_checkpoint_save(c, tpath("ck2.bin")), 0);
  size_t n1, n2;
  unsigned char *s1 = slurp(path, &n1), *s2 = slurp(tpath("ck2.bin"), &n2);
  ck_assert_uint_eq(n1, n2);
  ck_assert_int_eq(memcmp(s1, s2, n1), 0);
  /* the documented layout: magic, then 13 values at the end before the checksum */
  ck_assert_int_eq(memcmp(s1, "SVCKPT1\n", 8), 0);
  ck_assert_int_eq(memcmp(s1 + n1 - 8 - 13 * sizeof(double), sv_params_data(a),
                          13 * sizeof(double)), 0);
  free(s1);
  free(s2);
  sv_params_free(a);
  sv_params_free(b);
  sv_params_free(c);
}
END_TEST

START_TEST(round_trip_empty_and_overwrite)
{
  sv_params *e = sv_params_new();
  ck_assert_int_eq(sv_checkpoint_save(e, tpath("empty.bin")), 0);
  sv_params *e2 = sv_params_new();
  ck_assert_int_eq(sv_checkpoint_load(e2, tpath("empty.bin")), 0);
  ck_assert_uint_eq(sv_params_count(e2), 0);

  /* saving again replaces the file (rename over it), leaving no temporary */
  sv_params *a = model(3, NAMES3, SIZES3);
  fill_tricky(a);
  ck_assert_int_eq(sv_checkpoint_save(a, tpath("ck.bin")), 0);
  sv_params_data(a)[0] = 7.5;
  ck_assert_int_eq(sv_checkpoint_save(a, tpath("ck.bin")), 0);
  sv_params *b = model(3, NAMES3, SIZES3);
  ck_assert_int_eq(sv_checkpoint_load(b, tpath("ck.bin")), 0);
  ck_assert(sv_params_data(b)[0] == 7.5);
  ck_assert_int_eq(count_dir_entries(), 2); /* empty.bin, ck.bin */
  sv_params_free(e);
  sv_params_free(e2);
  sv_params_free(a);
  sv_params_free(b);
}
END_TEST

/* Every prefix of a valid checkpoint fails with "truncated" and the path,
   and leaves the params untouched. */
START_TEST(every_truncation_is_an_error)
{
  sv_params *a = model(3, NAMES3, SIZES3);
  fill_tricky(a);
  const char *good = tpath("ck.bin");
  ck_assert_int_eq(sv_checkpoint_save(a, good), 0);
  size_t n;
  unsigned char *s = slurp(good, &n);
  ck_assert_uint_gt(n, 100);

  sv_params *b = model(3, NAMES3, SIZES3);
  const char *bad = tpath("cut.bin");
  for (size_t len = 0; len < n; len++) {
    for (int i = 0; i < 13; i++)
      sv_params_data(b)[i] = -1.0;
    spit(bad, s, len);
    sv_clear_error();
    ck_assert_msg(sv_checkpoint_load(b, bad) == -1, "prefix of %zu bytes loaded", len);
    const char *msg = sv_errmsg();
    ck_assert_msg(strstr(msg, bad) && strstr(msg, "truncated"), "prefix %zu: '%s'", len, msg);
    for (int i = 0; i < 13; i++)
      ck_assert(sv_params_data(b)[i] == -1.0);
  }
  /* a trailing byte is not accepted either */
  unsigned char *longer = malloc(n + 1);
  memcpy(longer, s, n);
  longer[n] = 0;
  spit(bad, longer, n + 1);
  ck_assert_int_eq(sv_checkpoint_load(b, bad), -1);
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "corrupt"));
  free(longer);
  free(s);
  sv_params_free(a);
  sv_params_free(b);
}
END_TEST

/* Any single changed byte, anywhere (header, names, values, checksum), is
   refused. */
START_TEST(every_flipped_byte_is_an_error)
{
  sv_params *a = model(3, NAMES3, SIZES3);
  fill_tricky(a);
  const char *good = tpath("ck.bin");
  ck_assert_int_eq(sv_checkpoint_save(a, good), 0);
  size_t n;
  unsigned char *s = slurp(good, &n);

  sv_params *b = model(3, NAMES3, SIZES3);
  const char *bad = tpath("flip.bin");
  const unsigned char masks[] = {0x01, 0x80, 0xff};
  int corrupt_msgs = 0;
  for (size_t pos = 0; pos < n; pos++) {
    for (int m = 0; m < 3; m++) {
      s[pos] ^= masks[m];
      spit(bad, s, n);
      s[pos] ^= masks[m];
      for (int i = 0; i < 13; i++)
        sv_params_data(b)[i] = -1.0;
      sv_clear_error();
      ck_assert_msg(sv_checkpoint_load(b, bad) == -1, "byte %zu ^ 0x%02x loaded", pos,
                    masks[m]);
      ck_assert_msg(strstr(sv_errmsg(), bad), "byte %zu: '%s'", pos, sv_errmsg());
      corrupt_msgs += strstr(sv_errmsg(), "corrupt") != NULL;
      for (int i = 0; i < 13; i++)
        ck_assert(sv_params_data(b)[i] == -1.0);
    }
  }
  /* in the values and the checksum it is reported as corruption */
  ck_assert_int_ge(corrupt_msgs, 3 * (13 * 8 + 8));
  /* and the original still loads */
  ck_assert_int_eq(sv_checkpoint_load(b, good), 0);
  ck_assert_int_eq(memcmp(sv_params_data(a), sv_params_data(b), 13 * sizeof(double)), 0);
  free(s);
  sv_params_free(a);
  sv_params_free(b);
}
END_TEST

START_TEST(wrong_model_is_an_error)
{
  sv_params *a = model(3, NAMES3, SIZES3);
  fill_tricky(a);
  const char *path = tpath("ck.bin");
  ck_assert_int_eq(sv_checkpoint_save(a, path), 0);

  /* fewer parameters */
  static const char *const n2[] = {"net.l0.W", "net.l0.b"};
  static const int s2[] = {6, 3};
  sv_params *b = model(2, n2, s2);
  ck_assert_int_eq(sv_checkpoint_load(b, path), -1);
  ck_assert_msg(strstr(sv_errmsg(), "has 13 parameters, the model has 9") &&
                strstr(sv_errmsg(), path), "%s", sv_errmsg());

  /* the same count, split differently */
  static const int s3[] = {5, 4, 4};
  sv_params *c = model(3, NAMES3, s3);
  ck_assert_int_eq(sv_checkpoint_load(c, path), -1);
  ck_assert_msg(strstr(sv_errmsg(), "block 0") && strstr(sv_errmsg(), "net.l0.W"), "%s",
                sv_errmsg());

  /* the same sizes, another name */
  static const char *const n4[] = {"net.l0.W", "net.l0.b", "net.out.V"};
  sv_params *d = model(3, n4, SIZES3);
  ck_assert_int_eq(sv_checkpoint_load(d, path), -1);
  ck_assert_msg(strstr(sv_errmsg(), "block 2") && strstr(sv_errmsg(), "net.out.V"), "%s",
                sv_errmsg());

  /* the same count in one block */
  static const char *const n5[] = {"all"};
  static const int s5[] = {13};
  sv_params *e = model(1, n5, s5);
  ck_assert_int_eq(sv_checkpoint_load(e, path), -1);
  ck_assert_msg(strstr(sv_errmsg(), "has 3 parameter blocks, the model has 1"), "%s",
                sv_errmsg());
  sv_params_free(a);
  sv_params_free(b);
  sv_params_free(c);
  sv_params_free(d);
  sv_params_free(e);
}
END_TEST

START_TEST(missing_and_foreign_files)
{
  sv_params *b = model(3, NAMES3, SIZES3);
  const char *missing = tpath("no_such.bin");
  ck_assert_int_eq(sv_checkpoint_load(b, missing), -1);
  ck_assert_msg(strstr(sv_errmsg(), missing) && strstr(sv_errmsg(), "No such file"), "%s",
                sv_errmsg());

  const char *text = tpath("notes.txt");
  const char *words = "this is not a checkpoint, just some text that is long enough\n";
  spit(text, words, strlen(words));
  ck_assert_int_eq(sv_checkpoint_load(b, text), -1);
  ck_assert_msg(strstr(sv_errmsg(), "bad magic") && strstr(sv_errmsg(), text), "%s",
                sv_errmsg());

  /* a directory */
  ck_assert_int_eq(sv_checkpoint_load(b, tmpdir), -1);
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), tmpdir));

  /* saving into a directory that does not exist names the path */
  char nodir[600];
  snprintf(nodir, sizeof nodir, "%s/missing_dir/ck.bin", tmpdir);
  fill_tricky(b);
  ck_assert_int_eq(sv_checkpoint_save(b, nodir), -1);
  ck_assert_msg(strstr(sv_errmsg(), nodir), "%s", sv_errmsg());
  sv_params_free(b);
}
END_TEST

/* Files with a valid checksum that are still wrong (another version,
   4-byte reals, a moved block, an impossible name length) are refused by
   what is wrong, not misread. */
static uint64_t fnv1a64(const unsigned char *s, size_t n)
{
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ s[i]) * 1099511628211ull;
  return h;
}

START_TEST(crafted_files_are_refused)
{
  sv_params *a = model(3, NAMES3, SIZES3);
  fill_tricky(a);
  const char *path = tpath("ck.bin");
  ck_assert_int_eq(sv_checkpoint_save(a, path), 0);
  size_t n;
  unsigned char *s = slurp(path, &n);
  /* our checksum agrees with the file's: the format is what the comment says */
  uint64_t sum;
  memcpy(&sum, s + n - 8, 8);
  ck_assert(sum == fnv1a64(s, n - 8));

  uint32_t v = 2;
  memcpy(s + 8, &v, 4);
  sum = fnv1a64(s, n - 8);
  memcpy(s + n - 8, &sum, 8);
  spit(path, s, n);
  ck_assert_int_eq(sv_checkpoint_load(a, path), -1);
  ck_assert_msg(strstr(sv_errmsg(), "version 2"), "%s", sv_errmsg());

  /* 4-byte reals with a valid checksum */
  v = 1;
  memcpy(s + 8, &v, 4);
  v = 4;
  memcpy(s + 12, &v, 4);
  sum = fnv1a64(s, n - 8);
  memcpy(s + n - 8, &sum, 8);
  spit(path, s, n);
  ck_assert_int_eq(sv_checkpoint_load(a, path), -1);
  ck_assert_msg(strstr(sv_errmsg(), "4-byte"), "%s", sv_errmsg());

  /* a block moved (offset 6 -> 7) with a valid checksum: the layout differs */
  v = 8;
  memcpy(s + 12, &v, 4);
  uint64_t off;
  memcpy(&off, s + 68, 8); /* block 1: len at 56, "net.l0.b" at 60, offset at 68 */
  ck_assert(off == 6);
  off = 7;
  memcpy(s + 68, &off, 8);
  sum = fnv1a64(s, n - 8);
  memcpy(s + n - 8, &sum, 8);
  spit(path, s, n);
  ck_assert_int_eq(sv_checkpoint_load(a, path), -1);
  ck_assert_msg(strstr(sv_errmsg(), "block 1") && strstr(sv_errmsg(), "at 7"), "%s",
                sv_errmsg());
  off = 6;
  memcpy(s + 68, &off, 8);

  /* a huge block name length with a valid checksum: no read past the end */
  uint32_t huge = 0xfffffff0u;
  memcpy(s + 28, &huge, 4);
  sum = fnv1a64(s, n - 8);
  memcpy(s + n - 8, &sum, 8);
  spit(path, s, n);
  ck_assert_int_eq(sv_checkpoint_load(a, path), -1);
  ck_assert_msg(strstr(sv_errmsg(), "corrupt"), "%s", sv_errmsg());
  free(s);
  sv_params_free(a);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("checkpoint");
  TCase *tc = tcase_create("checkpoint");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 0);
  tcase_add_test(tc, round_trip_bit_exact);
  tcase_add_test(tc, round_trip_empty_and_overwrite);
  tcase_add_test(tc, every_truncation_is_an_error);
  tcase_add_test(tc, every_flipped_byte_is_an_error);
  tcase_add_test(tc, wrong_model_is_an_error);
  tcase_add_test(tc, missing_and_foreign_files);
  tcase_add_test(tc, crafted_files_are_refused);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
