#!/bin/bash
# test_pinn_physics.sh -- regression runs of pinn_khronon and pinn_accretion
# checked against their independent references (the closed form, the
# shooting solver, Brent on the conserved quantities), through the metrics
# the plugins write into summary.json. Tolerances are the accuracy targets
# of the issue; a healthy run is 10-1000x below them and a broken solver
# (wrong equation, wrong branch, wrong trial) lands at 1e-3 or worse.
# Also: bad parameters are refused with a message, and two MPI ranks give
# the one-rank result.
#
# $SOLVER is the program (make check sets it; default ../solver);
# $SOLVER_PLUGIN_PATH must find the plugins (make check sets it).

SOLVER=${SOLVER:-../solver}
if [ -z "$SOLVER_PLUGIN_PATH" ]; then
  export SOLVER_PLUGIN_PATH="$(cd "$(dirname "$SOLVER")" && pwd)/plugins/.libs"
fi
export OPENBLAS_NUM_THREADS=1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/test_pinn_physics.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0

fail() {
  echo "FAIL: $CASE: $*"
  failed=$((failed + 1))
}

# metric DIR NAME: a number from DIR/summary.json ("" if absent)
metric() {
  awk -v key="\"$2\"" -F': ' '
    { k = $1; gsub(/^[ \t]+/, "", k) }
    k == key { v = $2; gsub(/[ ,]/, "", v); print v; exit }' "$1/summary.json"
}

# below DIR NAME TOL: the metric exists, is a number and is <= TOL
below() {
  local v
  v=$(metric "$1" "$2")
  if ! awk -v v="$v" -v t="$3" 'BEGIN {
         if (v !~ /^[-+]?[0-9.]+([eE][-+]?[0-9]+)?$/) exit 1
         exit !(v + 0 <= t + 0) }'; then
    fail "$2 = ${v:-missing} (tolerance $3)"
    return 1
  fi
  printf '  %-28s %-24s <= %s\n' "$2" "$v" "$3"
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
  echo "$CASE: $(head -n 1 "$WORK/refused.err")"
  passed=$((passed + 1))
}

check() { # count a case that ran all its below() checks cleanly
  if [ "$1" -eq 0 ]; then passed=$((passed + 1)); fi
}

# --- khronon: c -> infinity against the closed form ------------------------
if solve k_inf pinn_khronon; then
  bad=0
  below "$WORK/k_inf" rel_l2 1e-6 || bad=1
  below "$WORK/k_inf" x_universal_horizon_error 1e-6 || bad=1
  check $bad
fi

# --- khronon: finite c against the shooting reference ----------------------
for c in 0.5 1 2 10; do
  if solve "k_$c" pinn_khronon -c "$c"; then
    bad=0
    below "$WORK/k_$c" rel_l2 1e-5 || bad=1
    below "$WORK/k_$c" x_sound_horizon_error 1e-5 || bad=1
    below "$WORK/k_$c" x_universal_horizon_error 1e-5 || bad=1
    check $bad
  fi
done

# --- accretion: the paper's case against Brent on F and B ------------------
if solve acc pinn_accretion; then
  bad=0
  below "$WORK/acc" rel_l2_rho 1e-5 || bad=1
  below "$WORK/acc" rel_l2_v 1e-5 || bad=1
  below "$WORK/acc" r_sonic_error 1e-3 || bad=1
  check $bad
fi

# a reduced run through an Adam stage with SoftAdapt weights, then LM
if solve acc_sa pinn_accretion -points 61 -adam_steps 200 -adam_lr 1e-3 -softadapt \
     -lm_steps 200; then
  bad=0
  below "$WORK/acc_sa" rel_l2_rho 1e-5 || bad=1
  below "$WORK/acc_sa" rel_l2_v 1e-5 || bad=1
  below "$WORK/acc_sa" r_sonic_error 1e-3 || bad=1
  if [ -z "$(metric "$WORK/acc_sa" softadapt_weight_flux)" ]; then
    fail "no softadapt_weight_flux metric"
    bad=1
  fi
  check $bad
fi

# --- parameters outside the method's validity -----------------------------
refuse "3M/2" pinn_accretion -r_sonic 1.5
refuse "Gamma - 1" pinn_accretion -r_sonic 2.5
refuse "inside the domain" pinn_accretion -r_sonic 200 -r_out 150
refuse "must be a number > 0" pinn_khronon -c 0
refuse "must be a number > 0" pinn_khronon -c -3
refuse "c = inf" pinn_khronon -c 1e5
refuse "stops being regular" pinn_khronon -c 10 -x_max 1.45
refuse "past the universal horizon" pinn_khronon -x_max 1.2

# --- two MPI ranks give the one-rank solution -----------------------------
MPIEXEC=${MPIEXEC:-mpiexec}
if command -v "$MPIEXEC" >/dev/null 2>&1; then
  flags=
  if [ "$(id -u)" = 0 ]; then
    flags="--allow-run-as-root --oversubscribe"
  fi
  export OMPI_MCA_rmaps_base_oversubscribe=1
  for p in "pinn_khronon -c 10" "pinn_accretion"; do
    set -- $p
    plugin=$1
    shift
    CASE="mpiexec -n 2 $p"
    echo "$CASE"
    one="$WORK/one_$plugin" two="$WORK/two_$plugin"
    if ! "$SOLVER" --quiet --plugin "$plugin" --out "$one" "$@" >/dev/null 2>"$one.err" ||
       ! "$MPIEXEC" $flags -n 2 "$SOLVER" --quiet --plugin "$plugin" --out "$two" "$@" \
         >/dev/null 2>"$two.err"; then
      fail "a run failed: $(tail -n 3 "$one.err" "$two.err" 2>/dev/null)"
      continue
    fi
    # every number of solution.csv (solution, reference, error) must agree
    d=$(awk -F, 'NR == FNR { if (FNR > 1) for (i = 1; i <= NF; i++) a[FNR, i] = $i; next }
                 FNR > 1 { for (i = 1; i <= NF; i++) { e = $i - a[FNR, i]; if (e < 0) e = -e
                           if (e > m) m = e } ; n++ }
                 END { if (n == 0) print "none"; else printf "%.3g\n", m }' \
          "$one/solution.csv" "$two/solution.csv")
    if [ "$d" = none ] || ! awk -v d="$d" 'BEGIN { exit !(d + 0 <= 1e-10) }'; then
      fail "max |2 ranks - 1 rank| over solution.csv = $d (tolerance 1e-10)"
      continue
    fi
    echo "  max |2 ranks - 1 rank| = $d <= 1e-10"
    passed=$((passed + 1))
  done
else
  echo "SKIP: no $MPIEXEC: the 2-rank comparison did not run"
fi

echo "test_pinn_physics.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
