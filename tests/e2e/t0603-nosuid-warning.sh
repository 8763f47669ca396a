#!/usr/bin/env bash
test_description='dmd says at start, and dm dot show says, when the working copies are on a file system mounted without nosuid,nodev, and both are quiet when they are on one mounted with them'
. "$(dirname "$0")/test-lib.sh"

# Working copies hold files that anyone who may push chose: a setuid file or
# a device node on a file system without nosuid,nodev would serve whoever
# runs or opens it (README, "Security"). The btrfs pool's own mount options
# are checked in t0700. Needs root to mount a tmpfs.

if ! test_have_root; then
	test_skip_all 'needs root: it mounts a tmpfs with nosuid,nodev'
fi

export DM_CONFIG=$HOME/conf/config
test_atexit "dmd stop --data-dir '$HOME/plain' >/dev/null 2>&1; dmd stop --data-dir '$HOME/safe/data' >/dev/null 2>&1; umount -l '$HOME/safe' 2>/dev/null"

test_expect_success 'on a file system without nosuid,nodev: a warning naming what is missing' '
	awk -v d="$(stat -c %m "$HOME")" '\''$2 == d { print $4 }'\'' /proc/self/mounts >opts &&
	cat opts &&
	if grep -qE "(^|,)nosuid(,|$)" opts && grep -qE "(^|,)nodev(,|$)" opts; then
		echo "this directory is already nosuid,nodev: nothing to warn about here"
	else
		dm cluster init --data-dir "$HOME/plain" --port "$(test_free_port)" --no-plugin >/dev/null &&
		grep "warn the working copies in .*$HOME/plain/dots.* are on a file system mounted without.*: mount the data directory.s file system nosuid,nodev" "$HOME/plain/dmd.log" &&
		dm init shop &&
		dm dot show shop >show.out 2>show.err &&
		grep "^dm: warning: the working copies in .* are on a file system mounted without" show.err &&
		! grep "mounted without" show.out &&
		dm cluster stop --data-dir "$HOME/plain" >/dev/null
	fi
'

test_expect_success 'on a file system mounted nosuid,nodev: no warning' '
	mkdir safe &&
	mount -t tmpfs -o nosuid,nodev,size=64m dmtest "$HOME/safe" &&
	dm cluster init --data-dir "$HOME/safe/data" --port "$(test_free_port)" --no-plugin >/dev/null &&
	dm init shop2 &&
	grep "dmd .* serving" "$HOME/safe/data/dmd.log" &&
	! grep "mounted without" "$HOME/safe/data/dmd.log" &&
	dm dot show shop2 >show2.out 2>show2.err &&
	! grep "mounted without" show2.err &&
	dm cluster stop --data-dir "$HOME/safe/data" >/dev/null &&
	umount "$HOME/safe"
'

test_done
