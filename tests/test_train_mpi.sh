#!/bin/bash
# test_train_mpi.sh -- fixture_train's minibatch fit (AdamW, each rank
# taking its part of every batch, then LM) through the solver program on
# 1 and 2 ranks: the parameters must agree to 1e-10. A 2-rank run that
# rank 0 interrupts (the other rank learns of it in the optimizer's
# reduction) and that is then resumed must end with the checkpoint of the
# uninterrupted 2-rank run, byte for byte.

SOLVER=${SOLVER:-../solver}
if [ -n "$abs_builddir" ]; then
  FIXTURES="$abs_builddir/fixtures/.libs"
else
  FIXTURES="$(pwd)/fixtures/.libs"
fi
export SOLVER_PLUGIN_PATH="${SOLVER_PLUGIN_PATH:+$SOLVER_PLUGIN_PATH:}$FIXTURES"
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

work=$(mktemp -d "${TMPDIR:-/tmp}/test_train_mpi.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
fails=0
fail() {
  echo "FAIL: $1"
  [ -f "$work/log" ] && head -c 3000 "$work/log"
  fails=$((fails + 1))
}

for n in 1 2; do
  if ! "$mpiexec" $flags -n $n "$SOLVER" --quiet --plugin fixture_train --out "$work/a$n" -second none \
    >"$work/log" 2>&1 ||
     ! "$mpiexec" $flags -n $n "$SOLVER" --quiet --plugin fixture_train --out "$work/r$n" \
    >"$work/log" 2>&1; then
    fail "the $n-rank run failed"
  fi
done
if [ -f a1/params.csv ] && [ -f a2/params.csv ]; then
  if awk -v tol=1e-10 '
      function abs(v) { return v < 0 ? -v : v }
      FNR == 1 { next }
      NR == FNR { a[FNR] = $1; n++; next }
      { d = abs($1 - a[FNR]); if (d > m) m = d; k++ }
      END { printf "max |2 ranks - 1 rank| = %.3g over %d parameters\n", m, k
            exit !(k == n && k > 1 && m <= tol) }' a1/params.csv a2/params.csv; then
    echo "ok: AdamW over minibatches: 2 ranks match 1 rank to 1e-10"
  else
    fail "2 ranks differ from 1 rank by more than 1e-10"
  fi
else
  fail "no params.csv"
fi

# interrupted on 2 ranks, then resumed on 2 ranks
"$mpiexec" $flags -n 2 "$SOLVER" --quiet --plugin fixture_train --out "$work/int" \
  -interrupt_at 29 >"$work/log" 2>&1
status=$?
if [ "$status" -eq 0 ]; then
  fail "the interrupted 2-rank run exited 0"
elif ! grep -q '"status": "interrupted"' int/summary.json 2>/dev/null ||
     ! grep -q '"interrupted_step": 29' int/summary.json; then
  fail "summary.json does not say interrupted at step 29"
elif ! grep -qF "interrupted by SIGINT at step 29 of stage adamw" "$work/log"; then
  fail "no interrupt message"
elif ! "$mpiexec" $flags -n 2 "$SOLVER" --quiet --resume "$work/int" >"$work/log" 2>&1; then
  fail "the 2-rank resume failed"
elif ! cmp -s r2/checkpoint.bin int/checkpoint.bin; then
  fail "the resumed 2-rank run differs from the uninterrupted one"
else
  echo "ok: interrupted (exit $status) and resumed on 2 ranks: the same checkpoint, byte for byte"
fi

if [ "$fails" -eq 0 ]; then
  echo "PASS: test_train_mpi.sh"
fi
[ "$fails" -eq 0 ]
