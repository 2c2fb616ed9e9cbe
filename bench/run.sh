#!/bin/sh
# bench/run.sh -- the C benchmarks and their PyTorch peers, side by side.
#
# Usage, from the top of a built tree (after `make`):
#
#     bench/run.sh            # all benchmarks
#     bench/run.sh step       # one training step of a 4x32 tanh MLP
#     bench/run.sh legendre   # the Legendre PINN: Adam rate, time to accuracy
#     bench/run.sh ops        # single ops forward + backward (causal FFT
#                             # convolution, softmax cross-entropy, conv2d)
#     bench/run.sh plain      # the plugin as a user runs it against a plainly
#                             # written peer, one after the other and at once
#
# Environment:
#     PYTHON   a python3 that imports torch (default: the first of python3,
#              /usr/bin/python3 that does)
#     SOLVER   the solver program (default ./solver)
#     THREADS  threads for each side (default 2: OpenBLAS and torch; the C
#              step and Legendre runs also split their points over THREADS
#              threads, -threads, with single-threaded BLAS in each)
#     C_OPTS   options of the C Legendre runs only (default "-threads
#              $THREADS"; C_OPTS= runs the plugin exactly as its defaults)
#     OUT      scratch directory (default a new one under /tmp)
#     OPS_CASES    cases of `ops` (default: all of `bench/ops_bench -list`)
#     OPS_THREADS  thread counts of `ops`, each for both sides (default "2 1")
#
# Both sides run in float64 on the same machine, one after the other. See
# bench/README.md for what is measured and the figures.
set -eu

what=${1:-all}
case $what in
  all|step|legendre|ops|plain) ;;
  *) echo "usage: bench/run.sh [all|step|legendre|ops|plain]" >&2; exit 2 ;;
esac

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
THREADS=${THREADS:-2}
SOLVER=${SOLVER:-./solver}
OUT=${OUT:-$(mktemp -d /tmp/solver-bench.XXXXXX)}
mkdir -p "$OUT"

if [ -z "${PYTHON:-}" ]; then
  for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch' 2>/dev/null; then
      PYTHON=$p
      break
    fi
  done
fi
if [ -z "${PYTHON:-}" ]; then
  echo "bench/run.sh: no python3 with torch found (Debian: apt-get install python3-torch)" >&2
  exit 1
fi

export OPENBLAS_NUM_THREADS="$THREADS"

# value KEY FILE: the rest of the line "KEY value..." in FILE
value() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "$2"; }
# ratio A B: A / B with 2 decimals, or "-" when either is not a number
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "python: $PYTHON, torch $("$PYTHON" -c 'import torch; print(torch.__version__)'), threads per side: $THREADS"
echo "scratch: $OUT"

# ----------------------------------------------------------------------
# 1. One training step: forward, u'', loss, weight gradient.
# ----------------------------------------------------------------------
step_bench() {
  if [ ! -x bench/mlp_step ]; then
    make -C bench mlp_step >/dev/null
  fi
  echo
  echo "== step: 4x32 tanh MLP, 128 points, forward + u'' + loss + weight gradient =="
  bench/mlp_step -dump "$OUT/mlp_dump.txt" > "$OUT/step_c.txt"
  "$PYTHON" bench/mlp_step_torch.py -check "$OUT/mlp_dump.txt" > "$OUT/step_check.txt" || {
    cat "$OUT/step_check.txt"
    echo "bench/run.sh: the C and torch steps disagree; not timing them" >&2
    exit 1
  }
  "$PYTHON" bench/mlp_step_torch.py -threads "$THREADS" > "$OUT/step_torch.txt"
  # the C step split the way a PINN run with -threads splits it: the 128
  # points over THREADS threads (sv_lsq_set_threads), single-threaded BLAS
  # in each; checked against the plain plan inside mlp_step
  bench/mlp_step -threads "$THREADS" > "$OUT/step_c_split.txt" || {
    cat "$OUT/step_c_split.txt"
    exit 1
  }
  c=$(value c_steps_per_second "$OUT/step_c.txt")
  cs=$(value c_steps_per_second "$OUT/step_c_split.txt")
  t=$(value torch_steps_per_second "$OUT/step_torch.txt")
  echo "same weights, same loss and gradient: loss rel. diff $(value check_loss_relerr "$OUT/step_check.txt"), gradient $(value check_grad_maxerr_over_maxgrad "$OUT/step_check.txt")"
  echo "C split: same loss and gradient as the plan: $(value c_check_threads_loss_reldiff "$OUT/step_c_split.txt"), $(value c_check_threads_grad_reldiff "$OUT/step_c_split.txt")"
  echo "C     steps/s, one plan, OpenBLAS $THREADS threads: $c   (repeats: $(value c_rates "$OUT/step_c.txt"))"
  echo "C     steps/s, points over $(value c_threads "$OUT/step_c_split.txt") threads: $cs   (repeats: $(value c_rates "$OUT/step_c_split.txt"))"
  echo "torch steps/s: $t   (repeats: $(value torch_rates "$OUT/step_torch.txt"))"
  echo "ratio C/torch, one plan: $(ratio "$c" "$t")"
  echo "ratio C/torch, points over threads: $(ratio "$cs" "$t")   (goal >= 5)"
}

