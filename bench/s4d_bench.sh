#!/bin/sh
# bench/s4d_bench.sh -- training steps of ssm_s4.so's S4D model
# (bench/s4d_step, float64) against its PyTorch peer (bench/s4d_torch.py,
# float64 and float32), side by side; then, optionally, test accuracy after
# the same epochs on both sides.
#
# Usage, from the top of a built tree (after `make`):
#
#     bench/s4d_bench.sh                 # check, then step timing
#     TRAIN=1 bench/s4d_bench.sh         # also train: the solver, the peer in float32 and float64
#
# Environment: PYTHON (a python3 that imports torch; /usr/bin/python3 on
# Debian), THREADS (2: plans of the C side, torch.set_num_threads), H, N,
# LAYERS (64, 64, 2: the default run's model), BATCH (64), STEPS (20),
# REPEATS (5), OUT (scratch directory); for TRAIN=1: EPOCHS (3),
# TRAIN_SIZE (0: all 60,000), TEST_SIZE (0: all 10,000), LR (4e-2, the
# plugin's default; given to both sides).
#
# First both sides are shown to compute the same thing: s4d_step dumps its
# parameters, one minibatch, the loss and the gradient; the peer recomputes
# them in float64 (the script stops if the gradient differs by more than
# 1e-9 of its largest entry) and in float32 (reported against float64:
# Debian's PyTorch 1.13 has a float32 GELU backward bug for non-contiguous
# incoming gradients, pytorch/pytorch#112006, which the peer works around;
# this shows the workaround holds). Then each side is timed one right
# after the other, by the wall clock and by the CPU time of its process
# (all threads): on a shared machine the wall-clock rate is the share of
# the cores a process got, which moves with the other sessions' load from
# one minute to the next, while samples per CPU second is what it did with
# the time it ran; with THREADS=1 that is the per-core speed, the fair
# figure (bench/README.md).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
THREADS=${THREADS:-2}
H=${H:-64}
N=${N:-64}
LAYERS=${LAYERS:-2}
BATCH=${BATCH:-64}
STEPS=${STEPS:-20}
REPEATS=${REPEATS:-5}
OUT=${OUT:-$(mktemp -d /tmp/solver-s4d-bench.XXXXXX)}
mkdir -p "$OUT"
if [ -z "${PYTHON:-}" ]; then
  for p in /usr/bin/python3 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch' 2>/dev/null; then
      PYTHON=$p
      break
    fi
  done
fi
if [ -z "${PYTHON:-}" ]; then
  echo "s4d_bench.sh: no python3 with torch found (Debian: apt-get install python3-torch)" >&2
  exit 1
fi
if [ ! -x bench/s4d_step ]; then
  make -C bench s4d_step >/dev/null
fi

