#!/usr/bin/env bash
# tap-exec.sh FILE - how prove runs one test file (`prove --exec tests/tap-exec.sh`).
#
# A *.sh file is an e2e script and runs under bash; anything else is a cmocka
# unit test binary, asked to speak TAP. Every file gets the sanitizer options
# (they only matter to the ASan build, which must stop at the first report and
# check leaks), and a time limit (DM_TEST_TIMEOUT seconds, default 600) so a
# hang fails instead of stalling the run. stdout goes to prove unchanged; each
# `not ok` line and the `#` lines after it are also copied to stderr, prefixed
# with the file name, so a failure's detail shows in prove's normal output.
# The test gets no descriptor but 0, 1 and 2: prove waits for the end of
# the test's output, which never comes while a daemon the test leaves
# running (the shared dockerd) holds a copy of it.
set -uo pipefail

file=${1:?usage: tap-exec.sh FILE}

export CMOCKA_MESSAGE_OUTPUT=TAP
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

case $file in
*.sh) cmd=(bash "$file") ;;
*) cmd=("$file") ;;
esac

# fd 3 is the real stderr; the shell's own "Aborted" notice goes to /dev/null.
{
	timeout -k 10 "${DM_TEST_TIMEOUT:-600}" "${cmd[@]}" 2>&3 3>&- |
		perl -ne 'BEGIN { $| = 1; $f = shift @ARGV }
			print;
			if (/^(not ok|Bail out!)/) { $show = 1; print STDERR "[$f] $_"; next }
			if ($show && /^#/) { print STDERR "[$f] $_"; next }
			$show = 0;' "$file" 2>&3 3>&-
	rc=${PIPESTATUS[0]}
} 3>&2 2>/dev/null
if [ "$rc" -eq 124 ]; then
	echo "[$file] timed out after ${DM_TEST_TIMEOUT:-600} s" >&2
elif [ "$rc" -gt 128 ]; then
	echo "[$file] died of signal $((rc - 128))" >&2
fi
exit "$rc"
