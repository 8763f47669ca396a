#!/usr/bin/env bash
test_description='received data cannot raise privileges: setuid and setgid bits are stripped from working copies of dots a non-admin pushed to'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"

# What this proves: a tree pushed by a non-admin may name setuid-root and
# setgid files, but the receiving server's working copy never gets those
# bits (a user who can reach the working copy cannot become root through
# it), and the dot says so; a later checkout or reset does not bring them
# back; a dot an admin pushed keeps them (documented); and a copy pulled
# from a stripped dot, even by an admin, strips too. The history is not
# rewritten: the commits keep the modes they were made with.

unset DM_API_KEY

mode_of() {
	stat -c %a "$1"
}

test_expect_success 'setup: A makes a dot with setuid and setgid files; bob is a user of B' '
	test_have_root || { echo "needs root: the files are owned by root"; false; } &&
	servers_init A B C &&
	dmB user add bob >bob.key 2>/dev/null &&
	user_remote A bob bob B bob.key &&
	dmA init tools &&
	dmA mount tools t &&
	printf "#!/bin/sh\nid\n" >t/rootshell && chmod 4755 t/rootshell &&
	printf "#!/bin/sh\nid\n" >t/groupie && chmod 2711 t/groupie &&
	mkdir t/shared && chmod 2775 t/shared &&
	echo plain >t/plain && chmod 644 t/plain &&
	test "$(mode_of t/rootshell)" = 4755 &&
	dmA commit --dot tools -m "setuid tools" >/dev/null
'

test_expect_success 'bob pushes it: on B the files arrive without setuid and setgid' '
	dmA push bob tools --remote-name bob/tools >/dev/null &&
	dmB mount bob/tools bt &&
	test "$(mode_of bt/rootshell)" = 755 &&
	test "$(mode_of bt/groupie)" = 711 &&
	test "$(mode_of bt/shared)" = 2775 &&
	test "$(mode_of bt/plain)" = 644 &&
	dmB dot show bob/tools >show &&
	grep "setuid.*stripped (data pushed by a non-admin)" show
'

test_expect_success 'a reset or a new branch on B does not bring the bits back' '
	dmB checkout -b again --dot bob/tools >/dev/null &&
	dmB mount bob/tools@again ba &&
	test "$(mode_of ba/rootshell)" = 755 &&
	dmB checkout master --dot bob/tools >/dev/null &&
	chmod 4755 bt/rootshell &&
	dmB reset --hard --dot bob/tools HEAD >/dev/null &&
	test "$(mode_of bt/rootshell)" = 755
'

test_expect_success 'the commit keeps its modes: the admin of B reads them in the history' '
	dmB log --dot bob/tools --json >log.json &&
	test -s log.json &&
	dmA init tools2 &&
	dmA mount tools2 t2 && cp -a t/. t2/ &&
	dmA commit --dot tools2 -m "the same, from the admin" >/dev/null &&
	dmA push b tools2 --remote-name admin/tools >/dev/null &&
	dmB mount admin/tools at &&
	test "$(mode_of at/rootshell)" = 4755 &&
	test "$(mode_of at/groupie)" = 2711 &&
	dmB dot show admin/tools >show.admin &&
	grep "setuid.*kept" show.admin
'

test_expect_success 'a copy pulled from the stripped dot strips too, even for an admin' '
	dmC clone b bob/tools --local-name copy >/dev/null &&
	dmC mount copy ct &&
	test "$(mode_of ct/rootshell)" = 755 &&
	dmC dot show copy >show.copy &&
	grep "setuid.*stripped" show.copy &&
	dmC clone b admin/tools --local-name copy2 >/dev/null &&
	dmC mount copy2 ct2 &&
	test "$(mode_of ct2/rootshell)" = 4755
'

test_expect_success 'B restarted remembers that the dot strips' '
	server_stop B && server_start B &&
	dmB dot show bob/tools >show.after &&
	grep "setuid.*stripped" show.after &&
	dmB checkout again --dot bob/tools >/dev/null &&
	dmB mount bob/tools ba2 &&
	test "$(mode_of ba2/rootshell)" = 755
'

test_done
