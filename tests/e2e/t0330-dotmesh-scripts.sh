#!/usr/bin/env bash
test_description='dotmesh'\''s acceptance scenarios that read dm list -H and dm dot show -H, run with their dm commands unchanged: cut -f 1 and -f 7 of dm list -H, masterBranchId, defaultUpstreamDot, #commit-id, a piped API key, the default remote namespace'
. "$(dirname "$0")/test-lib.sh"

# What this proves: the dm command lines of dotmesh's tests/acceptance_test.go
# (TestSingleNode and TestThreeSingleNodeClusters, the scenarios that parse
# -H output) run unchanged against dm, and their checks hold as written.
# Only what stood around them is translated: a node is a dmd on a private
# port (commonNode.IP becomes 127.0.0.1:PORT), `docker run -v VOL:/foo
# busybox touch /foo/X` becomes a file written into `dm mount --create`'s
# working copy (the plugin itself is tested in t06xx), citools.RegisterUser
# is `dm user add`, and the keys are dm's (64 hex digits; dotmesh's tests
# used passwords). The common node speaks plain HTTP on loopback, so that
# `echo KEY | dm remote add NAME USER@HOST` needs no --fingerprint, as on
# dotmesh.

unset DM_API_KEY

# node NAME: starts a dmd called NAME; dmNAME runs dm as its admin, whose
# config (confNAME) has it as `local`.
node() {
	local p
	p=$(test_free_port)
	eval "port_$1=$p"
	eval "dm$1() { DM_CONFIG=\$HOME/conf$1 dm \"\$@\"; }"
	test_atexit "dmd stop --data-dir '$HOME/$1' >/dev/null 2>&1"
	"dm$1" cluster init --data-dir "$HOME/$1" --port "$p" "${@:2}" >"init-$1.out" 2>&1 || {
		cat "init-$1.out" >&2
		return 1
	}
}

# on NODE SHELL-TEXT: runs SHELL-TEXT (dotmesh's command, as it was) with
# NODE's config, in NODE's directory: dotmesh's citools.RunOnNode.
on() {
	mkdir -p "$HOME/on-$1" &&
	(cd "$HOME/on-$1" && DM_CONFIG=$HOME/conf$1 bash -c "$2")
}

# docker_touch NODE DOT[@BRANCH] FILE: dotmesh's
# `docker run -v DOT:/foo busybox touch /foo/FILE`, as a file written into
# the working copy (the dot made when missing, as the plugin makes it).
docker_touch() {
	local mnt=$HOME/on-$1/mnt-$(printf '%s' "$2" | tr '/@' '__')
	[ -L "$mnt" ] || on "$1" "dm mount --create $2 $mnt" >/dev/null || return 1
	touch "$mnt/$3"
}

# docker_ls NODE DOT[@BRANCH]: `docker run -v DOT:/foo busybox ls /foo/`.
docker_ls() {
	local mnt=$HOME/on-$1/mnt-$(printf '%s' "$2" | tr '/@' '__')
	[ -L "$mnt" ] || on "$1" "dm mount $2 $mnt" >/dev/null || return 1
	ls "$mnt/"
}

# ---- TestSingleNode -----------------------------------------------------

test_expect_success 'setup: one node' '
	node S --no-plugin
'

