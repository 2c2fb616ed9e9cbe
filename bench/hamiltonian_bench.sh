#!/bin/sh
# bench/hamiltonian_bench.sh -- outer MAML steps per second of
# hamiltonian_meta.so's machinery (bench/hamiltonian_step) against its
# PyTorch peer (bench/hamiltonian_torch.py), side by side.
#
# Usage, from the top of a built tree (after `make`):
#
#     bench/hamiltonian_bench.sh            # check, then orders 1 and 2, all six systems
#     ONLY1=1 bench/hamiltonian_bench.sh    # also the one-particle systems alone
#     DEFAULT_RUN=1 bench/hamiltonian_bench.sh   # also time `solver --plugin hamiltonian_meta.so`
#
# Environment: PYTHON (a python3 that imports torch), THREADS (1: OpenBLAS
# threads for C, torch.set_num_threads for torch), REPEATS (5), STEPS_C
# (200), STEPS_TORCH (20), OUT (scratch directory).
#
# First both sides are shown to compute the same thing: the C side dumps
# its weights and three meta-batches, the peer recomputes the first- and
# second-order meta-gradients and three Adam steps from them; the script
# stops if they differ by more than 1e-10. Then each order is timed on both
# sides one right after the other (the machine may be shared: the ratio of
# back-to-back medians is the figure).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
THREADS=${THREADS:-1}
REPEATS=${REPEATS:-5}
STEPS_C=${STEPS_C:-200}
STEPS_TORCH=${STEPS_TORCH:-20}
OUT=${OUT:-$(mktemp -d /tmp/solver-ham-bench.XXXXXX)}
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
  echo "hamiltonian_bench.sh: no python3 with torch found (Debian: apt-get install python3-torch)" >&2
  exit 1
fi
if [ ! -x bench/hamiltonian_step ]; then
  make -C bench hamiltonian_step >/dev/null
fi
export OPENBLAS_NUM_THREADS="$THREADS"

value() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.1f", a / b; else printf "-" }'; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "python: $PYTHON, torch $("$PYTHON" -c 'import torch; print(torch.__version__)'), threads per side: $THREADS"
echo "scratch: $OUT"
echo "configuration: width 64, 1 round, tanh, 10 tasks of 50 + 50 points, summed task loss, alpha 1e-3, Adam 5e-4, float64"

# 1. the same computation on both sides
bench/hamiltonian_step -order 2 -steps 1 -repeats 1 -warmup 0 -dump "$OUT/ham_dump.txt" > /dev/null
"$PYTHON" bench/hamiltonian_torch.py -check "$OUT/ham_dump.txt" > "$OUT/ham_check.txt"
cat "$OUT/ham_check.txt"
if ! awk '$1 ~ /relerr/ { if (!($2 + 0 <= 1e-10)) bad = 1; n++ } END { exit bad || n != 4 }' \
     "$OUT/ham_check.txt"; then
  echo "hamiltonian_bench.sh: the C and torch meta-gradients differ; not timing them" >&2
  exit 1
fi
echo "same weights, same meta-batches: both meta-gradients and three Adam steps agree (above)"

# 2. outer steps per second, back to back
bench_pair() { # label extra-flags
  label=$1
  shift
  for order in 1 2; do
    bench/hamiltonian_step -order $order -steps "$STEPS_C" -repeats "$REPEATS" "$@" \
      > "$OUT/c_$label$order.txt"
    "$PYTHON" bench/hamiltonian_torch.py -pool "$OUT/ham_dump.txt" -order $order \
      -steps "$STEPS_TORCH" -repeats "$REPEATS" -threads "$THREADS" "$@" > "$OUT/t_$label$order.txt"
    c=$(value c_order${order}_steps_per_second "$OUT/c_$label$order.txt")
    t=$(value torch_order${order}_steps_per_second "$OUT/t_$label$order.txt")
    cc=$(value c_order${order}_cpu_steps_per_second "$OUT/c_$label$order.txt")
    tc=$(value torch_order${order}_cpu_steps_per_second "$OUT/t_$label$order.txt")
    printf '%-12s order %d: C %7s outer steps/s (%s), torch %6s (%s), ratio C/torch %s (goal >= 5)\n' \
      "$label" $order "$c" "$(value c_order${order}_rates "$OUT/c_$label$order.txt")" "$t" \
      "$(value torch_order${order}_rates "$OUT/t_$label$order.txt")" "$(ratio "$c" "$t")"
    printf '%-12s order %d: per second of CPU time: C %s, torch %s, ratio %s\n' "$label" $order \
      "$cc" "$tc" "$(ratio "$cc" "$tc")"
  done
}
bench_pair all-six
if [ "${ONLY1:-0}" = 1 ]; then
  bench_pair one-particle -only1
fi

# 3. the plugin's default run
if [ "${DEFAULT_RUN:-0}" = 1 ]; then
  ./solver --plugin hamiltonian_meta.so --quiet --out "$OUT/default" > "$OUT/default.log" 2>&1
  awk -F': ' '/"wall_seconds"|"meta_seconds"|"pretrain_seconds"|"target_seconds"/ {
      gsub(/[ ,]/, "", $2); gsub(/[ "]/, "", $1); printf "default run %s %s\n", $1, $2 }' \
    "$OUT/default/summary.json"
fi
