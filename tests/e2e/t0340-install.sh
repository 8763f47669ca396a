#!/usr/bin/env bash
test_description='make install and the Debian package: manual pages, completion, dm.service, dpkg -i, the README against the installed programs'
. "$(dirname "$0")/test-lib.sh"

root="$TRASH_DIRECTORY/root"
data="$TRASH_DIRECTORY/data"
port=$(test_free_port)
export DM_CONFIG="$TRASH_DIRECTORY/config"

test_must_be_empty_() {
	if test -s "$1"; then
		echo "$1 is not empty:"
		cat "$1"
		return 1
	fi
}

# the commands of `dm help`, one per line ("cluster init", "list", ...):
# its first words, and for a group (whose help lists subcommands) each
# "GROUP SUB"
commands() {
	dm help | sed -n "/^Commands:/,/^\$/p" | sed -e 1d -e "/^\$/d" | awk '{ print $1 }' |
		grep -v "^help$" | sort -u |
		while read -r w; do
			if dm help "$w" | grep -q "^Subcommands:"; then
				dm help "$w" | sed -n "/^Subcommands:/,/^\$/p" | sed -e 1d -e "/^\$/d" |
					awk -v g="$w" '{ print g " " $1 }'
				dm help "$w" | grep -q "^usage: dm $w SUBCOMMAND" || echo "$w"
			else
				echo "$w"
			fi
		done
}

# what the completion offers for the words given (the last one being completed)
complete_words() {
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _dm; echo "${COMPREPLY[*]}"' \
		complete "$completion" "$@"
}

test_expect_success 'meson install puts the binaries, pages, completion and unit under the prefix' '
	DESTDIR="$root" meson install -C "$DM_BUILD_DIR" --no-rebuild --quiet &&
	prefix=$(meson introspect "$DM_BUILD_DIR" --buildoptions |
		python3 -c "import json, sys; print([o[\"value\"] for o in json.load(sys.stdin) if o[\"name\"] == \"prefix\"][0])") &&
	for f in bin/dm bin/dmd share/man/man1/dm.1 share/man/man8/dmd.8 \
		share/bash-completion/completions/dm lib/systemd/system/dm.service; do
		test -s "$root$prefix/$f" || { echo "missing: $prefix/$f"; return 1; }
	done &&
	echo "$prefix" >prefix
'

test_expect_success 'dm(1) is written from the command table: every command, with its options' '
	page="$root$(cat prefix)/share/man/man1/dm.1" &&
	MANWIDTH=100 man --warnings -l "$page" >dm.txt 2>warnings &&
	test_must_be_empty_ warnings &&
	commands >cmds && test $(wc -l <cmds) -gt 30 &&
	while read -r c; do
		grep -q "^   dm $c\b" dm.txt || { echo "not in dm(1): $c"; return 1; }
	done <cmds &&
	grep -q -- "--fingerprint SHA256:HEX" dm.txt &&
	grep -q "^COMMON OPTIONS" dm.txt && grep -q "dmd(8)" dm.txt
'

test_expect_success 'dmd(8) carries its usage text' '
	MANWIDTH=100 man --warnings -l "$root$(cat prefix)/share/man/man8/dmd.8" >dmd.txt 2>warnings &&
	test_must_be_empty_ warnings &&
	for w in "dmd init" "dmd start" "dmd stop" "dmd renew-cert" "dmd restore" "DIR/admin-api-key"; do
		grep -q -- "$w" dmd.txt || { echo "not in dmd(8): $w"; return 1; }
	done
'

test_expect_success 'help text cannot inject roff requests' '
	grep -n "^\.[A-Za-z]" "$root$(cat prefix)/share/man/man1/dm.1" | cut -d: -f2 |
		cut -c1-3 | sort -u >requests &&
	printf "%s\n" ".PP" ".SH" ".SS" ".TH" ".ad" ".fi" ".nf" ".nh" | sort >expect &&
	test_cmp expect requests
'

completion="$root/completion"
test_expect_success 'the completion offers commands, subcommands and options' '
	cp "$root$(cat prefix)/share/bash-completion/completions/dm" "$completion" &&
	test "$(complete_words dm clu)" = cluster &&
	test "$(complete_words dm cluster ini)" = init &&
	test "$(complete_words dm cluster init --data)" = --data-dir &&
	test "$(complete_words dm -c /x --remote r li)" = list &&
	complete_words dm remote add x --fin >out && test "$(cat out)" = --fingerprint &&
	for c in $(commands | cut -d" " -f1 | sort -u); do
		complete_words dm "$c" | tr " " "\n" | grep -qx "$c" ||
		complete_words dm "${c%${c#?}}" | tr " " "\n" | grep -qx "$c" ||
			{ echo "not completed: $c"; return 1; }
	done
