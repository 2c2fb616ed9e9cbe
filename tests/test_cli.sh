#!/bin/bash
# test_cli.sh -- the `solver` program as a user drives it: --version,
# --help, --list, each broken plugin, option errors, -help, -options_file,
# --seed and --out. Each case checks the exit status and the message.
#
# $SOLVER is the program (make check sets it; default ../solver) and
# $SOLVER_PLUGIN_PATH must include the fixtures' directory (make check sets
# it too).

SOLVER=${SOLVER:-../solver}
if [ -n "$abs_builddir" ]; then
  FIXTURES="$abs_builddir/fixtures/.libs"
else
  FIXTURES="$(pwd)/fixtures/.libs"
fi
export SOLVER_PLUGIN_PATH="${SOLVER_PLUGIN_PATH:+$SOLVER_PLUGIN_PATH:}$FIXTURES"

if [ ! -f "$FIXTURES/fixture_good.so" ]; then
  echo "test_cli.sh: no fixtures in $FIXTURES (build them with make check)" >&2
  exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/test_cli.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1

passed=0
failed=0
OUT="$WORK/stdout"
ERR="$WORK/stderr"

# run WANT_STATUS ARGS...: run the solver, keep stdout/stderr in files
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

# bad MESSAGE: record a failure and make the && chain stop
bad() {
  fail "$1"
  return 1
}

ok() {
  echo "ok: $CASE"
  passed=$((passed + 1))
}

# expect FILE TEXT...: every TEXT (fixed strings) must be in FILE
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

# refuse FILE TEXT: TEXT must not be in FILE
refuse() {
  if grep -qF -- "$2" "$1"; then
    fail "did not expect '$2' in $(basename "$1")"
    return 1
  fi
  return 0
}

# --- program options -------------------------------------------------

run 0 --version && expect "$OUT" "plugin ABI 2" &&
  { grep -qE '^solver [0-9]+\.[0-9]+' "$OUT" || bad "no version number"; } && ok

run 0 --help && expect "$OUT" "--plugin NAME" "--seed N" "--out DIR" "--list" && ok

run 0 --list && expect "$OUT" "fixture_good" "a tiny plugin that sums 1..n for the tests" \
  "fixture_runfails" && refuse "$OUT" "fixture_badabi" && refuse "$OUT" "fixture_noentry" && ok

run 2 --bogus && expect "$ERR" "solver: error: unknown option --bogus" "Usage:" && ok

run 2 && expect "$ERR" "no plugin given" && ok

run 2 --plugin fixture_good --seed abc &&
  expect "$ERR" "--seed: 'abc' is not a non-negative integer" && ok

run 2 --plugin fixture_good --seed -1 &&
  expect "$ERR" "--seed: '-1' is not a non-negative integer" && ok

run 2 --plugin fixture_good --seed 99999999999 && expect "$ERR" "--seed: '99999999999' is out of range" && ok

run 2 --plugin fixture_good --seed && expect "$ERR" "option --seed needs a value" && ok

# --- the loader's refusals ---------------------------------------------

run 1 --plugin no_such_plugin &&
  expect "$ERR" "solver: error: no such plugin 'no_such_plugin' (searched: " "$FIXTURES" && ok

run 1 --plugin ./no/such/file.so && expect "$ERR" "no such plugin file './no/such/file.so'" && ok

echo "just some text" >"$WORK/text.so"
run 1 --plugin "$WORK/text.so" && expect "$ERR" "'$WORK/text.so' is not a shared object: " && ok

run 1 --plugin fixture_noentry &&
  expect "$ERR" "'$FIXTURES/fixture_noentry.so' has no entry point sv_plugin_entry" && ok

run 1 --plugin fixture_badabi &&
  expect "$ERR" "'$FIXTURES/fixture_badabi.so' was built for ABI version 999, this solver has 2" && ok

run 1 --plugin fixture_badreal &&
  expect "$ERR" "'$FIXTURES/fixture_badreal.so' was built with 4-byte reals, this solver uses 8-byte doubles" && ok

run 1 --plugin fixture_runfails --out "$WORK/fails" &&
  expect "$ERR" "solver: error: fixture_runfails: deliberate failure" &&
  { [ ! -e "$WORK/fails/summary.json" ] || bad "a failed run wrote summary.json"; } && ok

# --- running the good fixture ------------------------------------------

# 2.5 * (1 + ... + 5) = 37.5; default output directory out/<name>
run 0 --plugin fixture_good -n 5 && expect "$OUT" "plain answer = 37.5" "fixture_good: seed 42" &&
  expect "$WORK/out/fixture_good/summary.json" '"plugin": "fixture_good"' '"answer": 37.5' \
    '"seed": 42' '"n": 5' && ok

run 0 --plugin "$FIXTURES/fixture_good.so" --out "$WORK/seeded" --seed 7 --quiet &&
  expect "$OUT" "plain answer = 137.5" && refuse "$OUT" "fixture_good: seed" &&
  expect "$WORK/seeded/summary.json" '"seed": 7' && ok

run 0 --plugin fixture_good.so --out="$WORK/verbose" -verbose -n 2 &&
  expect "$OUT" "term 1: partial sum 1" "term 2: partial sum 3" "plain answer = 7.5" && ok

# options from a file, comments included; the command line adds to them
printf -- '-n 3\n-scale 4 # four\n-label fromfile\n' >"$WORK/opts.txt"
run 0 --plugin fixture_good --out "$WORK/optfile" -options_file "$WORK/opts.txt" &&
  expect "$OUT" "fromfile answer = 24" && expect "$WORK/optfile/summary.json" '"label": "fromfile"' && ok

run 2 --plugin fixture_good -options_file "$WORK/missing.txt" &&
  expect "$ERR" "cannot read options file '$WORK/missing.txt'" && ok

# --- option errors -----------------------------------------------------

run 2 --plugin fixture_good --out "$WORK/typo" -scal 3 &&
  expect "$ERR" "solver: error: unknown option -scal (did you mean -scale?)" && ok

run 2 --plugin fixture_good --out "$WORK/typo" -frobnicate 1 &&
  expect "$ERR" "unknown option -frobnicate" && ok

run 1 --plugin fixture_good --out "$WORK/badval" -n abc &&
  expect "$ERR" "option -n: 'abc' is not an integer" && ok

run 2 --plugin fixture_good --out "$WORK/stray" stray &&
  expect "$ERR" "unexpected argument 'stray'" && ok

# PETSc's own options are not unknown
run 0 --plugin fixture_good --out "$WORK/petsc" -n 1 -malloc_debug no && expect "$OUT" "answer = 2.5" && ok

# --- -help ---------------------------------------------------------------

run 0 --plugin fixture_good -help &&
  expect "$OUT" "fixture_good: a tiny plugin that sums 1..n for the tests" \
    "-n <int>" "number of terms" "-scale <real>" "2.5" "-verbose <bool>" "false" \
    "-label <string>" '"plain"' && refuse "$OUT" "answer =" && ok

# -help neither runs nor creates the output directory; --help with a
# plugin is the same listing
run 0 --plugin fixture_good --out "$WORK/helpdir" -help -n 3 && refuse "$OUT" "answer =" &&
  { [ ! -e "$WORK/helpdir" ] || bad "-help created the output directory"; } && ok

run 0 --plugin fixture_good --help && expect "$OUT" "-scale <real>" && ok

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
