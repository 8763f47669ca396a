# shellcheck shell=bash
# lib-metrics.sh - reading a dmd's GET /metrics in the t120x scripts.
# Source it after lib-servers.sh (the servers are its).
#
#	scrape NAME [CURL_ARGS...]  GET /metrics of server NAME as its admin
#	                            (CURL_ARGS replace the credentials: pass
#	                            -u user:key, or nothing with --no-auth);
#	                            the body goes to stdout, the HTTP status to
#	                            ./status
#	metric FILE SERIES          the value of SERIES (the text before the
#	                            value, labels included) in FILE, 0 when absent

scrape() {
	local n=$1 auth

	shift
	auth=(-u "admin:$(cat "$HOME/$n/admin-api-key")")
	if [ "${1:-}" = --no-auth ]; then
		auth=()
		shift
	elif [ $# -gt 0 ]; then
		auth=("$@")
	fi
	curl -sS --max-time 30 --cacert "$HOME/$n/ca.pem" "${auth[@]}" -o scrape.out \
		-w '%{http_code}\n' "https://127.0.0.1:$(server_port "$n")/metrics" >status &&
	cat scrape.out
}

metric() {
	awk -v s="$2" 'substr($0, 1, length(s) + 1) == s " " { v = $2 } END { print v == "" ? 0 : v }' "$1"
}
