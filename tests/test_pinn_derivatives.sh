#!/bin/sh
# test_pinn_derivatives.sh -- every PINN plugin with its trial solution's
# input derivatives in Taylor mode (-derivatives jet, the default) and by
# reverse over reverse (-derivatives reverse): the same functions, so at
# the same initial parameters (same seed) the loss, its gradient (from the
# gradient plan that Adam uses and as 2 J^T r from the Jacobian that
# Levenberg-Marquardt uses: gradient.csv, -write_gradient), and after one
# Adam step the residuals at and between the collocation points
# (residual.csv) must agree to round-off. Cases: Legendre; hypergeometric
# across x = 1 (Frobenius matching, and at x = 0 for c < 0); khronon with
# each residual form and trial; accretion (two networks, first derivatives).
#
# Also -threads 1 against -threads 2 and 3 (the points split over threads).
#
# Tolerances: max |jet - reverse| over max |reverse| per column, 1e-13
# for the loss and gradients (measured: 2e-17 .. 9e-16), 1e-12 for the
# residuals (measured up to 8e-14: the khronon's residual is a quotient
# that vanishes at x = 0). A wrong derivative rule is off by O(1).

solver=${SOLVER:-../solver}
export OPENBLAS_NUM_THREADS=1

work=$(mktemp -d "${TMPDIR:-/tmp}/test_pinn_derivatives.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
fail=0
. "${srcdir:-.}/testlib.sh"

# maxrel A B COLUMN: max |a - b| / max |b| of the named column of two CSVs
maxrel() {
  awk -F, -v col="$3" '
    FNR == 1 { c = 0; for (i = 1; i <= NF; i++) if ($i == col) c = i; if (!c) bad = 1; next }
    NR == FNR { a[FNR] = $c; next }
    { d = a[FNR] - $c; if (d < 0) d = -d; if (d > D) D = d
      v = $c < 0 ? -$c : $c; if (v > M) M = v; n++ }
    END { if (bad || n == 0) print "missing"; else printf "%.3g\n", (M > 0 ? D / M : D) }' "$1" "$2"
}

# same NAME WHAT VALUE TOL
same() {
  if below "$3" "$4"; then
    echo "ok   $1: $2 differs by $3 <= $4"
  else
    echo "FAIL: $1: $2 differs by '$3' ($modes), expected <= $4"
    fail=1
  fi
}

# compare_modes NAME RESIDUALS "FLAGS A" "FLAGS B" ARGS...: a run with each
# set of flags, then every check of A against B
compare_modes() {
  name=$1
  residuals=$2
  fa=$3
  fb=$4
  modes="$fa vs $fb"
  shift 4
  for v in a b; do
    if [ $v = a ]; then flags=$fa; else flags=$fb; fi
    if ! "$solver" --quiet --out "$work/$name.$v" "$@" $flags -adam_steps 1 \
        -second_stage none -write_gradient -eval_points 101 >"$work/$name.$v.log" 2>&1; then
      cat "$work/$name.$v.log"
      echo "FAIL: $name: solver $* $flags exited with an error"
      fail=1
      return
    fi
  done
  a=$work/$name.a b=$work/$name.b
  l1=$(metric "$a/summary.json" initial_loss) l2=$(metric "$b/summary.json" initial_loss)
  same "$name" "initial loss ($l2)" \
    "$(awk -v a="$l1" -v b="$l2" 'BEGIN { d = (a - b) / b; print d < 0 ? -d : d }')" 1e-13
  for c in loss_gradient jacobian_gradient; do
    same "$name" "$c" "$(maxrel "$a/gradient.csv" "$b/gradient.csv" $c)" 1e-13
  done
  for c in $residuals; do
    same "$name" "residual $c" "$(maxrel "$a/residual.csv" "$b/residual.csv" $c)" 1e-12
  done
}

# compare NAME RESIDUALS ARGS...: Taylor mode against reverse over reverse
compare() {
  name=$1
  residuals=$2
  shift 2
  compare_modes "$name" "$residuals" "-derivatives jet" "-derivatives reverse" "$@"
}

compare legendre ode --plugin pinn_legendre -n 3
compare legendre8 ode --plugin pinn_legendre -n 8 -points 96
compare hyperg ode --plugin pinn_hypergeometric
compare hyperg_c_negative ode --plugin pinn_hypergeometric -a -3 -b 1 -c -0.5 -x_max 2
compare khronon_inf khronon --plugin pinn_khronon
compare khronon_0.5 khronon --plugin pinn_khronon -c 0.5
compare khronon_10_raw khronon --plugin pinn_khronon -c 10 -trial exp -residual raw
compare accretion "flux bernoulli" --plugin pinn_accretion

# the collocation points split over 3 threads (sv_lsq_set_threads): the same
# loss, gradient (Adam's and 2 J^T r from the Jacobian rows) and residuals
compare_modes legendre_threads ode "-threads 1" "-threads 3" --plugin pinn_legendre -n 3
compare_modes khronon_threads khronon "-threads 1" "-threads 2" --plugin pinn_khronon -c 0.5

# a bad value is refused with the option's name
if "$solver" --quiet --out "$work/bad" --plugin pinn_legendre -derivatives forward \
    >"$work/bad.log" 2>&1; then
  echo "FAIL: -derivatives forward was accepted"
  fail=1
elif grep -q "option -derivatives 'forward': expected jet or reverse" "$work/bad.log"; then
  echo "ok   -derivatives forward refused: $(grep -m1 derivatives "$work/bad.log")"
else
  cat "$work/bad.log"
  echo "FAIL: -derivatives forward: the message does not name the option"
  fail=1
fi

if [ $fail != 0 ]; then
  echo "FAIL"
  exit 1
fi
echo "PASS"
