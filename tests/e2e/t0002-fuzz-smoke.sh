#!/usr/bin/env bash
test_description='fuzz smoke: every fuzz target replays its seed corpus and survives a few seconds of mutations'
. "$(dirname "$0")/test-lib.sh"

# Each target of tests/fuzz/ is built with tests/fuzz/driver.c in every
# build but `make fuzz`'s; this runs them from the sanitizer build when
# there is one (DM_ASAN_BUILD_DIR, set by tests/run.sh), else from the
# normal build. DM_FUZZ_SMOKE_SECONDS (default 3) is each target's time of
# mutations after its seeds. A target that dies shows the input it died on
# (the driver prints it, escaped) and leaves it in the trash directory as
# crash-fuzz_NAME; the run's seed (-s) is in the output, to repeat it.

seconds=${DM_FUZZ_SMOKE_SECONDS:-3}
fuzz_dir=
for dir in "${DM_ASAN_BUILD_DIR:-}" "$DM_BUILD_DIR"; do
	case $dir in
	'') continue ;;
	/*) ;;
	*) dir=$DM_SOURCE_DIR/$dir ;;
	esac
	if [ -x "$dir/tests/fuzz/fuzz_names" ]; then
		fuzz_dir=$dir/tests/fuzz
		break
	fi
done
if [ -z "$fuzz_dir" ]; then
	test_skip_all 'no fuzz targets built (make build)'
fi
corpus=$DM_SOURCE_DIR/tests/fuzz/corpus

# The targets: one per tests/fuzz/fuzz_*.c, each with a seed corpus.
targets=$(cd "$DM_SOURCE_DIR/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//')

test_expect_success 'every fuzz target has a seed corpus and is built' '
	for t in $targets; do
		ls "$corpus/$t"/* >/dev/null &&
		test -x "$fuzz_dir/$t" || return 1
	done
'

# A sanitizer's report ends in abort(), whose signal the driver catches to
# show the input (UBSan has a runtime of its own, which would just exit).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}:abort_on_error=1

for t in $targets; do
	test_expect_success "$t survives its seeds and ${seconds} s of mutations" "
		\"$fuzz_dir/$t\" -t $seconds \"$corpus/$t\"
	"
done

test_expect_success 'a target that dies fails the run and shows the input it died on' '
	printf "HEAD~x" >bad &&
	test_status 134 "$fuzz_dir/fuzz_names" -x -t 0 bad &&
	grep "died on an input of 6 bytes, saved to crash-fuzz_names" err &&
	grep "^\"HEAD~x\"\$" err &&
	test_cmp bad crash-fuzz_names
'

test_done
