#!/usr/bin/env bash
test_description='running containers follow dm reset --hard and dm checkout (stopped, data swapped, started again); containers on other dots and pinned branches are left alone'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-containers.sh"

run_box() {
	pm run --rm --network none "$@"
}

# run_long NAME VOLUME: a container that runs until stopped (and stops at once).
run_long() {
	pm run -d --name "$1" --network none -v "$2:/data" localhost/busybox \
		sh -c 'trap "exit 0" TERM; sleep 1000 & wait' >/dev/null
}

# dm names container $1 on dot $2 (it was resolved through the Docker API,
# so dm can stop and start it).
named() {
	dm dot show --json "$2" | grep -q "\"name\": \"$1\""
}

not_named() {
	! named "$@"
}

running() {
	test "$(pm inspect -f '{{.State.Running}}' "$1")" = true
}

test_expect_success 'two commits on shop; a running container on it, another on cafe' '
	start_dmd &&
	pm volume create --driver dm shop &&
	run_box -v shop:/data localhost/busybox sh -c "echo v1 >/data/x" &&
	dm commit -m v1 &&
	run_box -v shop:/data localhost/busybox sh -c "echo v2 >/data/x" &&
	dm commit -m v2 &&
	pm volume create --driver dm cafe &&
	run_long app shop &&
	run_long bystander cafe &&
	wait_for "dm to name app" named app shop &&
	wait_for "dm to name bystander" named bystander cafe &&
	test "$(pm exec app cat /data/x)" = v2
'

test_expect_success 'dm reset --hard HEAD^ restarts the container, which then sees the old data' '
	app_before=$(started_at app) &&
	other_before=$(started_at bystander) &&
	dm reset --hard HEAD^ --dot shop &&
	running app &&
	test "$(started_at app)" != "$app_before" &&
	test "$(pm exec app cat /data/x)" = v1 &&
	test "$(started_at bystander)" = "$other_before" &&
	wait_for "dm to name app again" named app shop
'

test_expect_success 'dm checkout -b moves a running container onto the new branch' '
	app_before=$(started_at app) &&
	dm checkout -b b2 --dot shop &&
	running app &&
	test "$(started_at app)" != "$app_before" &&
	pm exec app sh -c "echo on-b2 >/data/x" &&
	dm mount shop@b2 wc-b2 &&
	test "$(cat wc-b2/__default__/x)" = on-b2 &&
	dm mount shop@master wc-master &&
	test "$(cat wc-master/__default__/x)" = v1 &&
	wait_for "dm to name app again" named app shop
'

test_expect_success 'a container pinned to master is not restarted by checkouts' '
	pm volume create --driver dm -o volume=shop@master shop-master &&
	run_long pinned shop-master &&
	wait_for "dm to name pinned" named pinned shop &&
	test "$(pm exec pinned cat /data/x)" = v1 &&
	pinned_before=$(started_at pinned)
'

test_expect_success 'dm checkout switches what a running container sees' '
	app_before=$(started_at app) &&
	other_before=$(started_at bystander) &&
	dm checkout master --dot shop &&
	running app &&
	test "$(started_at app)" != "$app_before" &&
	test "$(pm exec app cat /data/x)" = v1 &&
	wait_for "dm to name app again" named app shop &&
	dm checkout b2 --dot shop &&
	test "$(pm exec app cat /data/x)" = on-b2 &&
	test "$(started_at bystander)" = "$other_before" &&
	test "$(started_at pinned)" = "$pinned_before" &&
	test "$(pm exec pinned cat /data/x)" = v1
'

test_expect_success 'dm list names every container of a dot; delete of a dot in use is refused' '
	wait_for "dm to name app again" named app shop &&
	dm list >out &&
	grep "^ *shop  *b2 .*app,pinned \|^ *shop  *b2 .*pinned,app " out &&
	grep "^ *cafe  *master .*bystander " out &&
	test_must_fail dm dot delete -f cafe 2>err &&
	grep "dot .cafe. is in use by container bystander" err &&
	pm rm -f -t 0 bystander &&
	wait_for "cafe to be free" not_named bystander cafe &&
	dm dot delete -f cafe &&
	! dm list | grep cafe
'

test_done
