#!/usr/bin/env bash
test_description='a directory round-trips through the store: 10,000 files, holes, symlinks, empty dirs, modes, owners, mtimes and odd names come back identical'
. "$(dirname "$0")/test-lib.sh"

command -v dm-store-tool >/dev/null || test_skip_all "dm-store-tool is not built in $DM_BUILD_DIR"
command -v python3 >/dev/null || test_skip_all 'needs python3'

tool() {
	dm-store-tool --store "$TRASH_DIRECTORY/store" "$@"
}

# listing DIR: every entry below DIR (not DIR itself), one record each,
# NUL-separated and sorted so names with newlines stay whole: type, mode,
# owner, size (not for directories, whose size depends on their history),
# mtime in ns and link target.
listing() {
	(
		cd "$1" &&
		{
			find . -mindepth 1 ! -type d -printf '%y %m %U:%G %s %T@ %p -> %l\0'
			find . -mindepth 1 -type d -printf '%y %m %U:%G - %T@ %p\0'
		} | sort -z | tr '\0' '\n'
	)
}

# sums DIR: sha256 of every regular file, by path.
sums() {
	(cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
}

# holes FILE: prints "hole-at-0 <first data offset> <blocks>" for FILE.
holes() {
	python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
st = os.fstat(fd)
print(os.lseek(fd, 0, os.SEEK_HOLE) == 0, os.lseek(fd, 0, os.SEEK_DATA), st.st_blocks)
' "$1"
}

test_expect_success 'make a source tree: 10,000 files and every odd case' '
	mkdir src &&
	python3 - <<-\EOF &&
	import os, random
	rnd = random.Random(42)
	base = rnd.randbytes(1 << 20)
	for d in range(100):
	    os.makedirs("src/data/d%02d" % d)
	    for f in range(100):
	        n = d * 100 + f
	        size = (n * 7919) % 20000 if n % 10 else 0
	        at = (n * 104729) % (len(base) - size)
	        with open("src/data/d%02d/f%03d" % (d, f), "wb") as fh:
	            fh.write(base[at:at + size])
	open("src/big", "wb").write(rnd.randbytes(3 << 20))
	EOF
	truncate -s 200M src/sparse &&
	printf "first island" | dd of=src/sparse bs=1 seek=20000000 conv=notrunc 2>/dev/null &&
	printf "second island" | dd of=src/sparse bs=1 seek=150000000 conv=notrunc 2>/dev/null &&
	truncate -s 5M src/all-hole &&
	echo "spaces" >"src/name with spaces" &&
	echo "unicode" >"src/été ☃ 日本" &&
	echo "newline" >"src/new
line" &&
	echo "tab" >"src/tab	name" &&
	echo "backslash" >"src/back\\slash" &&
	echo "dash" >src/-dash &&
	mkdir -p src/empty/nested-empty src/sticky src/closed src/sgid &&
	ln -s data/d01/f001 src/link &&
	ln -s "../nowhere at all" src/dangling &&
	ln -s /etc/passwd src/absolute &&
	ln -s data src/dirlink &&
	echo secret >src/zero && chmod 0000 src/zero &&
	echo suid >src/suid && chmod 4755 src/suid &&
	chmod 1777 src/sticky && chmod 2755 src/sgid &&
	ln src/big src/big-hardlink &&
	echo ro >src/closed/inside && chmod 0500 src/closed &&
	if test_have_root
	then
		chown 12345:54321 src/data/d07/f042 &&
		chown 1001:1002 src/suid && chmod 4755 src/suid &&
		chown -h 777:888 src/link &&
		chown 4242:4343 src/data/d03 &&
		chown 65534:65534 src/empty/nested-empty
	fi &&
	touch -h -d "2001-02-03 04:05:06.123456789" src/link src/dangling src/big &&
	touch -d "1999-12-31 23:59:59.999999999" src/data/d05/f005 src/sparse &&
	touch -d "2010-06-07 08:09:10.5" src/empty/nested-empty src/empty src/data/d09 &&
	test $(find src -type f | wc -l) -ge 10000
'

test_expect_success 'commit prints a tree id and counts what it stored' '
	tool commit src >id 2>err &&
	test $(wc -c <id) = 65 &&
	grep "^commit: files: 10013, dirs: 107, symlinks: 4, hashed: 10013," err
'

test_expect_success 'committing the unchanged tree again gives the same id; once older than the racy window, it reads nothing' '
	sleep 2 &&
	tool commit src >id2 2>err2 &&
	test_cmp id id2 &&
	tool commit src >id3 2>err3 &&
	test_cmp id id3 &&
	grep "hashed: 0, " err3
'

test_expect_success 'a changed file is the only one read again, and changes the id' '
	echo changed >>src/data/d50/f050 &&
	tool commit src >id4 2>err4 &&
	grep "hashed: 1, " err4 &&
	! test_cmp id id4 >/dev/null
'

test_expect_success 'restore the source as it was first committed' '
	rm -rf src-orig &&
	tool checkout "$(cat id)" src-orig &&
	tool commit src-orig >id7 &&
	test_cmp id id7
'

test_expect_success 'checkout restores content, modes, owners, mtimes, links and holes' '
	tool checkout "$(cat id)" dst 2>err &&
	grep "^checkout: written: 10013, kept: 0, removed: 0" err &&
	listing src-orig >expect &&
	listing dst >actual &&
	test_cmp expect actual &&
	diff -r --no-dereference src-orig dst &&
	sums src-orig >sums.expect &&
	sums dst >sums.actual &&
	test_cmp sums.expect sums.actual &&
	holes dst/sparse >holes.actual &&
	read hole0 first blocks <holes.actual &&
	test "$hole0" = True &&
	test "$first" -ge 19000000 &&
	test "$blocks" -le 64 &&
	test $(stat -c %b dst/all-hole) = 0 &&
	test $(stat -c %h dst/big) = 1 &&
	test $(stat -c %a dst/suid) = 4755 &&
	test $(stat -c %a dst/zero) = 0 &&
	test $(stat -c %a dst/sticky) = 1777 &&
	test "$(readlink dst/absolute)" = /etc/passwd
'

test_expect_success ROOT 'owners come back (as root)' '
	test "$(stat -c %u:%g dst/data/d07/f042)" = 12345:54321 &&
	test "$(stat -c %u:%g dst/suid)" = 1001:1002 &&
	test "$(stat -c %u:%g dst/link)" = 777:888 &&
	test "$(stat -c %u:%g dst/data/d03)" = 4242:4343 &&
	test "$(stat -c %u:%g dst/empty/nested-empty)" = 65534:65534
'

test_expect_success 'the checked-out copy commits to the same tree id' '
	tool commit dst >id-dst &&
	test_cmp id id-dst
'

test_expect_success 'checking out again rewrites nothing: inodes and ctimes stay' '
	(cd dst && find . -printf "%i %C@ %p\0" | sort -z | tr "\0" "\n") >inodes.before &&
	tool checkout "$(cat id)" dst 2>err &&
	grep "^checkout: written: 0, kept: 10013, removed: 0" err &&
	(cd dst && find . -printf "%i %C@ %p\0" | sort -z | tr "\0" "\n") >inodes.after &&
	test_cmp inodes.before inodes.after
'

test_expect_success 'checkout removes extras and fixes what changed' '
	echo extra >dst/extra &&
	mkdir -p dst/extradir/x && echo y >dst/extradir/x/y &&
	echo different >dst/data/d10/f010 &&
	chmod 0600 dst/name\ with\ spaces &&
	rm dst/link && ln -s elsewhere dst/link &&
	tool checkout "$(cat id)" dst 2>err &&
	grep "removed: 3" err &&
	listing dst >actual &&
	test_cmp expect actual &&
	diff -r --no-dereference src-orig dst
'

test_expect_success 'a symlink where a directory belongs is replaced, and nothing is written through it' '
	mkdir outside &&
	echo precious >outside/f000 &&
	(cd outside && find . -printf "%i %C@ %T@ %s %p\n" | sort) >outside.before &&
	sums outside >outside.sums.before &&
	rm -rf dst/data/d00 &&
	ln -s "$TRASH_DIRECTORY/outside" dst/data/d00 &&
	tool checkout "$(cat id)" dst &&
	test -d dst/data/d00 && ! test -L dst/data/d00 &&
	(cd outside && find . -printf "%i %C@ %T@ %s %p\n" | sort) >outside.after &&
	test_cmp outside.before outside.after &&
	sums outside >outside.sums.after &&
	test_cmp outside.sums.before outside.sums.after &&
	listing dst >actual &&
	test_cmp expect actual
'

test_expect_success 'ls lists every entry, with escaped names' '
	tool ls "$(cat id)" >ls &&
	test $(wc -l <ls) = $(find src-orig -mindepth 1 -printf x | wc -c) &&
	grep -F " new\\nline" ls &&
	grep -F " tab\\tname" ls &&
	grep -F " back\\\\slash" ls &&
	grep "^symlink 0777 .* absolute -> /etc/passwd$" ls &&
	grep "^file 4755 .* suid$" ls &&
	grep "^file 0644 .* 209715200 .* sparse$" ls
'

test_expect_success 'verify passes' '
	tool verify >out &&
	grep "^ok: [0-9]* objects, [0-9]* bytes$" out &&
	tool stats >stats &&
	test $(sed -n "s/^trees: //p" stats) -ge 107 &&
	test $(sed -n "s/^files: //p" stats) -ge 2
'

test_expect_success 'a corrupted pack byte makes verify fail' '
	cp -a store store-good &&
	pack=$(ls store/packs/*.pack | head -n 1) &&
	python3 -c "
import os, sys
p = sys.argv[1]
size = os.path.getsize(p)
with open(p, \"r+b\") as f:
    f.seek(size // 2)
    b = f.read(1)
    f.seek(size // 2)
    f.write(bytes([b[0] ^ 0x55]))
" "$pack" &&
	test_must_fail tool verify >out 2>err &&
	grep "^dm-store-tool: " err &&
	! grep "^ok:" out &&
	rm -rf store &&
	mv store-good store &&
	tool verify
'

test_expect_success 'fifos, sockets and devices are refused with their path' '
	mkdir -p special/sub &&
	mkfifo special/sub/pipe &&
	test_must_fail tool commit special 2>err &&
	grep "^dm-store-tool: cannot commit '\''sub/pipe'\'': fifos are not supported$" err
'

test_expect_success 'errors are one line with a status from the error table' '
	test_must_fail tool checkout 0000000000000000000000000000000000000000000000000000000000000000 x 2>err &&
	test $(wc -l <err) = 1 &&
	grep "^dm-store-tool: " err &&
	test_must_fail tool ls nonsense 2>err &&
	grep "^dm-store-tool: .nonsense. is not an object id" err &&
	test_must_fail tool frobnicate 2>err &&
	grep "unknown command" err
'

test_done