'

test_expect_success 'no dm package is installed already (the test installs and removes one)' '
	if dpkg -s dm >/dev/null 2>&1; then
		echo "a package named dm is installed here; remove it to run this test" >&2
		return 1
	fi
'

# what a failed run may leave: dmd, the package, a read-only commit's mount
test_atexit 'dmd stop --data-dir "$data" >/dev/null 2>&1; dpkg --purge dm >/dev/null 2>&1
	awk -v d="$data/" "index(\$2, d) == 1 { print \$2 }" /proc/mounts | xargs -r -n1 umount -l'

test_expect_success 'make deb builds a package with its dependencies' '
	deb=$("$DM_SOURCE_DIR/scripts/make-deb.sh" "$TRASH_DIRECTORY/deb") &&
	test -s "$deb" && echo "$deb" >debfile &&
	dpkg-deb -f "$deb" Package Version Architecture Depends >fields &&
	grep "^Package: dm$" fields && grep "^Depends: .*libc6" fields &&
	grep "^Depends: .*libmicrohttpd" fields &&
	dpkg-deb -c "$deb" >contents &&
	for f in ./usr/bin/dm ./usr/bin/dmd ./usr/share/man/man1/dm.1.gz ./usr/share/man/man8/dmd.8.gz \
		./usr/share/bash-completion/completions/dm ./usr/lib/systemd/system/dm.service \
		./usr/share/doc/dm/install.md; do
		grep -q " $f$" contents || { echo "not in the package: $f"; return 1; }
	done &&
	! grep -v " root/root " contents
'

test_expect_success 'dpkg -i installs it cleanly' '
	dpkg -i "$(cat debfile)" >out 2>err &&
	test -x /usr/bin/dm && test -x /usr/bin/dmd &&
	/usr/bin/dmd --version >version && grep -q "^dmd " version &&
	MANWIDTH=100 man --warnings dmd >/dev/null 2>warnings && test_must_be_empty_ warnings &&
	systemd-analyze verify /usr/lib/systemd/system/dm.service >verify 2>&1 &&
	test_must_be_empty_ verify
'

test_expect_success 'the unit s commands start the installed dmd (data directory and port the test s own)' '
	sed -n -e "s/^ExecStartPre=//p" -e "s/^ExecStart=//p" /usr/lib/systemd/system/dm.service |
		sed -e "s|/var/lib/dm|$data|g" -e "s|dmd init --data-dir $data|& --port $port|" \
		    -e "s|--foreground ||" >unit-commands &&
	test $(wc -l <unit-commands) = 2 &&
	(PATH=/usr/bin:/bin && while read -r line; do eval "$line" || exit 1; done <unit-commands) &&
	test -s "$data/admin-api-key" && test -s "$data/ca.pem" &&
	test "$(stat -c %a "$data/admin-api-key")" = 400
'

test_expect_success 'install.md s remote add reaches it, and the README walk-through runs against it' '
	PATH=/usr/bin:/bin /usr/bin/dm remote add local "admin@127.0.0.1:$port" \
		--ca-file "$data/ca.pem" <"$data/admin-api-key" &&
	sed -n "/<!-- walkthrough -->/,/<!-- \/walkthrough -->/p" "$DM_SOURCE_DIR/README.md" |
		sed -e "/^<!--/d" -e "/^\`\`\`/d" >walkthrough.sh &&
	mkdir walk && (cd walk && PATH=/usr/bin:/bin bash -e ../walkthrough.sh >../walk.out 2>../walk.err) &&
	grep "^Modified: *stock.txt" walk.out &&
	PATH=/usr/bin:/bin dm list -H | cut -f1 | grep -x shop
'

test_expect_success 'dpkg --purge removes the programs and leaves the data' '
	dmd stop --data-dir "$data" >/dev/null &&
	dpkg --purge dm >out 2>err &&
	! test -e /usr/bin/dm && ! test -e /usr/bin/dmd &&
	! test -e /usr/lib/systemd/system/dm.service &&
	test -s "$data/admin-api-key"
'

test_done
