#!/usr/bin/env bash
test_description='deploy/kubernetes: valid YAML; the driver name dmd answers is the one of the CSIDriver, StorageClass, VolumeSnapshotClass and kubelet paths; the socket paths of dmd, registrar and sidecars agree; the start script'"'"'s commands run'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-csi.sh"

deploy=$DM_SOURCE_DIR/deploy/kubernetes
test_expect_success 'needs: python3-yaml (scripts/deps.sh installs it)' '
	csi_py -c "import yaml"
'

test_expect_success 'setup: dmd with the CSI socket; the name it answers' '
	csi_start >out &&
	csictl name >name &&
	test -s name
'

test_expect_success 'the manifests agree with each other and with dmd' '
	csi_py "$CSI_DIR/check_deploy.py" "$deploy" "$(cat name)"
'

test_expect_success 'the check finds a driver name that is not dmd'"'"'s, and a socket that moved' '
	test_must_fail csi_py "$CSI_DIR/check_deploy.py" "$deploy" other.example.io >out &&
	grep "CSIDriver is not named other.example.io" out &&
	cp -r "$deploy" moved &&
	sed -i "s|--csi-address=/csi/csi.sock|--csi-address=/csi/other.sock|" moved/controller.yaml &&
	test_must_fail csi_py "$CSI_DIR/check_deploy.py" moved "$(cat name)" >out &&
	grep "csi-provisioner.s --csi-address /csi/other.sock is not dmd.s socket" out
'

test_expect_success 'the start script of node.yaml, run here, serves the socket it names' '
	csi_py -c "import yaml, sys
for o in yaml.safe_load_all(open(sys.argv[1])):
    if o and o[\"kind\"] == \"ConfigMap\":
        print(o[\"data\"][\"start.sh\"])" "$deploy/node.yaml" >start.sh &&
	sed -e "s|^    data=.*|    data=$HOME/kdata|" -e "s|^    sock=.*|    sock=$HOME/ksock/csi.sock|" \
		-e "s|^data=.*|data=$HOME/kdata|" -e "s|^sock=.*|sock=$HOME/ksock/csi.sock|" \
		-e "s|exec dmd start --foreground|exec dmd start|" \
		-e "s|\${DM_INIT_ARGS:---kv etcd}|--port $(test_free_port) --insecure-http|" start.sh >run.sh &&
	grep "^data=$HOME/kdata" run.sh && grep "exec dmd start --data-dir" run.sh &&
	test_atexit "dmd stop --data-dir '"'"'$HOME/kdata'"'"' >/dev/null 2>&1" &&
	NODE_IP=127.0.0.1 DM_CONFIG=$HOME/kconf sh run.sh >out 2>&1 &&
	test -S ksock/csi.sock &&
	csi_py "$CSI_DIR/csictl.py" "$HOME/ksock/csi.sock" "$HOME/work" name >kname &&
	test_cmp name kname
'

test_done
