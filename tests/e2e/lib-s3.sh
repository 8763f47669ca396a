# shellcheck shell=bash
# lib-s3.sh - a real S3 server on loopback for the S3 scenarios (t112x):
# moto_server (which comes with this project's machine image, beside boto3
# and aws-cli; PyPI is not reachable and Debian has no moto), with its IAM
# authentication on, so that it checks every request's SigV4 signature
# against a key it issued. Source it after test-lib.sh, then call
# s3_server_start.
#
# Always true once s3_server_start returned 0:
#   - $s3_endpoint (http://127.0.0.1:PORT) answers S3 requests, and only
#     those signed with $s3_key_id and $s3_secret (an IAM user allowed
#     everything; AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are exported
#     as them, for s3c);
#   - the server is stopped when the script ends, however it ends.
#
# s3c COMMAND ARGS...: tests/e2e/s3-client.py against the server (boto3, a
# client other than dm): mb, put, ls, cat, rm.

s3c() {
	python3 "$TEST_DIRECTORY/s3-client.py" "$s3_endpoint" "$@"
}

s3_server_start() {
	local port i

	if ! command -v moto_server >/dev/null 2>&1 ||
		! python3 -c 'import boto3' 2>/dev/null; then
		echo "lib-s3.sh: moto_server and python3's boto3 are needed (this machine image has them)" >&2
		return 1
	fi
	port=$(test_free_port)
	s3_endpoint=http://127.0.0.1:$port
	# the first 3 requests (s3-client.py user) make the IAM user
	INITIAL_NO_AUTH_ACTION_COUNT=3 moto_server -H 127.0.0.1 -p "$port" \
		>"$HOME/moto.log" 2>&1 &
	test_atexit "kill $! 2>/dev/null"
	for i in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.1
	done
	# shellcheck disable=SC2034
	read -r s3_key_id s3_secret < <(s3c user) || return 1
	[ -n "$s3_secret" ] || return 1
	export AWS_ACCESS_KEY_ID=$s3_key_id AWS_SECRET_ACCESS_KEY=$s3_secret
}
