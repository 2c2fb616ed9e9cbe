#!/bin/bash
# test_pinn_sweep.sh -- the PINN plugins across their documented parameter
# ranges at reduced sizes (bench/pinn_sweep.sh runs the full-size sweep):
# each case against its independent reference (the finite series of a
# terminating 2F1 and GSL's 2F1 and P_n, the khronon's shooting solver,
# Brent on the accretion flow's conserved quantities), read back from
# summary.json, and each run's own verdict on its answer (metric trusted).
#
# Also: a run that cannot decide its answer must say so (the continuation
# across x = 1 with -continuation none; a network that fits its few points
# but not the equation), parameters without a determined answer are
# refused with the reason, and the hypergeometric continuation on two MPI
# ranks matches one rank.
#
# Tolerances are about 10x what these reduced runs reach (the measured
# values are in the comments); a wrong continuation misses them by orders
# of magnitude (the issue's (-3, 1, 1) at 0.37 on (1, 2]). No timing.

SOLVER=${SOLVER:-../solver}
if [ -z "$SOLVER_PLUGIN_PATH" ]; then
  export SOLVER_PLUGIN_PATH="$(cd "$(dirname "$SOLVER")" && pwd)/plugins/.libs"
fi
export OPENBLAS_NUM_THREADS=1
MPIEXEC=${MPIEXEC:-mpiexec}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/test_pinn_sweep.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
fail() {
  echo "FAIL: $CASE: $*"
  failed=$((failed + 1))
}

# metric DIR NAME: a number from DIR/summary.json ("" if absent; the last
# one, so that a metric wins over an option of the same name)
metric() {
  sed -n "s/^ *\"$2\": *\([-+0-9.eEinfINFa]*\),*\$/\1/p" "$1/summary.json" 2>/dev/null | tail -n 1
}

# check DIR NAME OP VALUE: the metric exists, is a number and satisfies
# OP (le: <=, ge: >=, eq: ==) against VALUE
check() {
  local v
  v=$(metric "$1" "$2")
  if ! awk -v v="$v" -v t="$4" -v op="$3" 'BEGIN {
         if (v !~ /^[-+]?[0-9.]+([eE][-+]?[0-9]+)?$/) exit 1
         if (op == "le") exit !(v + 0 <= t + 0)
         if (op == "ge") exit !(v + 0 >= t + 0)
         exit !(v + 0 == t + 0) }'; then
    fail "$2 = ${v:-missing}, expected $3 $4"
    return 1
  fi
  printf '  %-30s %-24s %s %s\n' "$2" "$v" "$3" "$4"
  return 0
}

# solve NAME PLUGIN ARGS...: a run into $WORK/NAME that must succeed
solve() {
  local name=$1 plugin=$2
  shift 2
  CASE="$plugin $*"
  echo "$CASE"
  if ! "$SOLVER" --quiet --plugin "$plugin" --out "$WORK/$name" "$@" \
       >"$WORK/$name.out" 2>"$WORK/$name.err"; then
    fail "exit status $? ($(tail -n 3 "$WORK/$name.err"))"
    return 1
  fi
  return 0
}

# refuse PATTERN PLUGIN ARGS...: a run that must fail with PATTERN in stderr
refuse() {
  local pattern=$1 plugin=$2
  shift 2
  CASE="$plugin $* (must be refused)"
  if "$SOLVER" --quiet --plugin "$plugin" --out "$WORK/refused" "$@" \
     >"$WORK/refused.out" 2>"$WORK/refused.err"; then
    fail "accepted"
    return
  fi
  if ! grep -q -- "$pattern" "$WORK/refused.err"; then
    fail "message without '$pattern': $(cat "$WORK/refused.err")"
    return
  fi
  echo "$CASE: $(head -c 200 "$WORK/refused.err")"
  passed=$((passed + 1))
}

count() { if [ "$1" -eq 0 ]; then passed=$((passed + 1)); fi; }

# --- hypergeometric, terminating, across x = 1 on [0, 2] ---------------------
# name a b c tol_below tol_above (measured values in the comment)
hyp_small="-adam_steps 200 -lm_steps 700 -trust_error 1e-5"
while read -r name a b c tb ta; do
  case $name in '#'*|'') continue ;; esac
  if solve "$name" pinn_hypergeometric -a "$a" -b "$b" -c "$c" $hyp_small; then
    bad=0
    check "$WORK/$name" rel_l2_below_1 le "$tb" || bad=1
    check "$WORK/$name" rel_l2_above_1 le "$ta" || bad=1
    check "$WORK/$name" trusted eq 1 || bad=1
    count $bad
  fi
done <<'EOF'
# rho = c - a - b: 3 with a log at x = 1 (the issue's case, 0.37 on (1, 2] before)
h311   -3 1 1     1e-5 1e-5
# rho = 4, (1 - x)^4 (0.99 before)
h411   -4 1 1     1e-5 1e-5
# rho = 2 (0.91 before)
h332   -3 3 2     1e-5 1e-5
# rho = 2.5, not an integer (0.95 before)
h3105  -3 1 0.5   1e-5 1e-5
# rho = 0 and rho = -2: the second solution is singular at x = 1
h231   -2 3 1     1e-5 1e-5
h152   -1 5 2     1e-5 1e-5
EOF

# --- without the continuation the run must not trust its answer ------------
if solve h311_none pinn_hypergeometric -a -3 -b 1 -c 1 -continuation none $hyp_small; then
  bad=0
  check "$WORK/h311_none" trusted eq 0 || bad=1
  check "$WORK/h311_none" continuation_undetermined eq 1 || bad=1
  if ! grep -q "NOT TRUSTED" "$WORK/h311_none.out"; then
    fail "no NOT TRUSTED line in the summary"
    bad=1
  fi
  count $bad