# ----------------------------------------------------------------------
# 2. The Legendre PINN (n = 3): Adam steps per second, time to accuracy.
# ----------------------------------------------------------------------
# Options of the C run that the torch peer takes too (the network, the
# points, Adam), as "-name value" from its summary.json.
peer_opts() {
  "$PYTHON" - "$1" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))["options"]
keys = ["n", "width", "depth", "activation", "points", "grid", "resample_every", "adam_lr",
        "adam_restart", "adam_restart_mult", "adam_lr_min", "adam_beta1", "adam_beta2"]
print(" ".join("-%s %s" % (k, o[k]) for k in keys))
PY
}
# metric KEY DIR: a metric, a top-level key or "options.KEY" of DIR/summary.json
metric() {
  "$PYTHON" -c 'import json, sys
s = json.load(open(sys.argv[2] + "/summary.json"))
k = sys.argv[1]
v = s["options"][k[8:]] if k.startswith("options.") else s["metrics"].get(k, s.get(k, "-"))
print(v)' "$1" "$2"
}
# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# c_time DIR OPTS...: median training time of 3 runs (the first is DIR's)
c_time() {
  d=$1; shift
  t1=$(metric train_seconds "$d")
  # shellcheck disable=SC2086
  $S --out "$d.r2" $LEGENDRE_OPTS "$@" > /dev/null 2>&1
  # shellcheck disable=SC2086
  $S --out "$d.r3" $LEGENDRE_OPTS "$@" > /dev/null 2>&1
  median "$t1" "$(metric train_seconds "$d.r2")" "$(metric train_seconds "$d.r3")"
}

# Options for both sides, e.g. LEGENDRE_OPTS="-width 32 -depth 4 -points 128".
LEGENDRE_OPTS=${LEGENDRE_OPTS:-}
RATE_STEPS=${RATE_STEPS:-5000}
TORCH_SECONDS=${TORCH_SECONDS:-30}

