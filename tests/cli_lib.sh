# Shared by the command-line test scripts (sourced): the pass/fail counters and the checks.
# The sourcing script sets $work (a scratch folder it removes) before calling any of these, and
# ends with `finish NAME`.
passed=0 failed=0

# expect STATUS NEEDLE -- COMMAND...: COMMAND must exit with STATUS and print exactly one line
# on stderr, containing NEEDLE; with $expect_nothing_at set, that path must not exist after it
# (it is removed first: point the command's outputs there).
expect() {
  local want=$1 needle=$2; shift 3
  [ -n "${expect_nothing_at:-}" ] && rm -rf "$expect_nothing_at"
  "$@" >"$work/out" 2>"$work/err" </dev/null
  local got=$? lines written=0
  lines=$(wc -l <"$work/err")
  [ -n "${expect_nothing_at:-}" ] && [ -e "$expect_nothing_at" ] && written=1
  if [ "$got" -eq "$want" ] && grep -qF -- "$needle" "$work/err" && [ "$lines" -eq 1 ] && [ "$written" -eq 0 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $* -> status $got (want $want), stderr ($lines lines):"; sed 's/^/    /' "$work/err"
    echo "    (expected one line containing: $needle${expect_nothing_at:+, and nothing at $expect_nothing_at})"
  fi
}

# check DESCRIPTION COMMAND...: COMMAND must succeed (its stdout is discarded).
check() {
  local what=$1; shift
  if "$@" >/dev/null; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $what"; fi
}

# Two PNGs with the same pixels, whatever their text chunks (which come before the image data).
same_pixels() {
  local a b
  a=$(grep -abo IDAT "$1" | head -1 | cut -d: -f1) && b=$(grep -abo IDAT "$2" | head -1 | cut -d: -f1) &&
    cmp -s <(tail -c +"$a" "$1") <(tail -c +"$b" "$2")
}
different_pixels() { ! same_pixels "$@"; }

# finish NAME: prints the counts; the script's status is 0 only when nothing failed.
finish() {
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
