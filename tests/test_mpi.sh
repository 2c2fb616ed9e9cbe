#!/bin/sh
# test_mpi.sh -- the least-squares fit of test_mpi_lsq on 1 and 2 ranks
# must give the same parameters to 1e-10 (LM, Adam and L-BFGS stages).
#
# mpiexec refuses root without --allow-run-as-root; 2 ranks on a small
# machine need oversubscription. OpenBLAS threads would fight the ranks.

prog=${TEST_MPI_LSQ:-./test_mpi_lsq}
tol=1e-10

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

work=$(mktemp -d "${TMPDIR:-/tmp}/test_mpi.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

for n in 1 2; do
  if ! "$mpiexec" $flags -n $n "$prog" "$work/fit$n.txt" "$work/out$n" >"$work/log$n" 2>&1; then
    cat "$work/log$n"
    echo "FAIL: $mpiexec -n $n $prog failed"
    exit 1
  fi
done

# Each line: stage A k c loss. Print the largest parameter difference per
# stage; fail if any exceeds the tolerance or the stages differ.
awk -v tol="$tol" '
  function abs(v) { return v < 0 ? -v : v }
  NR == FNR { one[$1] = $0; order[++n] = $1; next }
  {
    if (!($1 in one)) { print "FAIL: stage " $1 " only on 2 ranks"; bad = 1; next }
    split(one[$1], a, " ")
    d = 0
    for (i = 2; i <= 4; i++) if (abs($i - a[i]) > d) d = abs($i - a[i])
    printf "%-6s 1 rank: A=%.12f k=%.12f c=%.12f loss=%.6e   max |2 ranks - 1 rank| = %.3g\n", \
           $1, a[2], a[3], a[4], a[5], d
    if (d > tol) bad = 1
    seen++
  }
  END {
    if (seen != n || n != 3) { print "FAIL: expected 3 stages, got " n " and " seen; bad = 1 }
    if (bad) { print "FAIL: 2 ranks differ from 1 rank by more than " tol; exit 1 }
    print "PASS: 2 ranks match 1 rank to " tol
  }' "$work/fit1.txt" "$work/fit2.txt"
