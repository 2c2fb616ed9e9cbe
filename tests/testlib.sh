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

# cmp_num A OP B: A is a number and A OP B (OP: <=, >= or ==)
cmp_num() {
  awk -v a="$1" -v b="$3" -v op="$2" 'BEGIN {
    if (a == "" || b == "" || a + 0 != a) exit 1
    if (op == "<=") exit !(a <= b + 0)
    if (op == ">=") exit !(a >= b + 0)
    if (op == "==") exit !(a == b + 0)
    exit 1 }'
}

# check NAME METRIC TOL: metric METRIC of run NAME is <= TOL
# check NAME METRIC OP VALUE: ... OP VALUE (OP: <=, >= or ==)
check() {
  if [ $# -ge 4 ]; then op=$3 want=$4; else op="<=" want=$3; fi
  v=$(metric "$work/$1/summary.json" "$2")
  if cmp_num "$v" "$op" "$want"; then
    echo "ok   $1: $2 = $v $op $want"
  else
    echo "FAIL: $1: $2 = '$v', expected $op $want"
    fail=1
  fi
}

# check_range NAME METRIC LO HI: metric METRIC of run NAME is in [LO, HI]
check_range() {
  v=$(metric "$work/$1/summary.json" "$2")
  if cmp_num "$v" ">=" "$3" && cmp_num "$v" "<=" "$4"; then
    echo "ok   $1: $2 = $v in [$3, $4]"
  else
    echo "FAIL: $1: $2 = '$v', expected in [$3, $4]"
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

# need_fashion_mnist DIR: exit 77 (automake's SKIP) unless DIR holds
# Fashion-MNIST (plain or gzipped IDX files)
need_fashion_mnist() {
  if [ ! -e "$1/train-images-idx3-ubyte.gz" ] && [ ! -e "$1/train-images-idx3-ubyte" ]; then
    echo "SKIP: no Fashion-MNIST in $1 (Debian: dataset-fashion-mnist)"
    exit 77
  fi
}
