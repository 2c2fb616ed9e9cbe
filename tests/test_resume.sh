#!/bin/bash
# test_resume.sh -- interrupt and resume through the `solver` program, with
# fixture_train (stage 1 AdamW over minibatches, stage 2 deterministic).
# The fixture raises SIGINT or SIGTERM on itself in a chosen step, so every
# case is deterministic. A run interrupted and resumed must end with the
# checkpoint of the uninterrupted run, byte for byte; a resume that cannot
# be right must be refused with the file and the reason.

SOLVER=${SOLVER:-../solver}
if [ -n "$abs_builddir" ]; then
  FIXTURES="$abs_builddir/fixtures/.libs"
else
  FIXTURES="$(pwd)/fixtures/.libs"
fi
export SOLVER_PLUGIN_PATH="${SOLVER_PLUGIN_PATH:+$SOLVER_PLUGIN_PATH:}$FIXTURES"
if [ ! -f "$FIXTURES/fixture_train.so" ]; then
  echo "test_resume.sh: no fixture_train in $FIXTURES (build it with make check)" >&2
  exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/test_resume.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1

passed=0
failed=0
OUT="$WORK/stdout"
ERR="$WORK/stderr"

run() {
  local want=$1
  shift
  CASE="solver $*"
  "$SOLVER" "$@" >"$OUT" 2>"$ERR"
  STATUS=$?
  if [ "$STATUS" -ne "$want" ]; then
    fail "exit status $STATUS, expected $want"
    return 1
  fi
  return 0
}

fail() {
  echo "FAIL: $CASE: $1"
  echo "  stdout: $(head -c 2000 "$OUT")"
  echo "  stderr: $(head -c 2000 "$ERR")"
  failed=$((failed + 1))
}

bad() {
  fail "$1"
  return 1
}

ok() {
  echo "ok: $CASE"
  passed=$((passed + 1))
}

expect() {
  local file=$1
  shift
  for text in "$@"; do
    if ! grep -qF -- "$text" "$file"; then
      fail "expected '$text' in $(basename "$file")"
      return 1
    fi
  done
  return 0
}

# same A B: the two files are identical
same() {
  cmp -s "$1" "$2" || bad "$2 differs from $1"
}

# --- the uninterrupted runs --------------------------------------------

for second in lm sgd; do
  run 0 --plugin fixture_train --out "ref_$second" -second "$second" &&
    expect "ref_$second/summary.json" '"status": "completed"' '"interrupted": false' &&
    expect "ref_$second/run.json" '"plugin": "fixture_train"' '"seed": 42' \
      '"args": ["-second", "'"$second"'"]' &&
    { [ -f "ref_$second/resume/stage-1.ckpt" ] && [ -f "ref_$second/resume/stage-2.ckpt" ] ||
      bad "no stage journal"; } &&
    { [ "$(wc -l <"ref_$second/epochs.csv")" -eq 9 ] || bad "epochs.csv: not 8 epochs"; } &&
    expect "ref_$second/epochs.csv" "stage,epoch,loss,metric,lr,seconds" && ok
done

# --- interrupt, then resume ------------------------------------------------

# interrupt_case NAME SECOND STAGE STEP: interrupt, check the exit, the
# message, summary.json and the journal; resume; compare with the reference
interrupt_case() {
  local dir=$1 second=$2 stage=$3 step=$4 name=$5
  run 130 --plugin fixture_train --out "$dir" -second "$second" -interrupt_stage "$stage" \
    -interrupt_at "$step" &&
    expect "$ERR" "solver: interrupted by SIGINT at step $step of stage $name; resume with: solver --resume $dir" &&
    expect "$dir/summary.json" '"status": "interrupted"' '"interrupted": true' '"signal": "SIGINT"' \
      "\"interrupted_step\": $step" "\"interrupted_stage\": \"$name\"" &&
    { [ -f "$dir/resume/stage-$stage.state" ] || bad "no resume/stage-$stage.state"; } &&
    ok || return 1
  run 0 --resume "$dir" &&
    expect "$dir/summary.json" '"status": "completed"' '"resumed": true' &&
    same "ref_$second/checkpoint.bin" "$dir/checkpoint.bin" &&
    same "ref_$second/params.csv" "$dir/params.csv" &&
    same "ref_$second/loss_history.csv" "$dir/loss_history.csv" &&
    { diff <(cut -d, -f1-5 "ref_$second/epochs.csv") <(cut -d, -f1-5 "$dir/epochs.csv") >/dev/null ||
      bad "epochs.csv differs from the uninterrupted run's"; } &&
    { [ ! -e "$dir/resume/stage-$stage.state" ] || bad "the .state is still there"; } && ok
}

