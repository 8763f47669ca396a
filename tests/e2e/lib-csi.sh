# shellcheck shell=bash
# lib-csi.sh - a dmd serving the CSI driver, for the t10xx scripts. Source
# it after test-lib.sh.
#
# Always true once csi_start returned 0: dmd serves $HOME/data on a
# private port and the CSI socket $CSI_SOCK (dm cluster init the first
# time, dm cluster start after), and is stopped when the script ends.
# csi_py runs a Python program with Debian's /usr/bin/python3 (its grpcio
# and grpc_tools); tests/e2e/csi/ holds the client (csiclient.py) and the
# conformance suite. Scripts that need the packages skip without them.

CSI_SOCK=$HOME/csi/csi.sock
CSI_PY=/usr/bin/python3
CSI_DIR=$TEST_DIRECTORY/csi
export DM_CONFIG=$HOME/dmconf/config
csi_port=$(test_free_port)
test_atexit "dmd stop --data-dir '$HOME/data' >/dev/null 2>&1"
# (runs first) what a failed test left published: its bind mounts go
csi_umount_all() {
	awk -v home="$HOME/" 'index($5, home) == 1 { print $5 }' /proc/self/mountinfo |
		sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
	return 0
}
test_atexit csi_umount_all

"$CSI_PY" -c 'import grpc, grpc_tools.protoc' 2>/dev/null ||
	test_skip_all "no python3-grpcio and python3-grpc-tools (scripts/deps.sh installs them)"

csi_start() {
	if [ -d "$HOME/data" ]; then
		dm cluster start --data-dir "$HOME/data" --csi-socket "$CSI_SOCK" "$@"
	else
		dm cluster init --data-dir "$HOME/data" --port "$csi_port" --csi-socket "$CSI_SOCK" "$@"
	fi
}

csi_py() {
	"$CSI_PY" "$@"
}

# csi_suite GROUP...: the conformance suite's groups against $CSI_SOCK.
csi_suite() {
	csi_py "$CSI_DIR/conformance.py" "$CSI_SOCK" "$HOME/work" "$@"
}

# csictl COMMAND [ARGS]: one CSI call (tests/e2e/csi/csictl.py).
csictl() {
	csi_py "$CSI_DIR/csictl.py" "$CSI_SOCK" "$HOME/work" "$@"
}
