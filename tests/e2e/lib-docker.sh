# shellcheck shell=bash
# lib-docker.sh - the real Docker Engine (Debian's docker.io) for the scripts
# that run containers on dm volumes with it: the private dockerd of
# ../shared/containers/docker.sh, and a volume plugin name of the script's
# own. Source it after test-lib.sh; a script that needs the image
# localhost/postgres:15 sets docker_sh_args=(--postgres) first.
#
# Always true once sourced (or the script was skipped, with the reason; in
# CI, where shared/ is always beside the clone, a Docker that cannot be set
# up is a failure, never a skip):
#   - DOCKER_HOST names the private dockerd, whose Engine API socket is
#     $DM_API_SOCK (give it to dmd: --docker-socket "$DM_API_SOCK"); it runs
#     containers (with --network none: it has no bridge) of the local images
#     localhost/busybox (and localhost/postgres:15 with --postgres).
#   - $DM_DOCKER_PLUGIN is a volume plugin name of this script alone (dm and
#     the script's number, and the build directory's name when it is not
#     `build`), and $DM_PLUGIN_SOCK its socket, where dockerd looks for it
#     (/run/docker/plugins/NAME.sock): a dmd started with --plugin-socket
#     "$DM_PLUGIN_SOCK" serves `docker run --volume-driver "$DM_DOCKER_PLUGIN"`.
#     The dockerd is shared by every script that runs at the same time, and
#     its container and volume names are global: $dk_prefix (the script's
#     number, with the same suffix) starts every name a script gives.
#   - no container of an earlier run of this script is left in dockerd.
#
# Helpers: dk (docker), dk_run (docker run with --network none and the
# script's label), dk_volume_made / dk_volume_rm (the volumes to remove at
# exit), docker_cleanup_at_exit (containers and those volumes go at exit:
# call it after registering the dmd's stop with test_atexit, since volumes
# are removed through the plugin); wait_for is test-lib.sh's.

# docker_setup_failed MSG: skips the script, or fails it in CI.
docker_setup_failed() {
	if [ -n "${CI:-}" ]; then
		echo "Bail out! $* (CI=$CI: the Docker scenarios must run in CI)"
		exit 1
	fi
	test_skip_all "$*"
}

docker_sh=$DM_SOURCE_DIR/../shared/containers/docker.sh

if ! test_have_root; then
	docker_setup_failed 'needs root: the Docker Engine runs rootful containers here'
fi
if [ ! -f "$docker_sh" ]; then
	docker_setup_failed "no $docker_sh to set up the Docker Engine"
fi
# docker.sh may start the dockerd, which outlives this script and every
# other: it must hold no descriptor of ours, or whoever reads our output
# (prove, CI) waits for its end for ever. So it runs with 0, 1 and 2 only.
docker_sh_run() {
	(
		for fd in /proc/$BASHPID/fd/*; do
			fd=${fd##*/}
			if [ "$fd" -gt 2 ] 2>/dev/null; then
				eval "exec $fd>&-"
			fi
		done
		exec bash "$docker_sh" "$@"
	) </dev/null >docker-setup.out 2>&1
}
if ! docker_sh_run ${docker_sh_args[@]+"${docker_sh_args[@]}"}; then
	docker_setup_failed "docker.sh ${docker_sh_args[*]-} failed: $(tail -n 1 docker-setup.out)"
fi
eval "$(grep '^export DOCKER_HOST=unix://' docker-setup.out | tail -n 1)"
case ${DOCKER_HOST:-} in
unix://*) ;;
*) docker_setup_failed "docker.sh printed no DOCKER_HOST" ;;
esac
DM_API_SOCK=${DOCKER_HOST#unix://}

dk_suffix=$(basename "$DM_BUILD_DIR" | tr -cd 'a-z0-9')
[ "$dk_suffix" = build ] && dk_suffix=
dk_prefix=${TEST_NAME%%-*}$dk_suffix
DM_DOCKER_PLUGIN=dm$dk_prefix
DM_PLUGIN_SOCK=/run/docker/plugins/$DM_DOCKER_PLUGIN.sock
export DOCKER_HOST DM_API_SOCK DM_DOCKER_PLUGIN DM_PLUGIN_SOCK

dk() {
	docker "$@"
}

# dk_run ARGS...: docker run --network none, with the label that the
# cleanup at exit looks for.
dk_run() {
	docker run --network none --label "dm-test=$dk_prefix" "$@"
}

# dk_volume_made NAME / dk_volume_rm NAME: a container made volume NAME (of
# the script's driver) / docker volume rm NAME, and the script's record of
# the volumes to remove at exit. Only known names are removed: dockerd asks
# every volume plugin it ever met about a name it does not have, or for a
# listing, and waits up to 15 s for each plugin whose socket went away
# (those of scripts that ended), so `docker volume ls` and a removal of a
# missing name take 15 s to a minute.
dk_volume_made() {
	echo "$1" >>"$TRASH_DIRECTORY/.dk-volumes"
}
dk_volume_rm() {
	docker volume rm "$1" >/dev/null &&
		{ grep -vxF "$1" "$TRASH_DIRECTORY/.dk-volumes" >"$TRASH_DIRECTORY/.dk-volumes.new" || :; } &&
		mv "$TRASH_DIRECTORY/.dk-volumes.new" "$TRASH_DIRECTORY/.dk-volumes"
}

# Removes this script's containers (by label), then the volumes it made and
# did not remove (through the plugin when its dmd runs).
docker_cleanup() {
	docker ps -aq --filter "label=dm-test=$dk_prefix" | xargs -r docker rm -f >/dev/null 2>&1
	if [ -s "$TRASH_DIRECTORY/.dk-volumes" ]; then
		sort -u "$TRASH_DIRECTORY/.dk-volumes" | xargs -r docker volume rm -f >/dev/null 2>&1
	fi
	rm -f "$TRASH_DIRECTORY/.dk-volumes"
	return 0
}

docker_cleanup_at_exit() {
	test_atexit docker_cleanup
}

dk_images=(localhost/busybox:latest)
case " ${docker_sh_args[*]-} " in
*" --postgres "*) dk_images+=(localhost/postgres:15) ;;
esac
for dk_image in "${dk_images[@]}"; do
	dk image inspect "$dk_image" >/dev/null 2>&1 ||
		docker_setup_failed "docker.sh made no image $dk_image"
done
docker_cleanup
if ! dk_run --rm localhost/busybox true >docker-run.out 2>&1; then
	docker_setup_failed "docker cannot run a container here: $(tail -n 1 docker-run.out)"
fi