# stage 1 (AdamW over minibatches): mid-epoch, first and last step
interrupt_case int37 lm 1 37 adamw
interrupt_case int0 lm 1 0 adamw
interrupt_case int47 lm 1 47 adamw
# stage 2: Levenberg-Marquardt and SGD with momentum
interrupt_case lm3 lm 2 3 lm
interrupt_case sgd7 sgd 2 7 sgd

# SIGTERM: status 143
run 143 --plugin fixture_train --out term -interrupt_at 11 -interrupt_signal term &&
  expect "$ERR" "interrupted by SIGTERM at step 11 of stage adamw" &&
  expect term/summary.json '"signal": "SIGTERM"' && ok
run 0 --resume term && same ref_lm/checkpoint.bin term/checkpoint.bin && ok

# resuming a completed run loads every stage and changes nothing
cp ref_lm/checkpoint.bin ref_lm.bin
run 0 --resume ref_lm && expect "$OUT" "stage adamw: done before" "stage lm: done before" &&
  same ref_lm.bin ref_lm/checkpoint.bin && ok

# a fresh run into the directory of an interrupted one starts anew
run 130 --plugin fixture_train --out fresh -interrupt_at 5 && ok
run 0 --plugin fixture_train --out fresh &&
  { [ ! -e fresh/resume/stage-1.state ] || bad "the old .state was kept"; } &&
  same ref_lm/checkpoint.bin fresh/checkpoint.bin && ok

# --- refusals ----------------------------------------------------------------

run 2 --resume ref_lm --seed 3 && expect "$ERR" "--resume DIR takes the plugin, seed" && ok
run 2 --resume ref_lm -lr 1 && expect "$ERR" "give none of them (-lr)" && ok

run 1 --resume "$WORK/missing" && expect "$ERR" "cannot resume '$WORK/missing': No such file" && ok

mkdir empty
run 1 --resume empty && expect "$ERR" "cannot resume 'empty'" "empty/run.json" && ok

# run.json but no journal
mkdir nojournal
cp ref_lm/run.json nojournal/
run 1 --resume nojournal && expect "$ERR" "nothing to resume" && ok

# a corrupt state: one byte flipped in the middle
run 130 --plugin fixture_train --out flip -interrupt_at 20 && ok
f=flip/resume/stage-1.state
size=$(stat -c %s "$f")
printf '\x5a' | dd of="$f" bs=1 seek=$((size / 2)) conv=notrunc status=none
run 1 --resume flip && expect "$ERR" "resume state '$WORK/flip/resume/stage-1.state' is corrupt" && ok

# a truncated state
run 130 --plugin fixture_train --out trunc -interrupt_at 20 && ok
truncate -s 100 trunc/resume/stage-1.state
run 1 --resume trunc && expect "$ERR" "$WORK/trunc/resume/stage-1.state" "truncated" && ok

# another plugin's run.json over this journal
run 130 --plugin fixture_train --out other -interrupt_at 20 && ok
sed -i 's/"plugin": "fixture_train"/"plugin": "fixture_good"/; s/fixture_train\.so/fixture_good.so/;
        s/"args": \[.*\]/"args": ["-n", "3"]/' other/run.json
run 1 --resume other &&
  expect "$ERR" "other/resume/stage-1.state' is from plugin 'fixture_train', this is 'fixture_good'" && ok

# another network shape (an edited run.json): the layout is refused
run 130 --plugin fixture_train --out shape -interrupt_at 20 -width 4 && ok
sed -i 's/"-width", "4"/"-width", "6"/' shape/run.json
run 1 --resume shape &&
  expect "$ERR" "shape/resume/stage-1.state': block 'W' has 4 values in the state, 6 here" && ok

# a .ckpt of a completed stage is checked the same way
run 130 --plugin fixture_train --out shape2 -interrupt_at 2 -interrupt_stage 2 -width 4 && ok
sed -i 's/"-width", "4"/"-width", "5"/' shape2/run.json
run 1 --resume shape2 &&
  expect "$ERR" "shape2/resume/stage-1.ckpt': block 'W' has 4 values in the state, 5 here" && ok

# a run.json that is not JSON
mkdir badjson && echo '{"plugin": "fixture_train", "seed": 4' >badjson/run.json
run 1 --resume badjson && expect "$ERR" "badjson/run.json' is not a valid run description" && ok

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
