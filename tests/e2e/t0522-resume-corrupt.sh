#!/usr/bin/env bash
test_description='a push resumes after a SIGKILL of the receiver, moving only what is missing; a corrupt object is refused and nothing of it is stored'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"

# What this proves: every batch a receiver acknowledged is durable and
# complete, so after the receiving dmd is killed with SIGKILL two thirds
# into a push of incompressible data and started again, the same push
# sends less than half of the data, and the result is whole (a clone of it
# elsewhere has the same bytes). And a put whose record does not hash to
# its id, or does not decompress, is refused with "corrupt" while nothing
# of the bad object becomes visible (the store answers it missing, and
# verifies clean).
#
# The size (DM_TEST_RESUME_MB, default 300) must be large enough that the
# push takes a few tenths of a second at least; the killer polls every 20 ms.

unset DM_API_KEY
resume_mb=${DM_TEST_RESUME_MB:-300}

test_expect_success 'setup: dmds A, B and C; on A a dot of incompressible data' '
	servers_init A B C &&
	dmA init big &&
	dmA mount big bigA &&
	mkdir bigA/d &&
	for i in 1 2 3 4 5 6; do
		head -c $((resume_mb * 1024 * 1024 / 6)) /dev/urandom >bigA/d/part$i || return 1
	done &&
	echo small >bigA/small &&
	dmA commit --dot big -m data >/dev/null
'

test_expect_success PYTHON 'SIGKILL of the receiver two thirds into a push fails the push' '
	{ { dmA push b big >out1 2>err1; echo $? >rc1; } & } &&
	python3 - "$port_A" "$(cat A/admin-api-key)" B/dmd.pid 0.67 >killed <<-\EOF &&
	import base64, json, os, ssl, sys, time, urllib.request
	port, key, pidfile, frac = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
	auth = base64.b64encode(("admin:" + key).encode()).decode()
	def newest():
	    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "transfers.list",
	                       "params": {}}).encode()
	    req = urllib.request.Request("https://127.0.0.1:%s/rpc" % port, body,
	                                 {"Authorization": "Basic " + auth,
	                                  "Content-Type": "application/json"})
	    ctx = ssl.create_default_context(cafile="A/ca.pem")
	    t = json.load(urllib.request.urlopen(req, timeout=10, context=ctx))["result"]["transfers"]
	    return t[0] if t else None
	deadline = time.time() + 300
	while time.time() < deadline:
	    t = newest()
	    if t and t["direction"] == "push" and t["dot"] == "big":
	        if t["state"] in ("done", "failed"):
	            sys.exit("the push ended (%s) before it could be killed: %s" % (t["state"], t))
	        if t["state"] == "sending" and t["wire_bytes"] >= frac * t["bytes_total"] > 0:
	            os.kill(int(open(pidfile).read()), 9)
	            print(t["wire_bytes"], t["bytes_total"])
	            sys.exit(0)
	    time.sleep(0.02)
	sys.exit("no push of big passed %.0f%% within 300 s" % (100 * frac))
	EOF
	wait &&
	cat killed err1 &&
	read -r wkill total <killed &&
	if [ "$wkill" -ge "$total" ]; then
		echo "all data had moved before the kill: raise DM_TEST_RESUME_MB" && false
	fi &&
	test "$(cat rc1)" != 0 && grep "^dm: " err1 &&
	last_transfer A >t1.json && test "$(transfer_field state <t1.json)" = failed
'

test_expect_success 'the killed receiver'\''s store verifies clean, and B starts again' '
	dm-store-tool --store B/store --quiet verify >verify.out &&
	server_start B &&
	dmB list >/dev/null &&
	test_must_fail dmB dot show big
'

test_expect_success 'the same push again moves less than half the data, and completes' '
	dmA push b big >out2 &&
	grep "pushed 1 commit" out2 &&
	last_transfer A >t2.json &&
	total=$(transfer_field bytes_total <t1.json) &&
	w1=$(transfer_field wire_bytes <t1.json) &&
	w2=$(transfer_field wire_bytes <t2.json) &&
	echo "data $total bytes; first run: $w1 bytes on the wire; second run: $w2" &&
	test "$total" -ge $((resume_mb * 1000 * 1000)) &&
	test "$w2" -gt 0 &&
	test $((2 * w2)) -lt "$total" &&
	test $((4 * (w1 + w2))) -le $((5 * total)) &&
	log_ids dmA log --dot big >expect && log_ids dmB log --dot big >actual &&
	test_cmp expect actual
'

test_expect_success 'a clone of the result elsewhere has exactly the same content' '
	dmC clone b big >/dev/null &&
	dmC mount big bigC &&
	diff -r bigA/ bigC/
