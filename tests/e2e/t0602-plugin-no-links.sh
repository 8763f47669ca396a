#!/usr/bin/env bash
test_description='the volume plugin answers only real directories: a subdot that is a symbolic link or a file is refused by Mount and Path, naming it; a normal subdot mounts and a missing one is made'
. "$(dirname "$0")/test-lib.sh"

if ! command -v curl >/dev/null; then
	test_skip_all 'needs curl'
fi

port=$(test_free_port)
data=$HOME/data
sock=$HOME/plugin.sock
export DM_CONFIG=$HOME/dmconf/config
test_atexit "dmd stop --data-dir '$data' >/dev/null 2>&1"

# plugin ENDPOINT BODY: the plugin's answer, as the container engine gets it.
plugin() {
	curl -s --unix-socket "$sock" -d "$2" "http://localhost/VolumeDriver.$1"
}

test_expect_success 'dmd serves the plugin; the dot has a working copy' '
	dm cluster init --data-dir data --port "$port" --plugin-socket "$sock" \
		--docker-socket none >out &&
	test -S "$sock" &&
	dm mount --create secret wc &&
	test -d wc/
'

test_expect_success 'a normal subdot mounts at its directory in the working copy' '
	mkdir wc/data && echo hi >wc/data/f &&
	plugin Mount "{\"Name\":\"secret.data\",\"ID\":\"m1\"}" >out &&
	path=$(python3 -c "import json,sys; print(json.load(sys.stdin)[\"Mountpoint\"])" <out) &&
	test "$(cat "$path/f")" = hi &&
	test -d "$path" && ! test -L "$path" &&
	plugin Path "{\"Name\":\"secret.data\"}" >out &&
	grep "\"Mountpoint\": *\"$path\"" out
'

test_expect_success 'a missing subdot is made as a directory' '
	plugin Mount "{\"Name\":\"secret.fresh\",\"ID\":\"m2\"}" >out &&
	grep "\"Mountpoint\": *\"[^\"]*/fresh\"" out &&
	test -d wc/fresh && ! test -L wc/fresh
'

test_expect_success 'a subdot that is a symbolic link to /etc is refused by Mount, naming it' '
	ln -s /etc wc/db &&
	plugin Mount "{\"Name\":\"secret.db\",\"ID\":\"m3\"}" >out &&
	grep "\"Err\": *\"subdot .db. of dot .secret. is a symbolic link, not a directory: dm will not mount it\"" out &&
	! grep Mountpoint out &&
	plugin Path "{\"Name\":\"secret.db\"}" >out &&
	! grep etc out &&
	test -L wc/db && test "$(readlink wc/db)" = /etc
'

test_expect_success 'a subdot swapped for a symbolic link after its Mount is refused by Path' '
	mv wc/data wc/data.moved && ln -s /etc wc/data &&
	plugin Path "{\"Name\":\"secret.data\"}" >out &&
	grep "\"Err\": *\"subdot .data. of dot .secret. is a symbolic link, not a directory: dm will not mount it\"" out &&
	! grep Mountpoint out &&
	rm wc/data && mv wc/data.moved wc/data &&
	plugin Path "{\"Name\":\"secret.data\"}" >out &&
	grep "\"Mountpoint\": *\"[^\"]*/data\"" out
'

test_expect_success 'a subdot that is a regular file is refused by Mount and Path, naming it' '
	echo not-a-dir >wc/notes &&
	plugin Mount "{\"Name\":\"secret.notes\",\"ID\":\"m4\"}" >out &&
	grep "\"Err\": *\"subdot .notes. of dot .secret. is a file, not a directory: dm will not mount it\"" out &&
	! grep Mountpoint out &&
	test "$(cat wc/notes)" = not-a-dir &&
	rm -r wc/fresh && echo now-a-file >wc/fresh &&
	plugin Path "{\"Name\":\"secret.fresh\"}" >out &&
	grep "\"Err\": *\"subdot .fresh. of dot .secret. is a file, not a directory: dm will not mount it\"" out
'

test_expect_success 'a refused Mount records no mount; unmounting the good ones works' '
	dm dot show --json secret >out &&
	! grep "secret.db" out && ! grep "secret.notes" out &&
	plugin Unmount "{\"Name\":\"secret.data\",\"ID\":\"m1\"}" >out &&
	! grep "\"Err\": *\"[^\"]" out &&
	plugin Path "{\"Name\":\"secret.data\"}" >out &&
	grep "\"Mountpoint\": *\"\"" out
'

test_done
