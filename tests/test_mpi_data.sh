#!/bin/sh
# test_mpi_data.sh -- shuffled batches and classifier evaluation (see
# test_mpi_data.c) on 1, 2 and 3 ranks must give identical results: the
# same batches gathered from the ranks' shares, the same accuracy,
# confusion matrix, predictions and report files, and a failing predict
# function reported on every rank.

prog=${TEST_MPI_DATA:-./test_mpi_data}

mpiexec=${MPIEXEC:-mpiexec}
if ! command -v "$mpiexec" >/dev/null 2>&1; then
  echo "FAIL: $mpiexec not found (Debian: openmpi-bin, pulled in by libpetsc-real-dev)"
  exit 1
fi
flags=
if [ "$(id -u)" = 0 ]; then
  flags="--allow-run-as-root --oversubscribe"
fi
export OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1

work=$(mktemp -d "${TMPDIR:-/tmp}/test_mpi_data.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

for n in 1 2 3; do
  if ! "$mpiexec" $flags -n $n "$prog" "$work/res$n.txt" "$work/out$n" >"$work/log$n" 2>&1; then
    cat "$work/log$n"
    echo "FAIL: $mpiexec -n $n $prog failed"
    exit 1
  fi
done

cat "$work/res1.txt"
bad=0
# the one-rank run itself: 12 batches, an evaluation, a failure on all ranks
if [ "$(grep -c '^step ' "$work/res1.txt")" != 12 ] ||
   ! grep -q '^accuracy ' "$work/res1.txt" ||
   ! grep -q '^failing predict: fails on 1 of the ranks, rank named: as expected, message: .*no score for example 30' "$work/res1.txt"; then
  echo "FAIL: the one-rank results are incomplete"
  bad=1
fi
for n in 2 3; do
  # the failure line names the rank count; everything else is identical
  if ! grep -q "^failing predict: fails on $n of the ranks, rank named: as expected, message: .*no score for example 30" "$work/res$n.txt"; then
    grep '^failing' "$work/res$n.txt"
    echo "FAIL: on $n ranks the failing predict function is not reported on every rank"
    bad=1
  fi
  grep -v '^failing' "$work/res1.txt" >"$work/cmp1"
  grep -v '^failing' "$work/res$n.txt" >"$work/cmp$n"
  if ! cmp -s "$work/cmp1" "$work/cmp$n"; then
    diff -u "$work/cmp1" "$work/cmp$n"
    echo "FAIL: $n ranks differ from 1 rank"
    bad=1
  fi
  for f in test_confusion.csv test_per_class.csv; do
    if ! cmp -s "$work/out1/$f" "$work/out$n/$f"; then
      diff -u "$work/out1/$f" "$work/out$n/$f"
      echo "FAIL: $f on $n ranks differs from 1 rank"
      bad=1
    fi
  done
done
[ $bad = 0 ] && echo "PASS: 2 and 3 ranks give the batches and evaluation of 1 rank"
exit $bad
