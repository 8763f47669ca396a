#!/usr/bin/env bash
test_description='the CSI driver against a real gRPC client (grpcio, stubs from the tree'"'"'s csi.proto): identity, controller, snapshots, node, errors by their codes'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-csi.sh"


test_expect_success 'dmd serves the CSI socket it is given, mode 0600' '
	csi_start >out &&
	test -S "$CSI_SOCK" &&
	test "$(stat -c %a "$CSI_SOCK")" = 600 &&
	grep "CSI driver .dm.csi.dotmesh.io. on $CSI_SOCK" data/dmd.log
'

test_expect_success 'identity: plugin info, capabilities, probe' '
	csi_suite identity >out || { cat out; false; }
'

test_expect_success 'controller: create and delete, idempotency, conflicts, arguments, names, sources, validation, pagination' '
	csi_suite controller >out || { cat out; false; }
'

test_expect_success 'snapshots: arguments, idempotency and conflicts, ready, listing and pagination' '
	csi_suite snapshot >out || { cat out; false; }
'

test_expect_success 'node: info, publish and unpublish (idempotent, read-only, single writer), stats' '
	csi_suite node >out || { cat out; false; }
'

test_expect_success 'errors: unimplemented methods, a bad capacity range, ABORTED while a call on the volume runs' '
	csi_suite errors >out || { cat out; false; }
'

test_expect_success 'the volumes are dots: dm list shows what is left, and nothing of the suite is' '
	dm list -H >out &&
	test_must_fail grep . out
'

test_expect_success 'a restarted dmd serves the socket again; a stale socket file is replaced' '
	dmd stop --data-dir "$HOME/data" >/dev/null &&
	test_must_fail test -S "$CSI_SOCK" &&
	csi_py -c "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])" "$CSI_SOCK" &&
	test -S "$CSI_SOCK" &&
	csi_start >out &&
	csi_suite identity >out
'

test_expect_success 'dmd refuses --csi-socket with a relative path, and on init' '
	test_must_fail dmd start --data-dir "$HOME/data" --csi-socket rel.sock 2>err &&
	grep "absolute path" err &&
	test_must_fail dmd init --data-dir "$HOME/x" --csi-socket /tmp/x.sock 2>err &&
	grep "is for dmd start" err
'

test_done
