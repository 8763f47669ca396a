# shellcheck shell=bash
# lib-s3.sh - dotmesh's S3 paths with curl, for the t110x scripts. Source
# it after lib-servers.sh, once servers_init has started server A.
#
#	s3 USER METHOD PATH [CURL_ARGS...]: a request to server A's
#	https://127.0.0.1:PORT/s3/PATH as USER (the admin's key, or the one
#	in USER.key); prints the body and writes the HTTP status into
#	./status and the answer's headers into ./headers.
#	snapshot_header: the Snapshot header of the last answer.

s3() {
	local user=$1 method=$2 path=$3 key
	shift 3
	if [ "$user" = admin ]; then key=$(cat "$HOME/A/admin-api-key"); else key=$(cat "$user.key"); fi
	curl -sS --max-time 120 --cacert "$HOME/A/ca.pem" -u "$user:$key" -X "$method" \
		-D headers -o body -w '%{http_code}' "$@" \
		"https://127.0.0.1:$(server_port A)/s3/$path" >status || return 1
	cat body
}

# A HEAD request (curl -I; -X HEAD would wait for a body).
s3_head() {
	local user=$1 path=$2 key
	if [ "$user" = admin ]; then key=$(cat "$HOME/A/admin-api-key"); else key=$(cat "$user.key"); fi
	curl -sS --max-time 60 --cacert "$HOME/A/ca.pem" -u "$user:$key" -I \
		-o headers -w '%{http_code}' "https://127.0.0.1:$(server_port A)/s3/$path" >status
}

snapshot_header() {
	tr -d '\r' <headers | sed -n 's/^[Ss]napshot: //p'
}

# status_is CODE: the last request answered CODE.
status_is() {
	test "$(cat status)" = "$1" || {
		echo "status $(cat status), wanted $1; body:" >&2
		cat body >&2 2>/dev/null
		return 1
	}
}

# evil_tar OUT KIND: a tar with one entry that must be refused: KIND
# "dotdot" (../escaped.txt), "absolute" (/tmp/...), "symlink" (a link to
# /etc) or "device" (a character device).
evil_tar() {
	python3 - "$1" "$2" <<-\PY
	import io, sys, tarfile
	out, kind = sys.argv[1], sys.argv[2]
	with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
	    ok = tarfile.TarInfo("fine.txt")
	    ok.size = 3
	    t.addfile(ok, io.BytesIO(b"ok\n"))
	    if kind == "dotdot":
	        i = tarfile.TarInfo("sub/../../escaped.txt")
	    elif kind == "absolute":
	        i = tarfile.TarInfo("/escaped-absolute.txt")
	    elif kind == "symlink":
	        i = tarfile.TarInfo("link")
	        i.type = tarfile.SYMTYPE
	        i.linkname = "/etc"
	    else:
	        i = tarfile.TarInfo("dev")
	        i.type = tarfile.CHRTYPE
	    data = b"bad\n" if i.type == tarfile.REGTYPE else b""
	    i.size = len(data)
	    t.addfile(i, io.BytesIO(data))
	PY
}
