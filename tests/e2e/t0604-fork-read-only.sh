#!/usr/bin/env bash
test_description='dm dot fork (a new dot sharing its origin'\''s history, its origin recorded) and read-only copies of past commits: dm mount DOT@COMMIT PATH --read-only, the volume DOT@COMMIT, released when unused; dotmesh'\''s Fork and MountCommit'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"

# What this proves: a fork has a new id, every branch of its origin with
# the same commit ids and contents, its origin in dm dot show, and a life
# of its own (commits on either side stay there; the origin deleted and
# collected, the fork is whole; it pushes to another server as a dot of
# its own); only the commits' records were written again (the store grew
# by far less than the data). A read-only copy of a commit holds exactly
# the commit, cannot be written (EROFS as root), is shared by its
# holders, and goes when the last one lets go: dm unmount, a link
# removed, a Docker Unmount, the dot deleted.

unset DM_API_KEY

# a copy's read-only bind mount would outlive a failed script's dmd
test_atexit 'grep -o " $HOME/[^ ]*/\.commits/[^ ]*" /proc/mounts | while read -r m; do umount -l "$m"; done 2>/dev/null || :'

plugin() {
	curl -s --unix-socket "$HOME/plugin.sock" -d "$2" "http://localhost/VolumeDriver.$1"
}

# copies DOT: the read-only copies the server keeps for DOT.
copies() {
	ls "$HOME/A/dots/$(dot_id dmA dot show "$1")/.commits" 2>/dev/null
}

store_bytes() {
	du -sb "$HOME/A/store" | cut -f1
}

test_expect_success 'setup: dmds A (with the plugin) and B; user bob on A; a dot with two branches' '
	servers_init B &&
	port_A=$(test_free_port) &&
	dmA() { DM_CONFIG=$HOME/confA dm "$@"; } &&
	test_atexit "dmd stop --data-dir '\''$HOME/A'\'' >/dev/null 2>&1" &&
	dmA cluster init --data-dir "$HOME/A" --port "$port_A" --plugin-socket "$HOME/plugin.sock" \
		--docker-socket none >/dev/null &&
	DM_API_KEY=$(cat "$HOME/B/admin-api-key") dmA remote add b "admin@127.0.0.1:$(server_port B)" \
		--ca-file "$HOME/B/ca.pem" >/dev/null &&
	dmA user add bob >bob.key &&
	DM_API_KEY=$(cat bob.key) dmA remote add bob "bob@127.0.0.1:$port_A" --ca-file "$HOME/A/ca.pem" >/dev/null &&
	dmA init shop && dmA mount shop shopA &&
	echo apples >shopA/stock && mkdir shopA/db && echo one >shopA/db/f &&
	head -c 3000000 /dev/urandom >shopA/big &&
	dmA commit -m one >c1 &&
	echo pears >>shopA/stock && echo two >shopA/db/f &&
	dmA commit -m two >c2 &&
	dmA checkout -b b1 && echo kiwis >>shopA/stock && dmA commit -m three >c3 &&
	dmA checkout master
'

test_expect_success 'a user forks a dot shared with them into their namespace: new id, same history, origin recorded, only records written' '
	dmA dot add-collaborator shop bob --role read &&
	before=$(store_bytes) &&
	dmA --remote bob dot fork shop myshop >out &&
	grep "^Forked .shop. into .bob/myshop. (id " out &&
	after=$(store_bytes) &&
	echo "store grew by $((after - before)) bytes" &&
	test $((after - before)) -lt 300000 &&
	test "$(dot_id dmA dot show bob/myshop)" != "$(dot_id dmA dot show shop)" &&
	test "$(log_ids dmA log --dot bob/myshop)" = "$(log_ids dmA log --dot shop)" &&
	dmA branch --dot bob/myshop >br && grep "b1" br && grep "master" br &&
	dmA dot show bob/myshop >show &&
	grep "^forked from: *admin/shop at $(cat c2)$" show &&
	grep "^owner: *bob$" show &&
	dmA dot show -H bob/myshop | grep "^forkOf	admin/shop	$(dot_id dmA dot show shop)	$(cat c2)$" &&
	dmA mount bob/myshop forkA &&
	diff -r shopA forkA &&
	dmA checkout b1 --dot bob/myshop && test "$(tail -n 1 forkA/stock)" = kiwis &&
	dmA checkout master --dot bob/myshop
'

test_expect_success 'forks are refused where the caller may not create, or may not read' '
	test_must_fail dmA --remote bob dot fork shop admin/theirs 2>err &&
	grep "may not create" err &&
	dmA dot remove-collaborator shop bob &&
	test_must_fail dmA --remote bob dot fork shop other 2>err &&
	grep "may not fork .shop.: only its owner, an admin or a collaborator with role read" err &&
	test_must_fail dmA dot fork shop bob/myshop 2>err && grep "exists" err
'

