#!/usr/bin/env bash
test_description='the Docker volume plugin with real containers (podman + runc): dots made and written by containers, pinned branches, subdots, containers named, delete refused while in use, a stopped dmd fails runs at once'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-containers.sh"

run_box() {
	pm run --rm --network none "$@"
}

test_expect_success 'dmd serves the plugin socket it is given, mode 0600' '
	start_dmd >out &&
	test -S "$DM_PLUGIN_SOCK" &&
	test "$(stat -c %a "$DM_PLUGIN_SOCK")" = 600 &&
	grep "docker volume plugin .dm. on $DM_PLUGIN_SOCK" data/dmd.log &&
	grep "Docker API at .$DM_API_SOCK" data/dmd.log
'

test_expect_success 'podman volume create --driver dm makes the dot' '
	pm volume create --driver dm shop &&
	dm list >out &&
	grep "^\* shop  *master " out
'

test_expect_success 'a container writes into the dot, under __default__ of the working copy' '
	run_box -v shop:/data localhost/busybox sh -c "echo hi >/data/x" &&
	dm mount shop wc &&
	test "$(cat wc/__default__/x)" = hi &&
	dm diff >out &&
	grep "__default__/x" out
'

test_expect_success 'the next container sees what the last one wrote' '
	run_box -v shop:/data localhost/busybox sh -c "cat /data/x; echo there >>/data/x" >out &&
	test "$(cat out)" = hi &&
	run_box -v shop:/data localhost/busybox cat /data/x >out &&
	printf "hi\nthere\n" >expect &&
	test_cmp expect out
'

test_expect_success 'podman refuses @ in a volume name; -o volume=shop@branch1 pins the branch' '
	test_must_fail pm volume create --driver dm shop@branch1 2>err &&
	grep "names must match" err &&
	dm commit -m "hi there" &&
	dm checkout -b branch1 &&
	dm checkout master &&
	pm volume create --driver dm -o volume=shop@branch1 shop-branch1 &&
	run_box -v shop-branch1:/data localhost/busybox sh -c "echo pinned >/data/y" &&
	dm mount shop@branch1 wcb &&
	test "$(cat wcb/__default__/y)" = pinned &&
	! test -e wc/__default__/y &&
	dm branch >out && grep "^\* master" out
'

test_expect_success 'a pinned branch that does not exist is a clear error' '
	test_must_fail pm volume create --driver dm -o volume=shop@nope shop-nope 2>err &&
	grep "dot .shop. has no branch .nope." err &&
	test_must_fail pm volume create --driver dm -o volume=fresh@b1 fresh-b1 2>err &&
	grep "dot .fresh. does not exist, so it has no branch .b1." err &&
	dm list >out &&
	! grep fresh out
'

test_expect_success 'three subdots written by three containers appear under __root__' '
	for s in a b c; do
		pm volume create --driver dm shop.$s &&
		run_box -v shop.$s:/data localhost/busybox sh -c "echo $s >/data/f" || return 1
	done &&
	pm volume create --driver dm shop.__root__ &&
	run_box -v shop.__root__:/data localhost/busybox sh -c "cat /data/a/f /data/b/f /data/c/f /data/__default__/x" >out &&
	printf "a\nb\nc\nhi\nthere\n" >expect &&
	test_cmp expect out &&
	dm dot show shop >out &&
	grep "^subdots: *__default__,a,b,c$" out &&
	dm dot show --json shop >out &&
	grep "\"subdots\": \[" out
'

test_expect_success 'one commit takes all subdots at once; diff paths name the subdot' '
	dm diff >out &&
	grep "a/f" out && grep "b/f" out && grep "c/f" out &&
	dm commit -m "three subdots" &&
	dm diff >out &&
	test_must_fail grep "/f" out &&
	run_box -v shop.b:/data localhost/busybox sh -c "echo B >/data/f" &&
	dm diff >out &&
	grep "b/f" out &&
	test_must_fail grep "a/f" out
'

test_expect_success 'dm list and dm dot show name a running container; delete is refused while it runs' '
	pm run -d --name web --network none -v shop:/data localhost/busybox \
		sh -c "trap \"exit 0\" TERM; sleep 1000 & wait" &&
	wait_for "dm list to name web" sh -c "dm list | grep \"^\* shop .* web \"" &&
	dm dot show shop >out &&
	grep "^containers: *web$" out &&
	test_must_fail dm dot delete -f shop 2>err &&
	grep "dot .shop. is in use by container web" err &&
	dm list >out && grep "^\* shop " out
'

test_expect_success 'a stopped container lets go of the dot' '
	pm stop -t 1 web &&
	wait_for "web to leave dm list" sh -c "! dm list | grep web" &&
	pm rm web
'

test_expect_success 'with dmd stopped, podman run fails at once with an error, not a hang' '
	stop_dmd &&
	! test -e "$DM_PLUGIN_SOCK" &&
	start=$(date +%s) &&
	{
		timeout 60 podman --root "$HOME/podman" --runroot "$DM_RUN/podman" \
			--storage-driver vfs run --rm --network none -v shop:/data \
			localhost/busybox true 2>err
		code=$?
	} &&
	end=$(date +%s) &&
	echo "podman exited with $code after $((end - start)) s" &&
	test "$code" != 0 && test "$code" != 124 &&
	test $((end - start)) -lt 15 &&
	grep "volume plugin dm .* missing" err
'

test_expect_success 'dmd started again serves the same data' '
	start_dmd &&
	run_box -v shop:/data localhost/busybox cat /data/x >out &&
	printf "hi\nthere\n" >expect &&
	test_cmp expect out
'

test_done
