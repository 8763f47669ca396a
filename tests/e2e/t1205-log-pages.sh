#!/usr/bin/env bash
test_description='dots.log answers a page at a time: limit (100 by default, 1000 at most), before a commit id, more and next; pages stay the same while commits are added; dm log and DotmeshRPC.Commits still show every commit, against a real dmd'
. "$(dirname "$0")/test-lib.sh"

data=$HOME/data
test_atexit "dmd stop --data-dir '$data' >/dev/null 2>&1"
export DM_CONFIG=$HOME/dmconf/config
unset DM_API_KEY
port=$(test_free_port)

# log.py: calls dmd's API as the admin over one connection (argv: port,
# CA file, key file, then what to do); see each action below.
cat >log.py <<'PY'
import base64, http.client, json, ssl, sys

port, ca, keyfile, action = sys.argv[1:5]
conn = http.client.HTTPSConnection("127.0.0.1", int(port),
                                   context=ssl.create_default_context(cafile=ca))
auth = base64.b64encode(("admin:" + open(keyfile).read().strip()).encode()).decode()


def call(method, params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    conn.request("POST", "/rpc", body, {"Authorization": "Basic " + auth,
                                        "Content-Type": "application/json"})
    return json.loads(conn.getresponse().read())


def page(params):
    r = call("dots.log", dict(params, dot="pages"))
    if "result" not in r:
        sys.exit("dots.log: %s" % r)
    return r["result"]


if action == "commit":  # commit FROM TO: commits "cFROM" .. "cTO"
    for i in range(int(sys.argv[5]), int(sys.argv[6]) + 1):
        r = call("dots.commit", {"dot": "pages", "message": "c%d" % i})
        if "result" not in r:
            sys.exit("commit %d: %s" % (i, r))
elif action == "walk":  # walk LIMIT: each page "N more next-is-last", then the messages
    params, seen = {"limit": int(sys.argv[5])}, []
    while True:
        p = page(params)
        ok = (p.get("next") == p["commits"][-1]["id"]) if p["more"] else ("next" not in p)
        print(len(p["commits"]), p["more"], ok)
        seen += [c["message"] for c in p["commits"]]
        if not p["more"]:
            break
        params["before"] = p["next"]
    print(" ".join(seen))
elif action == "first":  # first: the size of the page without a limit
    print(len(page({})["commits"]))
elif action == "limit":  # limit L: the error code for limit L
    print(call("dots.log", {"dot": "pages", "limit": json.loads(sys.argv[5])})["error"]["data"]["code"])
elif action == "next":  # next: the next of a first page of 100
    print(page({"limit": 100})["next"])
elif action == "after":  # after ID: the first and last messages of the page before ID
    p = page({"limit": 100, "before": sys.argv[5]})
    print(p["commits"][0]["message"], p["commits"][-1]["message"], len(p["commits"]), p["more"])
elif action == "commits":  # commits: DotmeshRPC.Commits' messages, oldest first
    r = call("DotmeshRPC.Commits", {"Namespace": "admin", "Name": "pages", "Branch": "master"})
    print(" ".join(c["Metadata"]["message"] for c in r["result"]))
PY
api() {
	python3 log.py "$port" "$data/ca.pem" adminkey "$@"
}
# seq_msgs FROM TO: "cFROM cFROM+1 … cTO" (or downwards), as one line
seq_msgs() {
	seq -f "c%g" "$@" | tr "\n" " " | sed "s/ \$//" && echo
}

test_expect_success 'setup: a dmd and a dot of 250 commits' '
	dm cluster init --data-dir data --port "$port" >/dev/null &&
	python3 -c "import json, sys
print(json.load(open(sys.argv[1]))[\"remotes\"][\"local\"][\"api_key\"])" "$DM_CONFIG" >adminkey &&
	dm init pages &&
	api commit 1 250
'

test_expect_success 'pages of 100 give every commit once, newest first; more and next say what follows' '
	api walk 100 >out &&
	{ printf "100 True True\n100 True True\n50 False True\n" && seq_msgs 250 -1 1; } >expect &&
	test_cmp expect out
'

test_expect_success 'without a limit a page is 100 commits; a limit past 1000 or below 1 is refused' '
	echo 100 >expect && api first >out && test_cmp expect out &&
	echo invalid_argument >expect &&
	api limit 1001 >out && test_cmp expect out &&
	api limit 0 >out && test_cmp expect out &&
	api limit "\"5\"" >out && test_cmp expect out &&
	api walk 1000 >out && head -n 1 out >first && echo "250 False True" >expect && test_cmp expect first
'

test_expect_success 'commits added while a client pages through do not shift the next page' '
	api next >next &&
	api commit 251 255 &&
	api after "$(cat next)" >out &&
	echo "c150 c51 100 True" >expect && test_cmp expect out
'

test_expect_success 'a before that is not a commit of the dot is not_found' '
	test_must_fail api after no-such-commit 2>err &&
	grep not_found err
'

test_expect_success 'dm log and DotmeshRPC.Commits still show every commit' '
	dm log >log &&
	grep -c "^commit " log >out && echo 255 >expect && test_cmp expect out &&
	dm log --json | python3 -c "import json, sys; print(len(json.load(sys.stdin)[\"commits\"]))" >out &&
	test_cmp expect out &&
	api commits >out && seq_msgs 1 255 >expect && test_cmp expect out
'

test_done