fi

# --- the error estimated from the residual: against the reference, and an
# under-trained run (60 steps) that must not trust its answer -----------------
if solve h311_short pinn_hypergeometric -a -3 -b 1 -c 1 -adam_steps 200 -lm_steps 60; then
  bad=0
  est=$(metric "$WORK/h311_short" error_estimate_below_1)
  act=$(metric "$WORK/h311_short" rel_l2_below_1)
  if awk -v e="$est" -v a="$act" 'BEGIN { exit !(e + 0 > 0 && a + 0 > 0 && e / a <= 3 && a / e <= 3) }'; then
    echo "  error_estimate_below_1 $est vs rel_l2_below_1 $act (within 3x)"
  else
    fail "error_estimate_below_1 = ${est:-missing} vs rel_l2_below_1 = ${act:-missing}: not within 3x"
    bad=1
  fi
  check "$WORK/h311_short" rel_l2_below_1 ge 1e-6 || bad=1
  check "$WORK/h311_short" trusted eq 0 || bad=1
  grep -q "NOT TRUSTED: estimated relative error" "$WORK/h311_short.out" || { fail "no NOT TRUSTED line"; bad=1; }
  count $bad
fi

# --- a network that fits its few points, not the equation, must say so ------
# (measured: P_8 on 10 points, loss 4e-28, relative error 1.3, residual
# between the points 1e15 times that at them)
if solve legfew pinn_legendre -n 8 -points 10 -adam_steps 200 -lm_steps 300; then
  bad=0
  check "$WORK/legfew" trusted eq 0 || bad=1
  check "$WORK/legfew" residual_between_ratio ge 100 || bad=1
  grep -q "NOT TRUSTED: residual between" "$WORK/legfew.out" || { fail "no NOT TRUSTED line"; bad=1; }
  count $bad
fi

# --- khronon at both ends of its range --------------------------------------
# c = 0.2 (1.3e-5 before the balanced residual; measured here: see below),
# c = 100 (3.4e-6 and horizons 1e-5 off on the even grid)
while read -r name c steps tol htol; do
  case $name in '#'*|'') continue ;; esac
  if solve "$name" pinn_khronon -c "$c" -lm_steps "$steps"; then
    bad=0
    check "$WORK/$name" rel_l2 le "$tol" || bad=1
    check "$WORK/$name" x_sound_horizon_error le "$htol" || bad=1
    check "$WORK/$name" x_universal_horizon_error le "$htol" || bad=1
    check "$WORK/$name" trusted eq 1 || bad=1
    count $bad
  fi
done <<'EOF2'
k02    0.2 1500 3e-6 5e-6
k100   100 400  1e-6 5e-6
EOF2

# --- Legendre n = 12, accretion at r_sonic = 6 M and 200 M (reduced steps) ----
if solve leg12 pinn_legendre -n 12 -lm_steps 1500; then
  bad=0
  check "$WORK/leg12" rel_l2 le 2e-5 || bad=1
  check "$WORK/leg12" trusted eq 1 || bad=1
  count $bad
fi
for rc in 6 200; do
  if solve "acc$rc" pinn_accretion -r_sonic $rc -lm_steps 300; then
    bad=0
    check "$WORK/acc$rc" rel_l2_rho le 2e-5 || bad=1
    check "$WORK/acc$rc" rel_l2_v le 2e-5 || bad=1
    check "$WORK/acc$rc" r_sonic_error le 2e-3 || bad=1
    check "$WORK/acc$rc" trusted eq 1 || bad=1
    count $bad
  fi
done

# --- parameters without one answer are refused ----------------------------
refuse "continuation past the singular point x = 1 is undetermined" pinn_hypergeometric \
  -a 0.5 -b 1 -c 1 -x_max 2
refuse "expected frobenius or none" pinn_hypergeometric -continuation taylor
refuse "frobenius_window" pinn_hypergeometric -frobenius_window 1.5

# --- two ranks: the matching rows keep the one-rank order -------------------
if command -v "$MPIEXEC" >/dev/null 2>&1; then
  flags=
  [ "$(id -u)" = 0 ] && flags="--allow-run-as-root --oversubscribe"
  export OMPI_MCA_rmaps_base_oversubscribe=1
  CASE="mpiexec -n 2 pinn_hypergeometric -a -3 -b 1 -c 1"
  echo "$CASE"
  args="--plugin pinn_hypergeometric -a -3 -b 1 -c 1 $hyp_small"
  if "$MPIEXEC" $flags -n 2 "$SOLVER" --quiet --out "$WORK/h311_2" $args \
       >"$WORK/h311_2.out" 2>"$WORK/h311_2.err" && [ -f "$WORK/h311/solution.csv" ]; then
    d=$(awk -F, 'NR == FNR { if (FNR > 1) y[FNR] = $2; next }
                 FNR > 1 { e = $2 - y[FNR]; if (e < 0) e = -e; if (e > m) m = e; n++ }
                 END { if (n == 0) print "none"; else printf "%.3g\n", m }' \
        "$WORK/h311/solution.csv" "$WORK/h311_2/solution.csv")
    if [ "$d" != none ] && awk -v d="$d" 'BEGIN { exit !(d + 0 <= 1e-10) }'; then
      echo "  max |2 ranks - 1 rank| = $d <= 1e-10"
      passed=$((passed + 1))
    else
      fail "max |2 ranks - 1 rank| = $d (tolerance 1e-10)"
    fi
  else
    fail "the 2-rank run failed: $(tail -n 3 "$WORK/h311_2.err")"
  fi
else
  echo "SKIP: no $MPIEXEC: the 2-rank comparison did not run"
fi

echo "test_pinn_sweep.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
