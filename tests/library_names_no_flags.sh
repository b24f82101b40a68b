#!/usr/bin/env bash
# The library throws domain errors: a bad argument is an InvalidArgument (lib/common/error.h)
# carrying the library's own name for it, and only the command-line layer (lib/cli/, apps/)
# names flags and picks the usage exit code. Fails when a file under lib/ outside lib/cli/
#   1. uses throw_usage (declared in lib/cli/usage.h) or ExitCode::usage (outside lib/common/,
#      where InvalidArgument's default lives),
#   2. holds a string literal that starts with a flag ("--" and a letter), outside comments,
#      unless the line is allowed below, or
#   3. throws InvalidArgument("name", ...) with a name that has no row in
#      lib/cli/argument_flags.cpp (the user would see "name:" instead of the flag).
# Usage: library_names_no_flags.sh [SOURCE_ROOT]  (default: this checkout)
set -u
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2

# Allowed flag literals: "FILE<TAB>TEXT" allows a hit in FILE on a line containing TEXT.
allowed=(
  # Not an error: the reported origin of the thread count (cpu_thread_status().source).
  $'lib/runtime/threads.cpp\ts.status.source = "--threads";'
  # Exit 4, not a usage error: a run directory already holding a run; the way on is one of
  # maskgit-train's two flags, named mid-sentence (tests/cli_errors.sh checks the wording).
  $'lib/training/run_guard.h\t"--overwrite to start over"'
  $'lib/training/run_guard.h\t"--overwrite to train a new one in its place"'
  # Exit 4, not a usage error: lib/convert/ is maskgit-convert's whole operation (ConvertRequest
  # mirrors that tool's flags); its errors about the destination name "--output PATH", as the
  # other tools' output errors (prepare_output_file) do.
  $'lib/convert/convert_model.cpp\t"--output'
)

failed=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
library_files() { find lib -path lib/cli -prune -o -type f \( -name '*.cpp' -o -name '*.h' \) -print | sort; }

# 1. throw_usage and ExitCode::usage.
while IFS= read -r hit; do
  fail "$hit: throw_usage names a flag; throw InvalidArgument (common/error.h) instead"
done < <(library_files | xargs grep -nw 'throw_usage' /dev/null)
while IFS= read -r hit; do
  case $hit in lib/common/*) continue ;; esac
  fail "$hit: the usage exit code is the command-line layer's; throw InvalidArgument instead"
done < <(library_files | xargs grep -n 'ExitCode::usage' /dev/null)

# 2. String literals starting with a flag. Whole-line comments and trailing " // " comments are
# not code.
while IFS= read -r hit; do
  file=${hit%%:*}
  rest=${hit#*:}
  text=${rest#*:}
  code=$(printf '%s\n' "$text" | sed -e 's|^[[:space:]]*//.*||' -e 's|[[:space:]]//[[:space:]].*||')
  printf '%s\n' "$code" | grep -q '"--[A-Za-z]' || continue
  ok=0
  for entry in "${allowed[@]}"; do
    [ "$file" = "${entry%%$'\t'*}" ] && [[ $text == *"${entry#*$'\t'}"* ]] && ok=1 && break
  done
  [ "$ok" -eq 1 ] || fail "$hit: a flag named in the library; throw InvalidArgument with the library's name for it"
done < <(library_files | xargs grep -n '"--[A-Za-z]' /dev/null)

# 3. Every argument name thrown has a row in the CLI's table.
while IFS= read -r name; do
  grep -q "{\"$name\"," lib/cli/argument_flags.cpp ||
    fail "InvalidArgument(\"$name\") has no row in lib/cli/argument_flags.cpp"
done < <(library_files | xargs grep -ohE 'InvalidArgument\([[:space:]]*"[A-Za-z_]+"' /dev/null |
           sed -E 's/.*"([A-Za-z_]+)"/\1/' | sort -u)

if [ "$failed" -ne 0 ]; then
  echo "library_names_no_flags: $failed problem(s)"
  exit 1
fi
echo "library_names_no_flags: lib/ outside lib/cli/ names no flags"
