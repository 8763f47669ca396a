# shellcheck shell=bash
# lib-containers.sh - real containers for the t06xx scripts: podman + runc
# (../shared/containers/setup.sh installs them), and a dmd serving the Docker
# volume plugin to them. Source it after test-lib.sh.
#
# Always true once sourced (or the script was skipped, with the reason):
#   - pm runs podman on storage of this script alone ($HOME/podman, vfs
#     driver, run root under $DM_RUN), so volumes named `shop` never meet
#     another script's or the machine's; the image localhost/busybox is in
#     it; CONTAINERS_CONF is a private containers.conf that registers the
#     volume plugin `dm` at $DM_PLUGIN_SOCK.
#   - a `podman system service` on this storage serves the Docker Engine API
#     at $DM_API_SOCK; dmd (remote `local`, DM_CONFIG under $HOME) runs with
#     --plugin-socket $DM_PLUGIN_SOCK --docker-socket $DM_API_SOCK.
#   - at exit, containers are removed (while dmd still runs, so they unmount),
#     then dmd and the service are stopped and $DM_RUN removed.
#
# Helpers: pm (podman), start_dmd / stop_dmd, started_at CONTAINER (wait_for
# is test-lib.sh's).

setup_sh=$DM_SOURCE_DIR/../shared/containers/setup.sh

if ! test_have_root; then
	test_skip_all 'needs root: podman runs rootful containers here'
fi
if [ ! -f "$setup_sh" ]; then
	# CI always has shared/ beside the clone: there, a missing setup is a
	# failure, never a silent skip
	if [ -n "${CI:-}" ]; then
		echo "Bail out! no $setup_sh to set up podman (CI=$CI)"
		exit 1
	fi
	test_skip_all "no $setup_sh to set up podman"
fi

DM_RUN=$(mktemp -d /run/dm-test-plugin.XXXXXX) || exit 1
DM_PLUGIN_SOCK=$DM_RUN/plugins/dm.sock
DM_API_SOCK=$DM_RUN/podman.sock
export DM_RUN DM_PLUGIN_SOCK DM_API_SOCK
# conmon runs `podman container cleanup` on our run root after a container
# exits: let those finish, or they would make it again after the rm.
test_atexit "for _ in \$(seq 50); do pgrep -f -- '--runroot $DM_RUN/' >/dev/null || break; sleep 0.1; done; rm -rf '$DM_RUN'"

# setup.sh installs what is missing and registers the plugin in a
# containers.conf of our own (DM_CONTAINERS_CONF), so the socket is ours.
if ! DM_CONTAINERS_CONF=$HOME/containers.conf bash "$setup_sh" --plugin dm "$DM_PLUGIN_SOCK" \
	>setup.out 2>&1; then
	test_skip_all "setup.sh failed: $(tail -n 1 setup.out)"
fi
eval "$(grep '^export CONTAINERS_CONF=' setup.out)"
[ "$CONTAINERS_CONF" = "$HOME/containers.conf" ] || test_skip_all "setup.sh printed no CONTAINERS_CONF"

pm() {
	podman --root "$HOME/podman" --runroot "$DM_RUN/podman" --storage-driver vfs "$@"
}

# The image setup.sh imported, copied into our storage.
if ! podman save -q -o busybox.tar localhost/busybox:latest >pm.log 2>&1 ||
	! pm load -q -i busybox.tar >>pm.log 2>&1; then
	test_skip_all "podman cannot copy its busybox image: $(tail -n 1 pm.log)"
fi
rm -f busybox.tar
if ! pm run --rm --network none localhost/busybox true >pm.log 2>&1; then
	test_skip_all "podman cannot run a container here: $(tail -n 1 pm.log)"
fi

# Not through pm: $! must be podman itself, or the kill would miss it.
podman --root "$HOME/podman" --runroot "$DM_RUN/podman" --storage-driver vfs \
	system service --time=0 "unix://$DM_API_SOCK" >podman-service.log 2>&1 &
pm_service=$!
test_atexit "kill $pm_service; wait $pm_service"
for _ in $(seq 100); do
	[ -S "$DM_API_SOCK" ] && break
	sleep 0.1
done
[ -S "$DM_API_SOCK" ] || test_skip_all "podman system service did not start: $(tail -n 1 podman-service.log)"

export DM_CONFIG=$HOME/dmconf/config
dm_port=$(test_free_port)

# dm cluster init the first time, dm cluster start after; the options pass through.
start_dmd() {
	if [ -d "$HOME/data" ]; then
		dm cluster start --data-dir "$HOME/data" --plugin-socket "$DM_PLUGIN_SOCK" \
			--docker-socket "$DM_API_SOCK"
	else
		dm cluster init --data-dir "$HOME/data" --port "$dm_port" \
			--plugin-socket "$DM_PLUGIN_SOCK" --docker-socket "$DM_API_SOCK"
	fi
}

stop_dmd() {
	dm cluster stop --data-dir "$HOME/data"
}

# Runs last-registered first: containers go while dmd can still unmount them.
test_atexit "dmd stop --data-dir '$HOME/data'"
test_atexit "pm rm -a -f -t 0"

started_at() {
	pm inspect -f '{{.State.StartedAt}}' "$1"
}
