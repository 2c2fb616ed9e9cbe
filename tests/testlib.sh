# testlib.sh -- helpers shared by the shell tests that run the solver and
# read its summary.json. Source it after setting:
#
#   solver   the solver program (tests take it from $SOLVER)
#   work     a scratch directory (each run writes $work/NAME and NAME.log)
#
# and `fail=0`; a helper that finds a failure prints a FAIL line and sets
# fail=1, so a test runs every check and exits with "exit $fail".

# metric FILE NAME: the value of "NAME": in summary.json FILE (empty if absent)
metric() {
  sed -n "s/^ *\"$2\": *\([-+0-9.eEinfINFa]*\),*\$/\1/p" "$1" | head -n 1
}

# below VALUE TOL: VALUE is a finite number <= TOL
below() {
  awk -v v="$1" -v t="$2" 'BEGIN { exit !(v != "" && v + 0 == v && v <= t + 0) }'
}

# lt A B: A and B are numbers and A < B
lt() {
  awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && a + 0 == a && b + 0 == b && a < b) }'
}

# run NAME ARGS...: run the solver into $work/NAME, quietly; on an error
# exit print its log and FAIL
run() {
  name=$1
  shift
  if ! "$solver" --quiet --out "$work/$name" "$@" >"$work/$name.log" 2>&1; then
    cat "$work/$name.log"
    echo "FAIL: $name: solver $* exited with an error"
    fail=1
    return 1
  fi
  return 0
}

# check NAME METRIC TOL: metric METRIC of run NAME is <= TOL
check() {
  v=$(metric "$work/$1/summary.json" "$2")
  if below "$v" "$3"; then
    echo "ok   $1: $2 = $v <= $3"
  else
    echo "FAIL: $1: $2 = '$v', expected <= $3"
    fail=1
  fi
}

# refuse NAME PATTERN ARGS...: the run must fail, and its message say PATTERN
refuse() {
  name=$1
  pattern=$2
  shift 2
  if "$solver" --quiet --out "$work/$name" "$@" >"$work/$name.log" 2>&1; then
    echo "FAIL: $name: solver $* succeeded; it must refuse these options"
    fail=1
  elif ! grep -q -- "$pattern" "$work/$name.log"; then
    cat "$work/$name.log"
    echo "FAIL: $name: the message does not say '$pattern'"
    fail=1
  else
    echo "ok   $name refused: $(grep -- "$pattern" "$work/$name.log" | head -n 1)"
  fi
}