'

# put_stream FILE SPEC...: writes a record stream; each SPEC is
# good:TEXT (a chunk of TEXT under its true id), badid:TEXT (a chunk of
# TEXT under the id of TEXT.x), badzstd:TEXT (flagged as zstd, but the
# bytes are TEXT), badlen:TEXT (raw_len one more than TEXT).
put_stream() {
	python3 - "$@" <<-\EOF
	import hashlib, struct, sys
	out = open(sys.argv[1], "wb")
	for spec in sys.argv[2:]:
	    kind, text = spec.split(":", 1)
	    data = text.encode()
	    oid = hashlib.sha256(data).digest()
	    flags, raw_len = 0, len(data)
	    if kind == "badid":
	        oid = hashlib.sha256(data + b".x").digest()
	    elif kind == "badzstd":
	        flags = 1
	    elif kind == "badlen":
	        raw_len += 1
	    out.write(struct.pack("<BBHII", 1, flags, 0, raw_len, len(data)) + oid + data)
	EOF
}

# oid_file FILE TEXT...: the ids (sha256, raw) of each TEXT, concatenated.
oid_file() {
	python3 - "$@" <<-\EOF
	import hashlib, sys
	with open(sys.argv[1], "wb") as f:
	    for t in sys.argv[2:]:
	        f.write(hashlib.sha256(t.encode()).digest())
	EOF
}

# objects_post ENDPOINT FILE OUT: POSTs FILE to B's /objects/v1/ENDPOINT as
# B's admin; the body in OUT; prints the HTTP status.
objects_post() {
	curl -sS --max-time 30 --cacert B/ca.pem -u "admin:$(cat B/admin-api-key)" -o "$3" -w '%{http_code}' \
		-H 'Content-Type: application/octet-stream' --data-binary "@$2" \
		"https://127.0.0.1:$port_B/objects/v1/$1"
}

test_expect_success PYTHON 'a well-formed put is stored (the check the next tests rely on)' '
	put_stream good.rec "good:a chunk that is what it says, $$" &&
	status=$(objects_post put good.rec resp) &&
	test "$status" = 200 && grep "\"stored\": *1" resp &&
	oid_file good.ids "a chunk that is what it says, $$" &&
	status=$(objects_post missing good.ids missing.out) &&
	test "$status" = 200 && test ! -s missing.out
'

test_expect_success PYTHON 'a record whose bytes do not hash to its id is refused: corrupt, not stored' '
	put_stream bad.rec "badid:forged content $$" &&
	status=$(objects_post put bad.rec resp) &&
	cat resp && echo && echo "HTTP $status" &&
	test "$status" -ge 400 &&
	grep -i "corrupt" resp &&
	python3 - bad.ids "forged content $$" <<-\EOF &&
	import hashlib, sys
	t = sys.argv[2].encode()
	open(sys.argv[1], "wb").write(hashlib.sha256(t + b".x").digest() + hashlib.sha256(t).digest())
	EOF
	status=$(objects_post missing bad.ids missing.out) &&
	test "$status" = 200 && cmp bad.ids missing.out
'

test_expect_success PYTHON 'a record flagged zstd that is no zstd frame, or with a wrong length, is refused' '
	put_stream bad2.rec "badzstd:not a zstd frame $$" &&
	status=$(objects_post put bad2.rec resp) &&
	test "$status" -ge 400 && grep -i "corrupt" resp &&
	put_stream bad3.rec "badlen:a short chunk $$" &&
	status=$(objects_post put bad3.rec resp) &&
	test "$status" -ge 400 && grep -i "corrupt" resp &&
	oid_file bad23.ids "not a zstd frame $$" "a short chunk $$" &&
	status=$(objects_post missing bad23.ids missing.out) &&
	test "$status" = 200 && cmp bad23.ids missing.out
'

test_expect_success PYTHON 'in a stream, records before the bad one are kept, the bad one and the rest are not' '
	put_stream mixed.rec "good:first good $$" "badid:forged again $$" "good:after the bad one $$" &&
	status=$(objects_post put mixed.rec resp) &&
	test "$status" -ge 400 && grep -i "corrupt" resp &&
	oid_file first.ids "first good $$" &&
	status=$(objects_post missing first.ids missing.out) && test ! -s missing.out &&
	oid_file rest.ids "forged again $$" "forged again $$.x" "after the bad one $$" &&
	status=$(objects_post missing rest.ids missing.out) && cmp rest.ids missing.out
'

test_expect_success 'the receiving store verifies clean after all that' '
	server_stop B &&
	dm-store-tool --store B/store --quiet verify >verify.out &&
	server_start B &&
	dmB list >/dev/null
'

test_done
