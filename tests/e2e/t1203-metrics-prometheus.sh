#!/usr/bin/env bash
test_description='a real Prometheus scrapes dmd over HTTPS as admin and answers a counter back through its query API'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_DIRECTORY/lib-servers.sh"

# What this proves: Debian's prometheus, configured as docs/metrics.md
# shows (HTTPS with the node's CA, basic auth with the admin's key in a
# file), scrapes dmd every second with its target up, and after three
# commits its HTTP API answers dm_rpc_requests_total for dots.commit as 3
# and dm_dots as 1: what dmd counts reaches a real Prometheus intact.

prom_port=$(test_free_port)

# start_prometheus: Prometheus with ./prom.yml on $prom_port, stopped when
# the script ends.
start_prometheus() {
	prometheus --config.file=prom.yml --storage.tsdb.path=tsdb \
		--web.listen-address="127.0.0.1:$prom_port" >prom.log 2>&1 &
	echo $! >prom.pid
	test_atexit "kill $! 2>/dev/null; test_wait_gone $!"
}

# query EXPR: the value of the instant vector EXPR's one sample, or nothing.
query() {
	curl -sS --max-time 5 "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" |
		python3 -c 'import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if len(r) == 1 else "")'
}

# is_value EXPR WANT: query EXPR answers WANT now.
is_value() {
	test "$(query "$1")" = "$2"
}

# wait_value EXPR WANT: until query EXPR answers WANT (up to 20 s).
wait_value() {
	wait_for "$1 = $2" is_value "$1" "$2"
}

# dashboard_queries: every query of deploy/grafana/dm-dashboard.json run on
# Prometheus ($instance as any); prints each that failed, and each metric it
# names that docs/metrics.md does not list; fails then.
dashboard_queries() {
	python3 - "$DM_SOURCE_DIR" "$prom_port" <<-\PY
	import json, re, sys, urllib.parse, urllib.request
	root, port = sys.argv[1], sys.argv[2]
	doc = open(root + "/docs/metrics.md").read()
	known = set(re.findall(r"^\| `([a-z_]+)` \|", doc, re.M))
	bad = 0
	for p in json.load(open(root + "/deploy/grafana/dm-dashboard.json"))["panels"]:
	    for t in p["targets"]:
	        expr = t["expr"].replace("$instance", ".*")
	        for name in re.findall(r"\b((?:dm|process)_[a-z_]+)", expr):
	            base = re.sub(r"_(bucket|sum|count)$", "", name)
	            if base not in known:
	                print("unknown metric", name, "in", p["title"])
	                bad = 1
	        url = "http://127.0.0.1:%s/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": expr}))
	        try:
	            r = json.load(urllib.request.urlopen(url, timeout=5))
	        except Exception as e:
	            r = {"status": str(e)}
	        if r["status"] != "success":
	            print("query of", p["title"], "failed:", r)
	            bad = 1
	sys.exit(bad)
	PY
}

test_expect_success 'setup: dmd A, Prometheus scraping it, three commits' '
	command -v prometheus &&
	servers_init A &&
	cp A/admin-api-key prom-key &&
	cat >prom.yml <<-EOF &&
	global:
	  scrape_interval: 1s
	  scrape_timeout: 1s
	scrape_configs:
	  - job_name: dm
	    scheme: https
	    tls_config:
	      ca_file: $HOME/A/ca.pem
	    basic_auth:
	      username: admin
	      password_file: $HOME/prom-key
	    static_configs:
	      - targets: ["127.0.0.1:$(server_port A)"]
	EOF
	start_prometheus &&
	dmA init shop &&
	dmA mount shop shopA &&
	for i in 1 2 3; do
		echo "$i" >shopA/n && dmA commit -m "commit $i" >/dev/null || return 1
	done &&
	wait_for "prometheus ready" curl -sf "http://127.0.0.1:$prom_port/-/ready" -o /dev/null
'

test_expect_success 'the target is up: Prometheus reached /metrics with the key' '
	wait_value "up{job=\"dm\"}" 1
'

test_expect_success 'the commits counted by dmd read back from Prometheus' '
	wait_value "dm_rpc_requests_total{job=\"dm\",method=\"dots.commit\",outcome=\"ok\"}" 3 &&
	wait_value "dm_dots{job=\"dm\"}" 1 &&
	wait_value "dm_rpc_request_duration_seconds_count{job=\"dm\",method=\"dots.commit\"}" 3
'

test_expect_success 'every query of the example dashboard runs, on metrics dmd has' '
	dashboard_queries
'

test_done