legendre_bench() {
  # C_OPTS: options of the C runs only (default: the points over THREADS
  # threads, as torch uses THREADS threads; C_OPTS= runs the plugin as is)
  S="$SOLVER --plugin pinn_legendre.so --quiet ${C_OPTS-"-threads $THREADS"}"
  echo
  echo "== legendre: pinn_legendre.so defaults vs the PyTorch peer =="
  echo "C runs: $S"
  # shellcheck disable=SC2086
  $S --out "$OUT/leg_default" $LEGENDRE_OPTS > "$OUT/leg_default.log"
  popts=$(peer_opts "$OUT/leg_default/summary.json")
  adam_def=$(metric options.adam_steps "$OUT/leg_default")
  second=$(metric options.second_stage "$OUT/leg_default")
  second_def=$(metric "options.${second}_steps" "$OUT/leg_default" 2>/dev/null || echo 0)
  echo "shared options: $popts"
  # the C run's final weights, evaluated by the peer: same problem, same points?
  # shellcheck disable=SC2086
  "$PYTHON" bench/legendre_torch.py $popts -check_checkpoint "$OUT/leg_default/checkpoint.bin" \
    > "$OUT/leg_check.txt"
  cl=$(metric final_loss "$OUT/leg_default") ce=$(metric rel_l2 "$OUT/leg_default")
  tl=$(value check_loss "$OUT/leg_check.txt") te=$(value check_rel_l2 "$OUT/leg_check.txt")
  # the error is compared absolutely: both sides round y and P_n (size 1)
  # differently by ~1e-16, which is 2e-8 of an error of 4e-9
  if awk -v a="$cl" -v b="$tl" -v c="$ce" -v d="$te" 'BEGIN {
       dl = (a - b) / a; de = c - d; if (dl < 0) dl = -dl; if (de < 0) de = -de
       printf "C weights in torch: loss %.3e (C %.3e), rel L2 %.3e (C %.3e), difference %.1e\n", b, a, d, c, de
       exit !(dl < 1e-6 && de < 1e-12) }'; then :; else
    echo "bench/run.sh: the peer does not reproduce the C run's loss and error; not comparing" >&2
    exit 1
  fi
  printf 'C default run: Adam %s steps + %s %s steps, rel L2 %.3e, train %.3f s, wall %.3f s\n' \
    "$adam_def" "$second" "$second_def" "$(metric rel_l2 "$OUT/leg_default")" \
    "$(metric train_seconds "$OUT/leg_default")" "$(metric wall_seconds "$OUT/leg_default")"

  # -- Adam steps per second, Adam alone, same network, points, settings --
  # shellcheck disable=SC2086
  $S --out "$OUT/leg_rate" $LEGENDRE_OPTS -adam_steps "$RATE_STEPS" -second_stage none \
    > "$OUT/leg_rate.log"
  c_rate=$(awk -v s="$RATE_STEPS" -v t="$(metric adam_seconds "$OUT/leg_rate")" \
    'BEGIN { printf "%.1f", s / t }')
  # shellcheck disable=SC2086
  "$PYTHON" bench/legendre_torch.py $popts -adam_steps "$RATE_STEPS" -eval_every "$RATE_STEPS" \
    -threads "$THREADS" > "$OUT/leg_rate_torch.txt"
  t_rate=$(value torch_adam_steps_per_second "$OUT/leg_rate_torch.txt")
  echo
  echo "Adam steps/s ($RATE_STEPS steps): C $c_rate, torch $t_rate, ratio C/torch $(ratio "$c_rate" "$t_rate")"

  # -- time to accuracy, C: the default pipeline stopped at growing budgets.
  # Runs with the same seed follow the same trajectory, so the training time
  # of the smallest budget that reaches a target is the time to reach it. --
  c4=never c6=never c4_at="" c6_at=""
  for b in a50 a100 a200 a300 a400 a500 a700 a1000 \
           s1 s2 s3 s4 s5 s7 s10 s15 s20 s30 s40 s50 s70 s100 s150 s200 s300 s400; do
    k=${b#?}
    case $b in
      a*) [ "$k" -lt "$adam_def" ] || continue
          set -- -adam_steps "$k" -second_stage none ;;
      s*) [ "$second" != none ] || continue
          set -- -"${second}_steps" "$k" ;;
    esac
    d="$OUT/leg_budget_$b"
    # shellcheck disable=SC2086
    $S --out "$d" $LEGENDRE_OPTS "$@" > "$d.log" 2>&1 || { echo "C run $b failed: see $d.log"; continue; }
    e=$(metric rel_l2 "$d")
    t=$(metric train_seconds "$d")
    printf '  C budget %-6s rel L2 %-10.3e train %.4f s\n' "$b" "$e" "$t"
    # the first budget that reaches a target: the median of 3 runs
    if [ "$c4" = never ] && awk -v e="$e" 'BEGIN { exit !(e <= 1e-4) }'; then
      c4=$(c_time "$d" "$@")
      c4_at=$b
    fi
    if [ "$c6" = never ] && awk -v e="$e" 'BEGIN { exit !(e <= 1e-6) }'; then
      c6=$(c_time "$d" "$@")
      c6_at=$b
      break
    fi
  done

  # -- time to accuracy, torch: the same Adam stage, then torch's L-BFGS
  # (PyTorch has no Levenberg-Marquardt), the error logged every 10 steps,
  # until TORCH_SECONDS of training. --
  # shellcheck disable=SC2086
  "$PYTHON" bench/legendre_torch.py $popts -adam_steps "$adam_def" -lbfgs_steps 100000 \
    -max_seconds "$TORCH_SECONDS" -eval_every 10 -threads "$THREADS" \
    -csv "$OUT/leg_torch_history.csv" > "$OUT/leg_torch.txt"
  t4=$(value torch_time_to_1e-04 "$OUT/leg_torch.txt")
  t6=$(value torch_time_to_1e-06 "$OUT/leg_torch.txt")
  echo "torch: Adam $adam_def + L-BFGS for ${TORCH_SECONDS} s: final rel L2 $(value torch_final_rel_l2 "$OUT/leg_torch.txt")"
  # and Adam alone for the same time (the paper's recipe)
  # shellcheck disable=SC2086
  "$PYTHON" bench/legendre_torch.py $popts -adam_steps 100000000 -max_seconds "$TORCH_SECONDS" \
    -eval_every 10 -threads "$THREADS" -csv "$OUT/leg_torch_adam_history.csv" \
    > "$OUT/leg_torch_adam.txt"
  a4=$(value torch_time_to_1e-04 "$OUT/leg_torch_adam.txt")
  a6=$(value torch_time_to_1e-06 "$OUT/leg_torch_adam.txt")
  echo "torch: Adam alone for ${TORCH_SECONDS} s: $(value torch_adam_steps "$OUT/leg_torch_adam.txt") steps, final rel L2 $(value torch_final_rel_l2 "$OUT/leg_torch_adam.txt")"
  echo
  for tgt in 1e-4 1e-6; do
    if [ $tgt = 1e-4 ]; then c=$c4 at=$c4_at tl=$t4 ta=$a4; else c=$c6 at=$c6_at tl=$t6 ta=$a6; fi
    echo "time to rel L2 <= $tgt (training seconds):"
    echo "  C (Adam + ${second})   ${c}${at:+ (budget $at)}"
    echo "  torch Adam + L-BFGS   $tl   ratio torch/C: $(ratio "${tl%% *}" "$c")"
    echo "  torch Adam alone      $ta   ratio torch/C: $(ratio "${ta%% *}" "$c")"
  done
}