test_expect_success 'after the fork, each goes its own way; the origin deleted and collected, the fork is whole and pushes as a dot of its own' '
	echo fork-only >forkA/new && dmA commit --dot bob/myshop -m "fork commit" >/dev/null &&
	! test -e shopA/new &&
	dmA log --dot shop >log && ! grep "fork commit" log &&
	dmA dot delete -f shop &&
	dmA gc >/dev/null &&
	dmA reset --hard HEAD^ --dot bob/myshop && test "$(cat forkA/stock)" = "$(printf "apples\npears")" &&
	dmA reset --hard $(cat c1) --dot bob/myshop && test "$(cat forkA/db/f)" = one &&
	dmA push b bob/myshop --remote-name bob/myshop >/dev/null &&
	dmB log --dot bob/myshop >log && grep "    one" log
'

test_expect_success 'dm mount DOT@COMMIT PATH --read-only: exactly that commit, not writable' '
	dmA init ro && dmA mount ro roA &&
	echo v1 >roA/f && mkdir roA/d && echo in >roA/d/g && dmA commit --dot ro -m v1 >r1 &&
	echo v2 >roA/f && dmA commit --dot ro -m v2 >r2 &&
	dmA mount ro@$(cat r1) old --read-only >out &&
	grep "^old is commit $(cat r1) of .ro., read-only$" out &&
	test "$(cat old/f)" = v1 && test "$(cat old/d/g)" = in &&
	test_must_fail sh -c "echo x >old/f" &&
	test_must_fail touch old/new &&
	test "$(cat old/f)" = v1 && test "$(cat roA/f)" = v2 &&
	test "$(copies ro)" = "$(cat r1)" &&
	dmA dot show -H ro | grep "^readOnly	$(cat r1)	link:$HOME/old	" &&
	dmA mount ro@HEAD old2 --read-only >/dev/null && test "$(cat old2/f)" = v2 &&
	dmA mount ro@$(cut -c1-23 r1) old3 --read-only >/dev/null && test "$(cat old3/f)" = v1 &&
	test "$(copies ro | sort)" = "$(sort r1 r2)"
'

test_expect_success 'a copy goes when the last link to it goes: dm unmount, a link removed, or replaced' '
	dmA unmount old &&
	! test -e old &&
	test "$(copies ro | sort)" = "$(sort r1 r2)" &&
	dmA unmount old3 &&
	test "$(copies ro)" = "$(cat r2)" &&
	rm old2 &&
	dmA mount ro@$(cat r1) old4 --read-only >/dev/null &&
	test "$(copies ro)" = "$(cat r1)" &&
	dmA mount ro old4 &&
	test "$(cat old4/f)" = v2 &&
	test -z "$(copies ro)" &&
	test_must_fail dmA unmount roA/f 2>err && grep "not a link that dm mount made" err
'

test_expect_success 'the volume DOT@COMMIT: read-only copy, subdots in it, released at Unmount; a missing subdot is refused' '
	plugin Mount "{\"Name\":\"ro@$(cat r1).d\",\"ID\":\"c1\"}" >out &&
	path=$(python3 -c "import json,sys; print(json.load(sys.stdin)[\"Mountpoint\"])" <out) &&
	test "$(cat "$path/g")" = in &&
	test_must_fail sh -c "echo x >\"$path/g\"" &&
	plugin Mount "{\"Name\":\"ro@$(cat r1).__root__\",\"ID\":\"c2\"}" >out &&
	grep "Mountpoint" out &&
	plugin Get "{\"Name\":\"ro@$(cat r1)\"}" >out && grep "\"branch\": *\"$(cat r1)\"" out &&
	plugin Mount "{\"Name\":\"ro@$(cat r1).nosuch\",\"ID\":\"c3\"}" >out &&
	grep "has no subdot .nosuch." out &&
	test "$(copies ro)" = "$(cat r1)" &&
	plugin Unmount "{\"Name\":\"ro@$(cat r1).d\",\"ID\":\"c1\"}" >/dev/null &&
	plugin Unmount "{\"Name\":\"ro@$(cat r1).__root__\",\"ID\":\"c2\"}" >/dev/null &&
	for i in $(seq 1 50); do test -z "$(copies ro)" && break; sleep 0.1; done &&
	test -z "$(copies ro)" &&
	plugin Mount "{\"Name\":\"ro@nosuchcommit\",\"ID\":\"c4\"}" >out &&
	grep "has no branch .nosuchcommit., nor a commit of that id" out
'

test_expect_success 'dotmesh'\''s Fork and MountCommit; a dot deleted with a copy mounted takes its copies with it' '
	ro_id=$(dot_id dmA dot show ro) &&
	dmA debug DotmeshRPC.Fork "{\"MasterBranchID\":\"$ro_id\",\"ForkNamespace\":\"admin\",\"ForkName\":\"ro2\"}" >out &&
	test "$(python3 -c "import json; print(json.load(open(\"out\")))")" = "$(dot_id dmA dot show ro2)" &&
	dmA debug DotmeshRPC.MountCommit "{\"FilesystemId\":\"$ro_id\",\"CommitId\":\"$(cat r1)\"}" >out &&
	p=$(python3 -c "import json; print(json.load(open(\"out\")))") &&
	test "$(cat "$p/f")" = v1 &&
	dmA dot delete -f ro &&
	! test -e "$p" &&
	! grep -q "^[^ ]* $HOME/.*/\.commits/" /proc/mounts
'

test_done
