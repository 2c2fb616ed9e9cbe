#!/bin/sh
# test_lieconv_train.sh -- regression runs of lieconv_affine.so at a reduced size
# on Fashion-MNIST (Debian's dataset-fashion-mnist; skipped without it):
#
#   - so2 with 8 rotation samples: a 90-degree rotation of the input changes
#     the logits by at most 1e-10 (relative), a reflection by far more;
#   - a tiny training run whose affine accuracy clears a threshold that the
#     same network at its initial parameters (-eval_only on init.bin) fails;
#   - -eval_only on the trained checkpoint gives the trained run's
#     accuracies, and the generated affine set written as IDX and read back
#     as an external test set (-test_images) gives about the same accuracy;
#   - 2 ranks give the parameters of 1 rank to 1e-10 after the same steps;
#   - bad options and files are refused with a message that says why.
#
# No timing is checked.

solver=${SOLVER:-../solver}
mpiexec=${MPIEXEC:-mpiexec}
data=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}

work=$(mktemp -d "${TMPDIR:-/tmp}/test_lieconv.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
fail=0
. "${srcdir:-.}/testlib.sh"
need_fashion_mnist "$data"

P="--plugin lieconv_affine -data $data"

# 1. Equivariance: so2, 8 samples on the grid 2 pi k / 8 (one epoch of a
# few minibatches, so that the parameters are not the initial ones).
# Measured: 4e-16 for the rotation, 1e-2 for a reflection.
if run so2 $P -group so2 -samples 8 -channels 3 -epochs 1 -train_size 128 -batch 32 \
     -val_size 0 -test_size 64; then
  check so2 equivariance_rot90 "<=" 1e-10
  check so2 equivariance_reflection ">=" 1e-4
fi

# 2. A tiny SL(2) run: 1,600 centred training images, 3 epochs (150 steps).
# The invariant max over 14x14 maps of LayerNorm-ed features learns slowly
# at first; the raw last convolution (-final_norm 0), a narrow kernel
# network and a higher rate learn fastest in 150 steps (chosen on the
# validation split). Measured here with the default -kernel_lr 1:
# acc_centred 0.51, acc_affine 0.34 (with -kernel_lr 0.03: 0.61, 0.44); at
# its initial parameters acc_affine is 0.09. These thresholds were set for
# the unpadded skeleton and the narrow sample draw (-same 0 -spd_var 0.1,
# the defaults before issue 9's study), which the run keeps: with the new
# defaults the same 150 steps gave 0.37 centred, 0.33 affine (untrained
# 0.082), and the padded skeleton is checked in test_lieconv.c. It also
# keeps the max pooling of those measurements (the default became sorted
# pooling in issue 9's eighth session; the equivariance and MPI runs here
# use it), and the kernels sampled at the taps' centres (-kernel_sub 1; 4,
# the cell means, became the default in the ninth session, and the
# equivariance and MPI runs use that too).
tiny="-group sl2 -channels 6 -samples 4 -epochs 3 -train_size 1600 -batch 32 -lr 5e-3 \
  -kernel_width 16 -final_norm 0 -same 0 -spd_var 0.1 -pool max -kernel_sub 1 -val_size 200 \
  -test_size 500"
if run tiny $P $tiny -write_init 1 -write_affine 1 -write_logits 4; then
  check tiny acc_affine ">=" 0.25
  check tiny acc_centred ">=" 0.38
  # the same network at its initial parameters fails the threshold
  if run untrained $P $tiny -eval_only 1 -checkpoint "$work/tiny/init.bin" \
       -samples_file "$work/tiny/samples.txt"; then
    check untrained acc_affine "<=" 0.20
  fi
  # -eval_only on the trained checkpoint (samples.txt found beside it)
  if run evalonly $P $tiny -eval_only 1 -checkpoint "$work/tiny/checkpoint.bin" \
       -test_images "$work/tiny/affine_test-images-idx3-ubyte.gz" \
       -test_labels "$work/tiny/affine_test-labels-idx1-ubyte.gz"; then
    for k in acc_centred acc_affine; do
      a=$(metric "$work/tiny/summary.json" $k)
      b=$(metric "$work/evalonly/summary.json" $k)
      if [ -n "$a" ] && [ "$a" = "$b" ]; then
        echo "ok   evalonly: $k = $b, as trained"
      else
        echo "FAIL: evalonly: $k = '$b', the trained run had '$a'"
        fail=1
      fi
    done
    # the generated set, written as bytes and read back, scores about the same
    a=$(metric "$work/evalonly/summary.json" acc_affine)
    x=$(metric "$work/evalonly/summary.json" acc_external)
    if awk -v a="$a" -v x="$x" 'BEGIN { d = a - x; exit !(x != "" && d <= 0.02 && d >= -0.02) }'; then
      echo "ok   evalonly: acc_external = $x (the generated set as IDX bytes), acc_affine = $a"
    else
      echo "FAIL: evalonly: acc_external = '$x' differs from acc_affine = '$a' by more than 0.02"
      fail=1
    fi
  fi
fi

# 3. 2 ranks against 1: the parameters after the same 12 steps.
# ckpt_values FILE NPARAMS: the parameter values of a checkpoint, one a line
ckpt_values() {
  size=$(wc -c <"$1")
  skip=$((size - 8 * $2 - 8))
  od -A n -t f8 -v -j "$skip" -N $((8 * $2)) "$1" | tr -s ' ' '\n' | sed '/^$/d'
}
flags=
[ "$(id -u)" = 0 ] && flags="--allow-run-as-root --oversubscribe"
if command -v "$mpiexec" >/dev/null 2>&1; then
  mpi="-group gl2 -channels 3 -samples 4 -epochs 2 -train_size 192 -batch 32 -val_size 0 \
    -test_size 40 -resample 1"
  ok=1
  for np in 1 2; do
    if ! OPENBLAS_NUM_THREADS=1 "$mpiexec" $flags -n $np "$solver" --quiet --out "$work/mpi$np" \
         $P $mpi >"$work/mpi$np.log" 2>&1; then
      cat "$work/mpi$np.log"
      echo "FAIL: $mpiexec -n $np solver $P $mpi"
      fail=1
      ok=0
    fi
  done
  if [ $ok = 1 ]; then
    n=$(metric "$work/mpi1/summary.json" parameters)
    ckpt_values "$work/mpi1/checkpoint.bin" "$n" >"$work/p1"
    ckpt_values "$work/mpi2/checkpoint.bin" "$n" >"$work/p2"
    if paste "$work/p1" "$work/p2" | awk -v n="$n" '
         function abs(v) { return v < 0 ? -v : v }
         { d = abs($1 - $2); if (d > m) m = d; k++ }
         END { printf "     2 ranks vs 1 rank: %d parameters, max difference %.3g\n", k, m
               exit !(k == n && k > 0 && m <= 1e-10) }'; then
      echo "ok   mpi: 2 ranks give the parameters of 1 rank to 1e-10"
    else
      echo "FAIL: mpi: 2 ranks differ from 1 rank by more than 1e-10"
      fail=1
    fi
  fi
else
  echo "FAIL: $mpiexec not found (Debian: openmpi-bin)"
  fail=1
fi

# 4. Refusals.
refuse badgroup "unknown group" $P -group se3
refuse zerosamples "option -samples = 0: must be >= 1" $P -samples 0
refuse badmodel "option -model = 'resnet': expected lie or cnn" $P -model resnet
refuse badpad "option -pad = 1: expected 0 or 2" $P -pad 1
refuse liftonly "option -lift_only 1 needs -same 1" $P -same 0 -lift_only 1
refuse badpool "option -pool = 'min': expected auto, max, mean, sorted or align" $P -pool min
refuse cnnsorted "option -pool sorted: the CNN has no sample axis" $P -model cnn -pool sorted
refuse cnnalign "option -pool align: the CNN has no sample axis to shift" $P -model cnn -pool align
refuse bigshift "option -align_shift = 4: must be 0 (all shifts) or K with 2 K + 1 <= -samples = 8" \
  $P -pool align -align_shift 4
refuse badangle "option -kernel_angle = 'polar': expected chart or circle" $P -kernel_angle polar
refuse zerosub "option -kernel_sub = 0: must be >= 1" $P -kernel_sub 0
refuse bigsub "option -kernel_sub = 9: must be at most 8" $P -kernel_sub 9
refuse nolabels "option -test_images needs -test_labels" $P \
  -test_images "$data/t10k-images-idx3-ubyte.gz"
refuse wrongsize "must be 40x40" $P -epochs 1 -train_size 64 -val_size 0 -test_size 10 \
  -channels 1 -samples 4 -test_images "$data/t10k-images-idx3-ubyte.gz" \
  -test_labels "$data/t10k-labels-idx1-ubyte.gz"
refuse noeval "option -eval_only needs -checkpoint" $P -eval_only 1
refuse nodata "option -data /nonexistent" $P -data /nonexistent
refuse toobig "-train_size 70000 + -val_size 500" $P -train_size 70000
printf '0 0 0 1 0 1\n' >"$work/few.txt"
refuse fewsamples "samples, but the model needs 2 sets of 4" $P -samples 4 -samples_file "$work/few.txt" \
  -epochs 1 -train_size 64 -val_size 0 -test_size 10 -channels 1
refuse badbatch "option -batch = 0: must be >= 1" $P -batch 0

exit $fail