# ----------------------------------------------------------------------
# 3. Single ops, forward + backward: bench/ops_bench.c against
#    bench/ops_torch.py, per case and thread count.
# ----------------------------------------------------------------------
OPS_THREADS=${OPS_THREADS:-"2 1"}

ops_bench() {
  if [ ! -x bench/ops_bench ]; then
    make -C bench ops_bench >/dev/null
  fi
  cases=${OPS_CASES:-$(bench/ops_bench -list)}
  echo
  echo "== ops: forward + backward of single ops, C plan vs PyTorch (steps/s, median of repeats) =="
  table=""
  for c in $cases; do
    d="$OUT/ops_$c"
    mkdir -p "$d"
    # same inputs on both sides: the C side writes them with its results
    bench/ops_bench -case "$c" -dump "$d" > "$d/c_dump.txt" || {
      echo "bench/run.sh: ops_bench -case $c failed" >&2
      exit 1
    }
    "$PYTHON" bench/ops_torch.py -case "$c" -check "$d" > "$d/check.txt" || {
      cat "$d/check.txt"
      echo "bench/run.sh: $c: the C and torch results differ; not timing them" >&2
      exit 1
    }
    echo "$c: same inputs, same results: $(grep '^check_' "$d/check.txt" | sed 's/^check_//' | tr '\n' ' ')(max |C - torch| / max |torch|)"
    for t in $OPS_THREADS; do
      OPENBLAS_NUM_THREADS=$t bench/ops_bench -case "$c" > "$d/c_$t.txt"
      "$PYTHON" bench/ops_torch.py -case "$c" -threads "$t" > "$d/torch_$t.txt"
      cr=$(value c_steps_per_second "$d/c_$t.txt")
      tr=$(value torch_steps_per_second "$d/torch_$t.txt")
      echo "  $t thread(s): C $cr (repeats: $(value c_rates "$d/c_$t.txt")), torch $tr (repeats: $(value torch_rates "$d/torch_$t.txt")), ratio C/torch $(ratio "$cr" "$tr")"
      table="$table$c $t $cr $tr $(ratio "$cr" "$tr")\n"
    done
  done
  echo
  { echo "case threads C_steps/s torch_steps/s C/torch(goal>=1)"; printf '%b' "$table"; } |
    awk '{ printf "%-12s %-8s %-12s %-14s %s\n", $1, $2, $3, $4, $5 }'
  echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# -- `solver --plugin pinn_legendre.so -grid even -second_stage none`, as a
# user would time it, against bench/legendre_torch_plain.py (a tanh
# nn.Sequential, autograd.grad twice, torch.optim.Adam): Adam steps per
# second of each side's own training loop, the two run one after the other
# and then both at once (each with THREADS threads on the same cores). --
PLAIN_STEPS=${PLAIN_STEPS:-5000}
# plain_c TAG OPTIONS...: the plugin's Adam stage alone into $OUT/plain_TAG
plain_c() {
  tag=$1
  shift
  $SOLVER --plugin pinn_legendre.so --quiet --out "$OUT/plain_$tag" -grid even -second_stage none \
    -adam_steps "$PLAIN_STEPS" "$@" > "$OUT/plain_$tag.log"
}
plain_bench() {
  echo
  echo "== plain: the plugin as a user runs it, against a plainly written PyTorch peer =="
  for cfg in "defaults (3x16, 96 points)|" "4x32, 128 points|-width 32 -depth 4 -points 128"; do
    name=${cfg%%|*} opts=${cfg#*|}
    # shellcheck disable=SC2086
    set -- $opts
    plain_c seq "$@"
    # shellcheck disable=SC2086
    "$PYTHON" bench/legendre_torch_plain.py $opts -steps "$PLAIN_STEPS" -threads "$THREADS" \
      > "$OUT/plain_seq.txt"
    # at once: the peer in the background; the plugin run again and again
    # while the peer's loop runs (after 3 s for its imports), the median of
    # the runs that ended before the peer did
    # shellcheck disable=SC2086
    "$PYTHON" bench/legendre_torch_plain.py $opts -steps "$PLAIN_STEPS" -threads "$THREADS" \
      > "$OUT/plain_par.txt" &
    tpid=$!
    sleep 3
    rates=
    while kill -0 "$tpid" 2>/dev/null; do
      plain_c par "$@"
      kill -0 "$tpid" 2>/dev/null || break
      rates="$rates $(awk -v s="$PLAIN_STEPS" -v t="$(metric adam_seconds "$OUT/plain_par")" \
        'BEGIN { printf "%.1f", s / t }')"
    done
    wait "$tpid"
    for mode in seq par; do
      if [ $mode = seq ]; then
        c=$(awk -v s="$PLAIN_STEPS" -v t="$(metric adam_seconds "$OUT/plain_seq")" \
          'BEGIN { printf "%.1f", s / t }')
      else
        # shellcheck disable=SC2086
        c=$( [ -n "$rates" ] && median $rates || echo -)
      fi
      t=$(value plain_adam_steps_per_second "$OUT/plain_$mode.txt")
      case $mode in seq) how="one after the other" ;; par) how="both at once" ;; esac
      echo "$name, $how: C $c, plain torch $t Adam steps/s, ratio $(ratio "$c" "$t")"
    done
  done
  echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
}

case $what in
  plain) plain_bench ;;
  step) step_bench ;;
  legendre) legendre_bench ;;
  ops) ops_bench ;;
  all) step_bench; legendre_bench; ops_bench ;;
esac
