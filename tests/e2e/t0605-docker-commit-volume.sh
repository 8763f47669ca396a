#!/usr/bin/env bash
test_description='the real Docker Engine on dm volumes as dotmesh users typed it: docker run --volume-driver dm -v DOT:/data, and -v DOT@COMMIT:/data, a past commit read-only (root in the container cannot write it), shared by two containers and released when the last one ends'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-docker.sh"

# What this proves: with Docker's own client and engine (not curl), a
# container writes a dot through the plugin; DOT@COMMIT mounts that commit
# read-only (EROFS for root in the container), while the branch's later
# data stays where it is; two containers of one commit share one copy,
# which stays while either runs and goes when the last one ends (Docker's
# Unmount).

export DM_CONFIG=$HOME/dmconf
port=$(test_free_port)
dot=${dk_prefix}shop
test_atexit "dmd stop --data-dir '$HOME/data' >/dev/null 2>&1"
docker_cleanup_at_exit
test_atexit 'grep -o " $HOME/[^ ]*/\\.commits/[^ ]*" /proc/mounts | while read -r m; do umount -l "$m"; done 2>/dev/null || :'

copies() {
	ls "$HOME/data/dots/$(dm dot show "$dot" --json | python3 -c "import json, sys; print(json.load(sys.stdin)[\"id\"])")/.commits" 2>/dev/null
}

test_expect_success 'dmd serves the plugin to the private dockerd' '
	dm cluster init --data-dir "$HOME/data" --port "$port" --plugin-socket "$DM_PLUGIN_SOCK" \
		--docker-socket "$DM_API_SOCK" >/dev/null
'

test_expect_success 'docker run --volume-driver dm -v DOT:/data writes the dot' '
	dk_run --rm --volume-driver "$DM_DOCKER_PLUGIN" -v "$dot:/data" localhost/busybox \
		sh -c "echo v1 >/data/f" &&
	dk_volume_made "$dot" &&
	dm commit --dot "$dot" -m v1 >c1 &&
	dk_run --rm --volume-driver "$DM_DOCKER_PLUGIN" -v "$dot:/data" localhost/busybox \
		sh -c "echo v2 >/data/f" &&
	dm commit --dot "$dot" -m v2 >/dev/null
'

test_expect_success 'DOT@COMMIT: that commit, read-only even for root in the container' '
	dk_run --rm --volume-driver "$DM_DOCKER_PLUGIN" -v "$dot@$(cat c1):/data" localhost/busybox \
		cat /data/f >out &&
	dk_volume_made "$dot@$(cat c1)" &&
	test "$(cat out)" = v1 &&
	test_must_fail dk_run --rm --volume-driver "$DM_DOCKER_PLUGIN" -v "$dot@$(cat c1):/data" \
		localhost/busybox sh -c "echo x >/data/f" 2>err &&
	grep -i "read-only file system" err &&
	dk_run --rm --volume-driver "$DM_DOCKER_PLUGIN" -v "$dot:/data" localhost/busybox \
		cat /data/f >out && test "$(cat out)" = v2
'

test_expect_success 'two containers of one commit share its copy; it goes when the last ends' '
	wait_for "the copies to go" test -z "$(copies)" &&
	dk_run -d --name "${dk_prefix}-a" --volume-driver "$DM_DOCKER_PLUGIN" \
		-v "$dot@$(cat c1):/data" localhost/busybox sleep 300 >/dev/null &&
	dk_run -d --name "${dk_prefix}-b" --volume-driver "$DM_DOCKER_PLUGIN" \
		-v "$dot@$(cat c1):/data" localhost/busybox sleep 300 >/dev/null &&
	test "$(copies)" = "$(cat c1)" &&
	dm dot show -H "$dot" | grep -c "^readOnly	$(cat c1)	plugin:" >n && test "$(cat n)" = 2 &&
	dk rm -f "${dk_prefix}-a" >/dev/null &&
	test "$(copies)" = "$(cat c1)" &&
	dk exec "${dk_prefix}-b" cat /data/f >out && test "$(cat out)" = v1 &&
	dk rm -f "${dk_prefix}-b" >/dev/null &&
	wait_for "the copy to go" test -z "$(copies)"
'

test_done
