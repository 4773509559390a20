#!/usr/bin/env bash
# tsan.sh: the concurrency test (8 threads deciding, 1 ingesting) in a build
# of its own with ThreadSanitizer; any report fails the test.
set -euo pipefail
src=${TAILOR_ROOT:?} build=${TAILOR_TSAN_BUILD:?}
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAILOR_TSAN=ON >/dev/null
cmake --build "$build" -j2 --target test_threads >/dev/null
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1"
TAILOR_ROOT="$src" "$build/tests/test_threads"