test_expect_success 'dm init makes the dot current: dm dot show -H | grep masterBranchId | cut -f 2 is its id (FilesystemRemountedOnRestart)' '
	on S "dm init fs1" &&
	on S "dm list" >resp && grep fs1 resp &&
	fsId=$(on S "dm dot show -H | grep masterBranchId | cut -f 2") &&
	test "$fsId" = "$(dmS dot show fs1 --json | python3 -c "import json, sys; print(json.load(sys.stdin)[\"id\"])")" &&
	on S "dm dot show -H fs1 | grep -x selected"
'

test_expect_success 'dm commit -d "#commit-id=WEIRDCOMMIT" names the commit (CommitIdOverride)' '
	docker_touch S fs2 X &&
	on S "dm switch fs2" &&
	on S "dm commit -m '\''hello'\'' -d '\''#commit-id=WEIRDCOMMIT'\''" &&
	on S "dm log" >resp &&
	grep WEIRDCOMMIT resp &&
	on S "dm dot show -H | grep commitCount | cut -f 2" >resp && test "$(cat resp)" = 1 &&
	test_must_fail on S "dm commit -m again -d '\''#commit-id=WEIRDCOMMIT'\''" 2>err &&
	grep "has a commit .WEIRDCOMMIT. already" err &&
	test_must_fail on S "dm commit -m bad -d '\''#commit-id=a b'\''" 2>err &&
	grep "invalid commit id" err &&
	on S "dm reset --hard WEIRDCOMMIT"
'

test_expect_success 'uncommitted bytes are column 7 of dm list -H (waitForDirtyState)' '
	on S "dm list -H |grep fs2 |cut -f 7" >resp && test "$(cat resp)" = 0 &&
	echo "some data" >"$HOME/on-S/mnt-fs2/Y" &&
	uncommitted=$(on S "dm list -H |grep fs2 |cut -f 7") &&
	test "$uncommitted" -gt 0
'

test_expect_success 'dm ls and dm list -H | cut -f 1 list the names, admin'\''s without namespace' '
	on S "dm init other/fs3" &&
	on S "dm ls -H | cut -f 1" >resp &&
	printf "fs1\nfs2\nother/fs3\n" >expect &&
	test_cmp expect resp
'

test_expect_success 'dm -c FILE uses another config; dm debug prints a raw result' '
	on S "dm -c $HOME/confS list -H | cut -f 1 | head -n 1" >resp && test "$(cat resp)" = fs1 &&
	on S "dm --config $HOME/confS debug server.ping" >resp &&
	echo "{\"user\":\"admin\"}" >expect && test_cmp expect resp &&
	on S "dm debug dots.show '\''{\"dot\":\"fs1\"}'\''" >resp &&
	python3 -c "import json, sys; d = json.load(open(sys.argv[1])); assert d[\"name\"] == \"fs1\", d" resp &&
	test_must_fail env DM_CONFIG=/nonexistent dm -c "$HOME/nope/config" list 2>err &&
	grep "no remote" err
'

# ---- TestThreeSingleNodeClusters ----------------------------------------

test_expect_success 'setup: common (plain HTTP on loopback), alice'\''s and bob'\''s nodes; users alice and bob on common; cluster_0 is common'\''s admin everywhere' '
	node common --no-plugin --insecure-http &&
	node alice --no-plugin &&
	node bob --no-plugin &&
	dmcommon user add bob >bobKey &&
	dmcommon user add alice >aliceKey &&
	for n in alice bob; do
		DM_API_KEY=$(cat "$HOME/common/admin-api-key") \
			"dm$n" remote add cluster_0 "admin@127.0.0.1:$port_common" >/dev/null 2>&1 || return 1
	done &&
	commonIP=127.0.0.1:$port_common &&
	aliceKey=$(cat aliceKey) && bobKey=$(cat bobKey) &&
	test -n "$aliceKey" && test -n "$bobKey"
'

test_expect_success 'TwoUsersSameNamedVolume: dm list -H | cut -f 1 on each node' '
	docker_touch alice apples alice &&
	on alice "dm switch apples" &&
	on alice "dm commit -m'\''Alice commits'\''" &&
	on alice "dm push cluster_0 apples --remote-name alice/apples" &&

	docker_touch bob apples bob &&
	on bob "dm switch apples" &&
	on bob "dm commit -m'\''Bob commits'\''" &&
	on bob "dm push cluster_0 apples --remote-name bob/apples" &&

	on alice "dm clone cluster_0 bob/apples --local-name bob-apples" &&
	on bob "dm clone cluster_0 alice/apples --local-name alice-apples" &&

	resp=$(on common "dm list -H | cut -f 1 | grep apples"; echo .) &&
	test "$resp" = "$(printf "alice/apples\nbob/apples\n.")" &&
	resp=$(on alice "dm list -H | cut -f 1 | grep apples"; echo .) &&
	test "$resp" = "$(printf "apples\nbob-apples\n.")" &&
	resp=$(on bob "dm list -H | cut -f 1 | grep apples"; echo .) &&
	test "$resp" = "$(printf "alice-apples\napples\n.")" &&

	docker_ls alice bob-apples | grep -x bob &&
	docker_ls bob alice-apples | grep -x alice &&

	docker_touch bob apples bob2 &&
	on bob "dm switch apples" &&
	on bob "dm commit -m'\''Bob commits again'\''" &&
	on bob "dm push cluster_0 apples --remote-name bob/apples" &&
	on alice "dm pull cluster_0 bob-apples --remote-name bob/apples" &&
	docker_ls alice bob-apples | grep -x bob2
'

test_expect_success 'ShareBranches: a branch pushed, and cloned alone' '
	docker_touch alice cress alice &&
	on alice "dm switch cress" &&
	on alice "dm commit -m'\''Alice commits'\''" &&
	on alice "dm push cluster_0 cress --remote-name alice/cress" &&
	on alice "dm checkout -b mustard" &&
	docker_touch alice cress mustard &&
	on alice "dm commit -m'\''Alice commits mustard'\''" &&
	on alice "dm push cluster_0 cress mustard --remote-name alice/cress" &&

	on bob "dm clone cluster_0 alice/cress mustard --local-name cress" &&
	on bob "dm switch cress" &&
	on bob "dm checkout mustard" &&
	docker_ls bob cress@mustard >resp &&
	grep -x alice resp && grep -x mustard resp
'

test_expect_success 'DefaultRemoteNamespace: a piped key; dm push REMOTE goes to the remote user'\''s namespace' '
	docker_touch alice pears alice &&
	on alice "echo '\''$aliceKey'\'' | dm remote add common_pears alice@$commonIP" &&
	on alice "dm switch pears" &&
	on alice "dm commit -m'\''Alice commits'\''" &&
	on alice "dm push common_pears" &&
	on common "dm list -H | cut -f 1 | sort" >resp &&
	grep -x "alice/pears" resp
'

test_expect_success 'DefaultRemoteVolume: defaultUpstreamDot after a push and after a clone; pull and push without names' '
	docker_touch alice bananas alice &&
	on alice "echo '\''$aliceKey'\'' | dm remote add common_bananas alice@$commonIP" &&
	on alice "dm switch bananas" &&
	on alice "dm commit -m'\''Alice commits'\''" &&
	on alice "dm push common_bananas bananas" &&
	resp=$(on alice "dm dot show -H bananas | grep defaultUpstreamDot"; echo .) &&
	test "$resp" = "$(printf "defaultUpstreamDot\tcommon_bananas\talice/bananas\n.")" &&

	on alice "dm --remote common_bananas dot add-collaborator alice/bananas bob" &&

	on bob "echo '\''$bobKey'\'' | dm remote add common_bananas bob@$commonIP" &&
	on bob "dm clone common_bananas alice/bananas --local-name bananas" &&
	on bob "dm switch bananas" &&
	resp=$(on bob "dm dot show -H bananas | grep defaultUpstreamDot"; echo .) &&
	test "$resp" = "$(printf "defaultUpstreamDot\tcommon_bananas\talice/bananas\n.")" &&
	on bob "dm pull common_bananas" &&
	docker_touch bob bananas bob &&
	on bob "dm commit -m'\''Bob commits'\''" &&
	on bob "dm push common_bananas" &&
	dmcommon log --dot alice/bananas >resp && grep "Bob commits" resp
'

test_expect_success 'DefaultRemoteNamespaceOverride: dm dot set-upstream REMOTE NS/DOT' '
	docker_touch alice kiwis alice &&
	on alice "echo '\''$aliceKey'\'' | dm remote add common_kiwis alice@$commonIP" &&
	on alice "dm switch kiwis" &&
	on alice "dm commit -m'\''Alice commits'\''" &&
	on alice "dm push common_kiwis" &&
	resp=$(on alice "dm dot show -H kiwis | grep defaultUpstreamDot"; echo .) &&
	test "$resp" = "$(printf "defaultUpstreamDot\tcommon_kiwis\talice/kiwis\n.")" &&
	on alice "dm dot set-upstream common_kiwis bob/kiwis" &&
	resp=$(on alice "dm dot show -H kiwis | grep defaultUpstreamDot"; echo .) &&
	test "$resp" = "$(printf "defaultUpstreamDot\tcommon_kiwis\tbob/kiwis\n.")"
'

test_expect_success 'DeleteNotMineFails: bob may not delete alice'\''s dot' '
	docker_touch alice plums alice &&
	on alice "echo '\''$aliceKey'\'' | dm remote add common_plums alice@$commonIP" &&
	on alice "dm switch plums" &&
	on alice "dm commit -m'\''Alice commits'\''" &&
	on alice "dm push common_plums" &&
	on bob "echo '\''$bobKey'\'' | dm remote add common_plums bob@$commonIP" &&
	on bob "dm remote switch common_plums" &&
	on bob "if dm dot delete -f alice/plums; then false; else true; fi" 2>resp &&
	grep "may not delete .alice/plums.: only its owner or an admin may" resp &&
	on bob "dm remote switch local" &&
	dmcommon dot show alice/plums >/dev/null
'

test_expect_success 'NamespaceAuthorisationNonexistant and NamespaceAuthorisation: no pushes into namespaces not yours' '
	docker_touch alice grapes alice &&
	on alice "echo '\''$aliceKey'\'' | dm remote add common_grapes alice@$commonIP" &&
	on alice "dm switch grapes" &&
	on alice "dm commit -m'\''Alice commits'\''" &&
	on alice "bash -c '\''if dm push common_grapes --remote-name nonexistant/grapes; then exit 1; else exit 0; fi'\''" 2>/dev/null &&
	on common "dm list -H | cut -f 1 | sort" >resp &&
	! grep "nonexistant/grapes" resp &&
	docker_touch alice passionfruit alice &&
	on alice "echo '\''$aliceKey'\'' | dm remote add common_passionfruit alice@$commonIP" &&
	on alice "dm switch passionfruit" &&
	on alice "dm commit -m'\''Alice commits'\''" &&
	on alice "bash -c '\''if dm push common_passionfruit --remote-name bob/passionfruit; then exit 1; else exit 0; fi'\''" 2>/dev/null &&
	on common "dm list -H | cut -f 1 | sort" >resp &&
	! grep "bob/passionfruit" resp
'

test_expect_success 'NamespaceAuthorisationAdmin: as common'\''s admin, into bob'\''s namespace' '
	docker_touch alice prune alice &&
	on alice "dm switch prune" &&
	on alice "dm commit -m'\''Alice commits'\''" &&
	on alice "dm push cluster_0 --remote-name bob/prune" &&
	on common "dm list -H | cut -f 1 | sort" >resp &&
	grep -x "bob/prune" resp
'

test_done
