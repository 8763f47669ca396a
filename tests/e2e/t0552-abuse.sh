#!/usr/bin/env bash
test_description='abuse does not stop dmd: hundreds of half-sent connections from one address leave /healthz and dm list answering within a second, are cut at their deadline and logged once; the log is rotated and stays under its cap'
. "$(dirname "$0")/test-lib.sh"

# until_file SECS FILE: waits up to SECS seconds for FILE
until_file() {
	for _ in $(seq $(($1 * 5))); do
		test -e "$2" && return 0
		sleep 0.2
	done
	echo "no $2 after $1 s" >&2
	return 1
}

# how long CMD... takes, in ms (it must succeed)
ms_of() {
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null || return 1
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}

test_expect_success 'setup: a server logging at debug level, its log rotated at 16 KiB' '
	port=$(test_free_port) &&
	dm cluster init --no-plugin --data-dir "$HOME/D" --port $port >/dev/null &&
	test_atexit "dmd stop --data-dir $HOME/D >/dev/null 2>&1" &&
	dmd stop --data-dir "$HOME/D" >/dev/null &&
	DM_LOG_MAX=16K dmd start --data-dir "$HOME/D" --no-plugin --log-level debug >/dev/null &&
	dm list >/dev/null
'

test_expect_success '400 connections from 127.0.0.2 that send half a request: dmd answers others at once' '
	python3 - $port <<-\EOF >flood.out 2>&1 &
	import selectors, socket, sys, time
	port = int(sys.argv[1])
	socks, refused = [], 0
	for i in range(400):
	    s = socket.socket()
	    s.bind(("127.0.0.2", 0))
	    try:
	        s.connect(("127.0.0.1", port))
	        s.sendall(b"\x16\x03\x01")  # the first bytes of a TLS hello, and no more
	        socks.append(s)
	    except OSError:
	        refused += 1
	open("flood.ready", "w").write("%d %d\n" % (len(socks), refused))
	# which of them dmd cut, and when: past the share of one address at once,
	# the rest at the deadline
	start = time.time()
	early = late = 0
	sel = selectors.DefaultSelector()
	for s in socks:
	    sel.register(s, selectors.EVENT_READ)
	left = len(socks)
	while left and time.time() - start < 25:
	    for key, _ in sel.select(timeout=0.5):
	        try:
	            gone = key.fileobj.recv(1) == b""
	        except OSError:
	            gone = True
	        if gone:
	            sel.unregister(key.fileobj)
	            left -= 1
	            if time.time() - start < 5:
	                early += 1
	            else:
	                late += 1
	open("flood.done", "w").write("%d %d %.1f\n" % (early, late, time.time() - start))
	time.sleep(2)
	EOF
	flood=$! &&
	test_atexit "kill $flood 2>/dev/null" &&
	until_file 30 flood.ready &&
	cat flood.ready &&
	for i in 1 2 3; do
		t=$(ms_of curl -sf --max-time 5 --cacert D/ca.pem "https://127.0.0.1:$port/healthz") &&
		echo "healthz: $t ms" &&
		test "$t" -lt 1000 &&
		t=$(ms_of dm list) &&
		echo "dm list: $t ms" &&
		test "$t" -lt 1000 || return 1
	done
'

test_expect_success 'past 64 from one address they are closed at once, the rest at their 10 s deadline, and one line says so' '
	until_file 40 flood.done &&
	cat flood.done &&
	read early late secs <flood.done &&
	# 64 from one address at most; those cut after 10 s, not before
	test "$late" -ge 1 && test "$late" -le 64 &&
	test $((early + late)) = 400 &&
	test "${secs%.*}" -ge 9 && test "${secs%.*}" -le 15 &&
	cat D/dmd.log* >all.log &&
	grep "closed [0-9]* connections that sent no whole request within 10 s .*the last from 127.0.0.2" all.log >cut.lines &&
	test $(wc -l <cut.lines) = 1
'

test_expect_success 'a flood of refused requests fills the log: it is rotated and stays under its cap' '
	python3 - $port <<-\EOF &&
	import base64, http.client, ssl
	ctx = ssl.create_default_context(cafile="D/ca.pem")
	c = http.client.HTTPSConnection("127.0.0.1", int(__import__("sys").argv[1]), context=ctx)
	auth = "Basic " + base64.b64encode(b"nobody:wrong").decode()
	for i in range(3000):
	    c.request("POST", "/rpc", body="{}", headers={"Authorization": auth})
	    c.getresponse().read()
	EOF
	ls -l D/dmd.log* &&
	test -e D/dmd.log.1 && test -e D/dmd.log.4 && test ! -e D/dmd.log.5 &&
	total=$(cat D/dmd.log* | wc -c) &&
	echo "log: $total bytes" &&
	test "$total" -le $((5 * 16384 + 4096)) &&
	dm list >/dev/null &&
	grep "ready\|refused a request" D/dmd.log >/dev/null
'

test_done
