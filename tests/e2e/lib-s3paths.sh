# shellcheck shell=bash
# lib-s3paths.sh - dotmesh's S3 paths with curl, for the t110x scripts. Source
# it after lib-servers.sh (or lib-cluster.sh), once server A (or the node
# named by $s3_on) runs.
#
#	s3 USER METHOD PATH [CURL_ARGS...]: a request to the server's
#	https://127.0.0.1:PORT/s3/PATH as USER (its admin's key, or the one
#	in USER.key); prints the body and writes the HTTP status into
#	./status and the answer's headers into ./headers.
#	s3_head USER PATH: the same for a HEAD request.
#	snapshot_header: the Snapshot header of the last answer.
#	status_is CODE: the last request answered CODE.

# the server the requests go to: its data directory is $HOME/$s3_on, its
# port $port_<s3_on>
s3_on=${s3_on:-A}

s3_key() {
	if [ "$1" = admin ]; then cat "$HOME/$s3_on/admin-api-key"; else cat "$1.key"; fi
}

s3_url() {
	echo "https://127.0.0.1:$(eval "echo \$port_$s3_on")/s3/$1"
}

s3() {
	local user=$1 method=$2 path=$3
	shift 3
	curl -sS --max-time 120 --cacert "$HOME/$s3_on/ca.pem" -u "$user:$(s3_key "$user")" \
		-X "$method" -D headers -o body -w '%{http_code}' "$@" "$(s3_url "$path")" \
		>status || return 1
	cat body
}

# curl -I: -X HEAD would wait for a body
s3_head() {
	curl -sS --max-time 60 --cacert "$HOME/$s3_on/ca.pem" -u "$1:$(s3_key "$1")" -I \
		-o headers -w '%{http_code}' "$(s3_url "$2")" >status
}

snapshot_header() {
	tr -d '\r' <headers | sed -n 's/^[Ss]napshot: //p'
}

status_is() {
	test "$(cat status)" = "$1" || {
		echo "status $(cat status), wanted $1; body:" >&2
		cat body >&2 2>/dev/null
		return 1
	}
}

# evil_tar OUT KIND: a tar with one entry that must be refused: KIND
# "dotdot" (../escaped.txt), "absolute" (/tmp/...), "symlink" (a link to
# /etc), "hardlink" (a hard link to /etc/passwd) or "device" (a character
# device).
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
	    elif kind == "hardlink":
	        i = tarfile.TarInfo("hard")
	        i.type = tarfile.LNKTYPE
	        i.linkname = "/etc/passwd"
	    else:
	        i = tarfile.TarInfo("dev")
	        i.type = tarfile.CHRTYPE
	    data = b"bad\n" if i.type == tarfile.REGTYPE else b""
	    i.size = len(data)
	    t.addfile(i, io.BytesIO(data))
	PY
}
