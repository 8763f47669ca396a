# shellcheck shell=bash
# lib-sparse.sh - sparse files with known content, and their exact state,
# for the scripts that check writes in place (t038x). Source it after
# test-lib.sh.
#
# A range is OFF:LEN:SEED, with OFF and LEN in bytes or with a K or M
# suffix (KiB, MiB): LEN bytes that only SEED decides, written at OFF.
#
#   sparse_write FILE SIZE RANGE...  FILE (replaced) SIZE bytes long, holes
#                                    but for the ranges
#   sparse_patch FILE RANGE...       the ranges written into FILE as it is
#   data_map FILE                    its data regions (SEEK_DATA/SEEK_HOLE),
#                                    "start-end start-end ..."
#   file_state DIR                   one line per entry under DIR, sorted:
#                                    path, type, size, mode, uid, gid,
#                                    mtime in ns, SHA-256 and data map of a
#                                    file (not its inode, not its ctime)

sparse_py_() {
	python3 - "$@" <<-\EOF
	import hashlib, os, random, stat, sys

	def num(s):
	    mult = {"K": 1024, "M": 1024 * 1024}.get(s[-1:], 1)
	    return int(s[:-1] if mult > 1 else s) * mult

	def put(fd, spec):
	    off, length, seed = spec.split(":")
	    os.pwrite(fd, random.Random(int(seed)).randbytes(num(length)), num(off))

	def data_map(path):
	    out = []
	    fd = os.open(path, os.O_RDONLY)
	    size, pos = os.fstat(fd).st_size, 0
	    while pos < size:
	        try:
	            d = os.lseek(fd, pos, os.SEEK_DATA)
	        except OSError:
	            break
	        h = os.lseek(fd, d, os.SEEK_HOLE)
	        out.append("%d-%d" % (d, h))
	        pos = h
	    os.close(fd)
	    return " ".join(out) or "-"

	cmd, args = sys.argv[1], sys.argv[2:]
	if cmd == "write":
	    if os.path.lexists(args[0]):
	        os.unlink(args[0])
	    fd = os.open(args[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
	    for spec in args[2:]:
	        put(fd, spec)
	    os.ftruncate(fd, num(args[1]))
	    os.close(fd)
	elif cmd == "patch":
	    fd = os.open(args[0], os.O_WRONLY)
	    for spec in args[1:]:
	        put(fd, spec)
	    os.close(fd)
	elif cmd == "map":
	    print(data_map(args[0]))
	elif cmd == "state":
	    top = args[0]
	    for root, dirs, files in os.walk(top):
	        dirs.sort()
	        for name in sorted(dirs + files):
	            p = os.path.join(root, name)
	            st = os.lstat(p)
	            line = [os.path.relpath(p, top), stat.filemode(st.st_mode), str(st.st_size),
	                    "%o" % stat.S_IMODE(st.st_mode), str(st.st_uid), str(st.st_gid),
	                    str(st.st_mtime_ns)]
	            if stat.S_ISREG(st.st_mode):
	                with open(p, "rb") as f:
	                    line.append(hashlib.sha256(f.read()).hexdigest())
	                line.append(data_map(p))
	            print(" ".join(line))
	EOF
}

sparse_write() {
	sparse_py_ write "$@"
}

sparse_patch() {
	sparse_py_ patch "$@"
}

data_map() {
	sparse_py_ map "$1"
}

file_state() {
	sparse_py_ state "$1"
}