value() { awk -v k="$1" '$1 == k { print $2; exit }' "$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "python: $PYTHON, torch $("$PYTHON" -c 'import torch; print(torch.__version__)'), threads per side: $THREADS"
echo "scratch: $OUT"
echo "configuration: H = $H, N = $N, $LAYERS layers, L = 196, batch $BATCH, init lin, zoh, AdamW"

# 1. the same computation on both sides (a small batch: the check is of
# the arithmetic, not of the speed)
bench/s4d_step -H "$H" -N "$N" -layers "$LAYERS" -batch 8 -threads 1 -steps 1 -warmup 0 -repeats 1 \
  -dump "$OUT/s4d_dump.txt" >/dev/null
if ! "$PYTHON" bench/s4d_torch.py --check "$OUT/s4d_dump.txt" --threads 1 >"$OUT/s4d_check.txt"; then
  cat "$OUT/s4d_check.txt"
  echo "s4d_bench.sh: the peer does not compute what s4d_step computes; no timing" >&2
  exit 1
fi
cat "$OUT/s4d_check.txt"

# 2. steps, back to back
OPENBLAS_NUM_THREADS=1 bench/s4d_step -H "$H" -N "$N" -layers "$LAYERS" -batch "$BATCH" \
  -threads "$THREADS" -steps "$STEPS" -repeats "$REPEATS" >"$OUT/c.txt"
for dt in float64 float32; do
  "$PYTHON" bench/s4d_torch.py --step --dtype $dt --H "$H" --N "$N" --layers "$LAYERS" \
    --batch "$BATCH" --threads "$THREADS" --steps "$STEPS" --repeats "$REPEATS" >"$OUT/t_$dt.txt"
done
c=$(value c_samples_per_second "$OUT/c.txt")
t64=$(value torch_float64_samples_per_second "$OUT/t_float64.txt")
t32=$(value torch_float32_samples_per_second "$OUT/t_float32.txt")
cc=$(value c_cpu_samples_per_second "$OUT/c.txt")
tc64=$(value torch_float64_cpu_samples_per_second "$OUT/t_float64.txt")
tc32=$(value torch_float32_cpu_samples_per_second "$OUT/t_float32.txt")
echo "training samples/s (median of $REPEATS x $STEPS steps): C float64 $c, torch float64 $t64, torch float32 $t32"
echo "ratio C float64 / torch float64: $(ratio "$c" "$t64")  (goal > 1)"
echo "ratio C float64 / torch float32: $(ratio "$c" "$t32")  (goal >= 1)"
echo "training samples per CPU second: C float64 $cc, torch float64 $tc64, torch float32 $tc32"
echo "ratio per CPU second C float64 / torch float64: $(ratio "$cc" "$tc64"); C float64 / torch float32: $(ratio "$cc" "$tc32")"
echo "load after timing: $(cut -d' ' -f1-3 /proc/loadavg)"

# 3. optional: the same training on both sides, test accuracy per epoch
if [ "${TRAIN:-0}" = 1 ]; then
  EPOCHS=${EPOCHS:-3}
  TRAIN_SIZE=${TRAIN_SIZE:-0}
  TEST_SIZE=${TEST_SIZE:-0}
  LR=${LR:-0.04}
  # OpenBLAS single-threaded inside the plans, as s4d_step is timed above
  # (with -threads 1 the plugin leaves OpenBLAS at its default, 2 threads,
  # which on 1 core of a shared machine costs a third of the rate)
  OPENBLAS_NUM_THREADS=1 ./solver --quiet --plugin ssm_s4.so --out "$OUT/solver" -H "$H" -N "$N" -layers "$LAYERS" \
    -batch "$BATCH" -epochs "$EPOCHS" -lr "$LR" -train_size "$TRAIN_SIZE" -test_size "$TEST_SIZE" \
    -threads "$THREADS" >/dev/null
  sacc=$(sed -n 's/^ *"test_accuracy": *\([0-9.eE+-]*\),*$/\1/p' "$OUT/solver/summary.json")
  ssps=$(sed -n 's/^ *"samples_per_second": *\([0-9.eE+-]*\),*$/\1/p' "$OUT/solver/summary.json")
  scps=$(sed -n 's/^ *"samples_per_cpu_second": *\([0-9.eE+-]*\),*$/\1/p' "$OUT/solver/summary.json")
  echo "solver (float64): test accuracy $sacc; training samples/s $ssps, per CPU second $scps"
  jget() { "$PYTHON" -c 'import json, sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])[sys.argv[2]])' "$1" "$2"; }
  for dt in float32 float64; do
    "$PYTHON" bench/s4d_torch.py --dtype $dt --H "$H" --N "$N" --layers "$LAYERS" \
      --batch "$BATCH" --epochs "$EPOCHS" --lr "$LR" --train_size "$TRAIN_SIZE" --test_size "$TEST_SIZE" \
      --threads "$THREADS" >"$OUT/t_train_$dt.txt"
    cat "$OUT/t_train_$dt.txt"
    tacc=$(jget "$OUT/t_train_$dt.txt" test_accuracy)
    tsps=$(jget "$OUT/t_train_$dt.txt" samples_per_second)
    tcps=$(jget "$OUT/t_train_$dt.txt" samples_per_cpu_second)
    echo "after $EPOCHS epochs on ${TRAIN_SIZE:-all} images: test accuracy solver (float64) $sacc, torch ($dt) $tacc (ratio $(ratio "$sacc" "$tacc"))"
    echo "training samples/s solver $ssps, torch $dt $tsps: ratio $(ratio "$ssps" "$tsps"); per CPU second solver $scps, torch $dt $tcps: ratio $(ratio "$scps" "$tcps")"
  done
  echo "load after training: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
