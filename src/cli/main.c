/*
 * main.c - dm, the command line: the table of commands, their help, global
 * options, and the one place that prints an error and exits.
 *
 * Invariants: every failure reaches the user as exactly one line on
 * stderr, "dm: MESSAGE", and the exit status of its code in util/err.h's
 * table (usage errors are DM_EINVAL: 2); help goes to stdout with status 0;
 * nothing here knows about any server code, only the client library.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/dmd_init.h"
#include "util/err.h"
#include "util/log.h"

#include "util/banned.h"

#define DOT_OPTION "  --dot DOT         act on DOT instead of the current dot\n"

#define CURRENT_DOT                                                                                \
	"The current dot is the one chosen with 'dm switch', or the only dot on the\n"             \
	"server when there is exactly one.\n"

const struct dm_cli_cmd dm_cli_commands[] = {
	{"cluster init", dm_cmd_cluster_init,
	 "[--data-dir DIR] [--port N] " DM_DMD_INIT_ENGINE_USAGE " [" DM_DMD_INIT_KV_USAGE
	 "] " DM_DMD_INIT_ADVERTISE_USAGE " " DM_DMD_INIT_TLS_USAGE
	 " [--plugin-socket PATH | --no-plugin] [--docker-socket PATH] [--csi-socket PATH]"
	 " [--metrics-public]",
	 "create a data directory, an admin API key, and start dmd",
	 "Initialises a dm server: runs 'dmd init' on the data directory (which\n"
	 "makes the admin user and a fresh API key), saves the remote 'local' with\n"
	 "that key in the config file (~/.dm/config, or $DM_CONFIG), starts dmd\n"
	 "and checks that it answers. An existing remote of that name is replaced\n"
	 "(with a note on stderr when it pointed elsewhere).\n"
	 "\n"
	 "Options:\n"
	 "  --data-dir DIR    where dmd keeps everything (default /var/lib/dm for root,\n"
	 "                    ~/.dm/data otherwise)\n"
	 "  --port N          TCP port of dmd's API on 127.0.0.1 (default 32607)\n"
	 "  --engine NAME     how working copies are kept: dir (the default: plain\n"
	 "                    directories, any file system, no root) or btrfs\n"
	 "                    (subvolumes: commit, branch and reset are instant at\n"
	 "                    any size; needs root and a pool)\n"
	 "  --pool-dir PATH   btrfs: an existing btrfs mount to keep them in\n"
	 "                    (in PATH/dots)\n"
	 "  --pool-size SIZE  btrfs: a pool file of SIZE (e.g. 20G) in the data\n"
	 "                    directory, formatted and loop-mounted by dmd\n"
	 "                    (needs root, btrfs in the kernel and loop devices)\n"
	 "  --kv NAME         where cluster state lives: lmdb (the default: an\n"
	 "                    embedded store, one node) or etcd (a cluster that\n"
	 "                    other nodes join; prints their join token)\n"
	 "  --etcd-endpoints URL[,URL...]  etcd's client URLs, for --kv etcd;\n"
	 "                    without them dmd runs a local etcd itself, in\n"
	 "                    DIR/etcd on 127.0.0.1 (the etcd program in PATH,\n"
	 "                    Debian's etcd-server), started and stopped with\n"
	 "                    dmd: nodes on this machine can join it, nodes on\n"
	 "                    others need real endpoints. It speaks TLS with a CA\n"
	 "                    of its own and has authentication on, its root\n"
	 "                    password in DIR/etcd-password (mode 0600)\n"
	 "  --etcd-ca FILE    the CA that signed the certificates of https://\n"
	 "                    endpoints (default: the system's CAs)\n"
	 "  --etcd-cert FILE --etcd-key FILE  a client certificate, for an etcd\n"
	 "                    that asks for one (--client-cert-auth)\n"
	 "  --etcd-user NAME  etcd's user, when its authentication is on; the\n"
	 "                    password from --etcd-password-file FILE or\n"
	 "                    $DM_ETCD_PASSWORD, never the command line\n"
	 "  --advertise URL   where other nodes reach this one (default\n"
	 "                    https://127.0.0.1:PORT; another address makes dmd\n"
	 "                    listen on every interface)\n"
	 "  --tls-cert FILE --tls-key FILE  serve HTTPS with your certificate\n"
	 "                    (and --tls-ca FILE, the CA that signed it) instead\n"
	 "                    of a private CA made now\n"
	 "  --insecure-http   plain HTTP, only on a loopback address\n"
	 "  --plugin-socket PATH  the Docker volume plugin's socket (default\n"
	 "                    /run/docker/plugins/dm.sock)\n"
	 "  --no-plugin       serve no Docker volume plugin\n"
	 "  --docker-socket PATH  the Docker Engine API, to stop and start the\n"
	 "                    containers of a dot around reset and checkout\n"
	 "                    (default /var/run/docker.sock)\n"
	 "  --csi-socket PATH  serve the Kubernetes CSI driver on PATH (off without it;\n"
	 "                    docs/internals/csi.md)\n"
	 "  --metrics-public  serve GET /metrics without credentials (else to admins;\n"
	 "                    docs/metrics.md)\n"
	 "  --remote NAME     the name of the remote to save (default local)\n"},
	{"cluster join", dm_cmd_cluster_join,
	 "TOKEN|- [--data-dir DIR] [--port N] [--engine ...] [--advertise "
	 "URL] " DM_DMD_INIT_ETCD_USAGE
	 " [--plugin-socket PATH | --no-plugin] [--docker-socket PATH] [--csi-socket PATH]"
	 " [--metrics-public]",
	 "add this machine to a cluster on etcd, and start dmd",
	 "Makes a new node of the cluster TOKEN names: 'dm cluster join-token' on\n"
	 "the node that made the cluster prints it (it holds etcd's endpoints and\n"
	 "credentials, the cluster's CA and a secret that works for 24 hours).\n"
	 "This node makes its own key and asks that node, which holds the CA's\n"
	 "key, to sign its certificate: nodes call each other with their\n"
	 "certificates, never with an API key. Like 'dm cluster init', it\n"
	 "initialises the data directory, saves the remote 'local' (with the API\n"
	 "key of $DM_API_KEY, such as an admin's: the token carries none), starts\n"
	 "dmd and checks it answers.\n"
	 "The options are those of 'dm cluster init' but --kv and --etcd-endpoints,\n"
	 "which come from the token, as do etcd's CA, user and password (the\n"
	 "--etcd-* options, when given, win). TOKEN '-' reads it from standard\n"
	 "input, so that it shows in no command line or shell history.\n"},
	{"cluster join-token", dm_cmd_cluster_join_token, "[--ttl DURATION|never]",
	 "print the token that adds a node to this cluster",
	 "Prints 'dm cluster join TOKEN' for this cluster (admin only; a cluster\n"
	 "on etcd and HTTPS only; on the node that made the cluster, which holds\n"
	 "the CA's key). Each token works for 24 hours. It holds etcd's\n"
	 "credentials: keep it secret.\n"
	 "\n"
	 "Options:\n"
	 "  --ttl DURATION    how long the token works (30m, 12h, 7d), or 'never'\n"
	 "                    (for nodes that join later, such as a DaemonSet's)\n"},
	{"cluster remove", dm_cmd_cluster_remove, "NODE",
	 "remove a node that is down from the cluster for good",
	 "Removes NODE (an id from 'dm cluster status', or a unique prefix of one)\n"
	 "from the cluster: its record goes, every node refuses its certificate\n"
	 "from then on, and its dmd may not register again (the machine comes\n"
	 "back as a new node, with 'dm cluster join'). NODE must be down: stop it\n"
	 "first, and move the branches it masters ('dm dot set-master'). Admin\n"
	 "only.\n"},
	{"cluster rotate-certs", dm_cmd_cluster_rotate_certs, "",
	 "rotate the cluster's CA and every node's certificate, node by node",
	 "Moves the rotation of the cluster's CA one step on (admin only; on the\n"
	 "node that made the cluster, which holds the CA's key). Each step is\n"
	 "followed by a restart of every node, one at a time (dm cluster stop,\n"
	 "then dm cluster start), so that the cluster stays up:\n"
	 "  1. a new CA, which every node trusts beside the old one;\n"
	 "  2. every node gets a certificate of the new CA;\n"
	 "  3. every node trusts the new CA only.\n"
	 "A step is refused, naming them, while nodes have not restarted since\n"
	 "the last one. 'dm cluster start' pins the new CA in this machine's\n"
	 "remote; clients elsewhere pin it again (dm remote add --fingerprint).\n"},
	{"cluster status", dm_cmd_cluster_status, "[-H] [--json]",
	 "list the cluster's nodes and whether they are up",
	 "Lists the nodes of the cluster of the current remote: id, the address\n"
	 "other nodes reach it at, up or down (a node is down ~10 s after it\n"
	 "stops renewing its lease), version and engine. '*' marks the node\n"
	 "that answered.\n"
	 "\n"
	 "Options:\n"
	 "  -H                for scripts: no header, tab-separated\n"
	 "  --json            the server's answer, as JSON\n"},
	{"cluster backup", dm_cmd_cluster_backup, "FILE",
	 "save the cluster's state to FILE (admins only)",
	 "Writes the state of the current remote's cluster to FILE (mode 0600; '-'\n"
	 "for standard output), as one moment of it: its users (with their API\n"
	 "keys' hashes: keep FILE as secret as the data directory), its dots'\n"
	 "names, records (owners, collaborators, hooks, forks) and branches, who\n"
	 "masters each branch, and the Docker plugin's volume aliases. Not the\n"
	 "data: that is in each node's store (back the data directory up, or push\n"
	 "the dots elsewhere). The format is the same on the embedded KV and on\n"
	 "etcd, so a backup of one restores into the other. dotmesh's\n"
	 "'dm cluster backup-etcd'.\n"},
	{"cluster restore", dm_cmd_cluster_restore, "FILE [--data-dir DIR]",
	 "write a backup's cluster state into a stopped node",
	 "Writes the cluster state in FILE ('dm cluster backup'; '-' for standard\n"
	 "input) into the KV of the node whose data directory is DIR (default as\n"
	 "for 'dm cluster start'). Its dmd must be stopped ('dm cluster stop'; on\n"
	 "etcd, every node's), and the cluster must have no dots yet: a new one\n"
	 "('dm cluster init'), or one whose KV lost its state (etcd's data wiped).\n"
	 "Users the cluster has already (its admin) are kept as they are; the\n"
	 "others get their keys back. A dot is restored when this node's store\n"
	 "has the commits its branches point at (the same data directory, or\n"
	 "one that received them); the others are listed as left out. The\n"
	 "restored dots are this node's: on etcd it masters their branches, and\n"
	 "other nodes copy them when they start. Start the node afterwards.\n"
	 "dotmesh's 'dm cluster restore-etcd'.\n"
	 "\n"
	 "Options:\n"
	 "  --data-dir DIR    the node's data directory\n"
	 "  --remote NAME     the remote whose data directory to use (default local)\n"},
	{"cluster start", dm_cmd_cluster_start,
	 "[--data-dir DIR] [--port N] [--plugin-socket PATH | --no-plugin] [--docker-socket PATH]"
	 " [--csi-socket PATH] [--metrics-public]",
	 "start dmd on an initialised data directory",
	 "Starts dmd in the background ('dmd start') and waits until it serves.\n"
	 "\n"
	 "Options:\n"
	 "  --data-dir DIR    the data directory (default: the remote's data_dir,\n"
	 "                    else /var/lib/dm for root, ~/.dm/data otherwise)\n"
	 "  --port N          TCP port to serve on (also saved in the remote)\n"
	 "  --plugin-socket PATH  the Docker volume plugin's socket (default\n"
	 "                    /run/docker/plugins/dm.sock)\n"
	 "  --no-plugin       serve no Docker volume plugin\n"
	 "  --docker-socket PATH  the Docker Engine API, to stop and start the\n"
	 "                    containers of a dot around reset and checkout\n"
	 "                    (default /var/run/docker.sock)\n"
	 "  --csi-socket PATH  serve the Kubernetes CSI driver on PATH (off without it;\n"
	 "                    docs/internals/csi.md)\n"
	 "  --metrics-public  serve GET /metrics without credentials (else to admins;\n"
	 "                    docs/metrics.md)\n"
	 "  --remote NAME     the remote whose data directory to use (default local)\n"},
	{"cluster stop", dm_cmd_cluster_stop, "[--data-dir DIR]", "stop dmd cleanly",
	 "Stops the dmd serving the data directory ('dmd stop'), and its local\n"
	 "etcd, if it runs one (a dmd that died leaves it running).\n"
	 "\n"
	 "Options:\n"
	 "  --data-dir DIR    the data directory (default as for 'dm cluster start')\n"
	 "  --remote NAME     the remote whose data directory to use (default local)\n"},
	{"cluster upgrade", dm_cmd_cluster_upgrade, "",
	 "check which nodes run another version than this dm",
	 "Lists the cluster's nodes with the version of dm each runs and what to\n"
	 "do: a node older than this dm is upgraded by installing this version\n"
	 "there, then 'dm cluster stop' and 'dm cluster start' on it, one node at a\n"
	 "time. A node's data directory is opened by the new version as it is;\n"
	 "one made by a newer dm is refused (docs/internals/formats.md). Fails\n"
	 "(status 11) while any node runs another version, so that scripts can\n"
	 "wait for it.\n"},
	{"cluster reset", dm_cmd_cluster_reset, "[--data-dir DIR] [--yes]",
	 "tear this node down: stop dmd and delete its data directory",
	 "Stops the dmd serving the data directory, unmounts what is still mounted\n"
	 "under it (a btrfs pool, read-only commits), deletes it with every dot,\n"
	 "branch, commit, user and key it held, and removes the remotes of this\n"
	 "config that named it. Other nodes of a cluster keep their copies (this\n"
	 "one shows as down in their 'dm cluster status'). A btrfs pool given with\n"
	 "--pool-dir is outside the data directory: its dots folder is left.\n"
	 "On a terminal it asks you to type the directory's path; elsewhere it\n"
	 "needs --yes. A directory that is not a dm data directory is refused.\n"
	 "\n"
	 "Options:\n"
	 "  --data-dir DIR    the data directory (default as for 'dm cluster start')\n"
	 "  -y, --yes         do not ask\n"
	 "  --remote NAME     the remote whose data directory to use (default local)\n"},
	{"version", dm_cmd_version, "", "show the versions of dm and of the server",
	 "Shows the client's version and the server's. When the server cannot be\n"
	 "reached, shows the client's and fails.\n"},
	{"init", dm_cmd_init, "DOT", "create a dot and make it the current dot",
	 "Creates an empty dot named [NAMESPACE/]NAME, with its branch master, and\n"
	 "makes it the current dot (as 'dm switch' would), as dotmesh did.\n"
	 "Names are 1 to 64 letters, digits, '-' or '_'.\n"},
	{"list", dm_cmd_list, "[-H] [--json]", "list the dots (also: dm ls)",
	 "Lists the dots on the server: their current branch, server, containers,\n"
	 "size, number of commits and uncommitted bytes. The current dot is marked\n"
	 "with '*'.\n"
	 "\n"
	 "Options:\n"
	 "  -H                for scripts: no header, tab-separated, sizes in bytes;\n"
	 "                    dotmesh's columns in its order (DOT BRANCH SERVER\n"
	 "                    CONTAINERS SIZE COMMITS DIRTY: 'cut -f 1' is the\n"
	 "                    name, 'cut -f 7' the dirty bytes), then '*' for the\n"
	 "                    current dot or nothing\n"
	 "  --json            the server's answer, as JSON\n"},
	{"switch", dm_cmd_switch, "DOT", "make DOT the current dot",
	 "Makes DOT (which must exist) the current dot of the remote; the commands\n"
	 "that act on a dot use it unless told --dot.\n"},
	{"commit", dm_cmd_commit, "-m MSG [-d KEY=VALUE]... [--max-freeze DURATION] [--dot DOT]",
	 "commit the current branch's working copy",
	 "Records the working copy of the current branch as a new commit and\n"
	 "prints its id.\n\n" CURRENT_DOT "\n"
	 "\n"
	 "The commit is the working copy as of one instant. On btrfs it is a\n"
	 "snapshot. On the dir engine, the containers that use the branch are\n"
	 "frozen (paused) for the commit's last pass only; what writes to it and\n"
	 "cannot be frozen (a process on the host) is detected, and the commit then\n"
	 "says, in one line and in its record, that it is not one instant. The\n"
	 "dot's hooks (dm dot set-hook) run before and after. 'dm log -v' shows\n"
	 "how each commit was taken.\n"
	 "\n"
	 "Options:\n"
	 "  -m, --message MSG\n"
	 "                    the commit message (required)\n"
	 "  -d, --metadata KEY=VALUE\n"
	 "                    a metadata entry; keys start with a lowercase\n"
	 "                    letter (dm.* keys are dm's own); may be repeated.\n"
	 "                    '#commit-id=ID' (dotmesh's) gives the commit the id\n"
	 "                    ID instead of a new one: 4 to 128 letters, digits,\n"
	 "                    '-' or '_', not used by another commit of the dot\n"
	 "  --max-freeze DURATION\n"
	 "                    the longest the containers may stay frozen (default\n"
	 "                    5s; e.g. 500ms, 2s): a commit that would take longer\n"
	 "                    fails and commits nothing, the containers running\n"
	 "                    again\n" DOT_OPTION},
	{"log", dm_cmd_log, "[-v] [--json] [--dot DOT]", "show the commits of the current branch",
	 "Shows the commits of the current branch, newest first.\n\n" CURRENT_DOT "\n"
	 "Options:\n"
	 "  -v, --verbose     also how each commit was taken: a snapshot, frozen\n"
	 "                    (for how long, which containers), quiet (nothing to\n"
	 "                    freeze, nothing changed), or not one instant (what\n"
	 "                    changed while it was read); and the hooks that ran\n"
	 "  --json            the server's answer, as JSON\n" DOT_OPTION},
	{"branch", dm_cmd_branch, "[-H] [--json] [--dot DOT] | -d|-D BRANCH [--dot DOT]",
	 "list the branches, or delete one",
	 "Lists the branches of the current dot; the current one is marked '*'.\n"
	 "\n"
	 "With -d, deletes BRANCH: its working copy goes, and so does the branch,\n"
	 "but only when another branch has all of its commits. With -D, also when\n"
	 "its commits are on no other branch: they are forgotten at the next\n"
	 "'dm gc', which frees their data. Neither deletes the current branch (check\n"
	 "out another first) nor one that a container uses.\n"
	 "\n"
	 "Options:\n"
	 "  -H                for scripts: no padding, tab-separated\n"
	 "  --json            the server's answer, as JSON\n"
	 "  -d BRANCH         delete BRANCH, whose commits another branch has\n"
	 "  -D BRANCH         delete BRANCH and the commits only it has\n" DOT_OPTION},
	{"checkout", dm_cmd_checkout, "[-b] BRANCH [--dot DOT]", "switch to another branch",
	 "Makes BRANCH the dot's current branch.\n"
	 "\n"
	 "Options:\n"
	 "  -b                create BRANCH from the current branch's head first\n" DOT_OPTION},
	{"reset", dm_cmd_reset, "--hard REF [--dot DOT]",
	 "move the current branch back to a commit",
	 "Makes commit REF the head of the current branch and its working copy;\n"
	 "uncommitted changes and later commits leave the branch. REF is a commit\n"
	 "id, a unique prefix of one (at least 4 characters), HEAD, HEAD^, HEAD^^\n"
	 "or HEAD~N.\n"
	 "\n"
	 "Options:\n"
	 "  --hard            required: the working copy is always reset too\n" DOT_OPTION},
	{"diff", dm_cmd_diff, "[-H] [--json] [REF [REF]] [--dot DOT]", "show which paths changed",
	 "Without REF: what changed in the working copy since the branch's head.\n"
	 "With one REF: the working copy against that commit. With two: the\n"
	 "changes from the first commit to the second.\n"
	 "\n"
	 "Options:\n"
	 "  -H                for scripts: STATUS<tab>PATH (added, modified, deleted)\n"
	 "  --json            the server's answer, as JSON\n" DOT_OPTION},
	{"dot show", dm_cmd_dot_show, "[DOT] [-H] [--json]", "show a dot in detail",
	 "Shows a dot (default: the current dot): its id, owner, collaborators\n"
	 "with their roles, branches with their heads, size, commits, uncommitted\n"
	 "bytes and containers; how the current branch's head was taken\n"
	 "(captured: frozen, snapshot, quiet or not-instant) and the dot's hooks\n"
	 "(dm dot set-hook).\n"
	 "\n"
	 "And what it costs in the server's store, for the dot and for each\n"
	 "branch: referenced (what its commits reach), unique (what only it\n"
	 "holds: what deleting it, or 'dm branch -D', and the next 'dm gc' free)\n"
	 "and written (what its head added since the previous commit). The\n"
	 "server counts them after a change, in the background; until it has,\n"
	 "they are shown as being recounted.\n"
	 "\n"
	 "Options:\n"
	 "  -H                for scripts: KEY<tab>VALUE lines, sizes in bytes;\n"
	 "                    dotmesh's lines first (namespace, name,\n"
	 "                    masterBranchId, selected, commitCount, size, dirty,\n"
	 "                    currentBranch, 'branch ID NAME', 'container BRANCH\n"
	 "                    NAME', 'latency NODE master|replica up|down',\n"
	 "                    'defaultUpstreamDot REMOTE NS/DOT'), then dm's\n"
	 "  --json            the server's answer, as JSON\n" DOT_OPTION},
	{"dot delete", dm_cmd_dot_delete, "[-f] DOT", "delete a dot and all its commits",
	 "Deletes DOT, its branches, working copies and commits. On a terminal it\n"
	 "asks first; elsewhere it needs --force. Only the dot's owner and admins\n"
	 "delete a dot.\n"
	 "\n"
	 "Options:\n"
	 "  -f, --force       do not ask\n"},
	{"dot prune", dm_cmd_dot_prune,
	 "[DOT] --keep-last N [--keep-within DURATION] [--keep-hourly|daily|weekly|monthly|yearly N]"
	 " [--dry-run] [--json]",
	 "forget old commits of a dot, keeping their records",
	 "Applies restic's 'forget --keep-*' rules to each branch of DOT (default:\n"
	 "the current dot), newest commit first along the branch's first-parent\n"
	 "history: a commit that some rule keeps, on some branch, stays; every\n"
	 "other one is pruned. A pruned commit keeps its record in 'dm log' (id,\n"
	 "author, date, message; marked pruned), but its data is no longer kept:\n"
	 "the next 'dm gc' frees what only it held, and 'dm reset', 'dm branch',\n"
	 "'dm diff' and 'dm push' refuse it. A branch's head always stays. On\n"
	 "btrfs a pruned commit's snapshot is deleted at once. Commits that only\n"
	 "a 'dm reset --hard' keeps are left to its retention ('dm gc --expire').\n"
	 "Only the dot's owner and admins prune; not yet in a cluster.\n"
	 "\n"
	 "Options (a count N of -1 means no limit):\n"
	 "  --keep-last N     keep the N newest commits\n"
	 "  --keep-hourly N   for the last N hours that have commits, keep the\n"
	 "                    newest commit of each (the server's local time)\n"
	 "  --keep-daily N    the same per day\n"
	 "  --keep-weekly N   the same per ISO week\n"
	 "  --keep-monthly N  the same per month\n"
	 "  --keep-yearly N   the same per year\n"
	 "  --keep-within DURATION\n"
	 "                    keep every commit less than DURATION (2h, 14d...)\n"
	 "                    older than the branch's newest\n"
	 "  --dry-run         only show what would be kept and pruned\n"
	 "  --json            the server's answer, as JSON\n"},
	{"dot fork", dm_cmd_dot_fork, "DOT NEWNAME [--namespace NS]",
	 "copy a dot into a new one that shares its history",
	 "Makes NEWNAME ([NS/]NAME) a fork of DOT, as dotmesh's Fork did: a new dot\n"
	 "with an id of its own whose branches start where DOT's are. Their history\n"
	 "is DOT's, shared in the server's store (only each commit's small record\n"
	 "is written again); the working copies are made from the heads, as a\n"
	 "clone's are. The fork records its origin ('dm dot show': forked from).\n"
	 "Without NS, NEWNAME is in the namespace of the user the remote is used\n"
	 "as. Needs role read in DOT, and the right to create dots in NS.\n"
	 "\n"
	 "Options:\n"
	 "  --namespace NS    the fork's namespace (instead of NS/ in NEWNAME)\n"},
	{"dot set-upstream", dm_cmd_dot_set_upstream, "[--unset] [DOT] [REMOTE [NS/]DOT]",
	 "set where a dot is pushed to and pulled from",
	 "Records that DOT (default: the current dot) is [NS/]DOT on remote\n"
	 "REMOTE (NS defaults to the user REMOTE is used as, as in dotmesh):\n"
	 "'dm push' and 'dm pull' without a remote then go there, and\n"
	 "with REMOTE but without --remote-name they use that name. Kept in the\n"
	 "config file, for the current remote's DOT; 'dm clone' sets it too.\n"
	 "'dm dot show' shows it.\n"
	 "\n"
	 "Options:\n"
	 "  --unset           forget DOT's upstream\n"},
	{"dot set-master", dm_cmd_dot_set_master, "DOT BRANCH NODE",
	 "make another node of the cluster master a branch",
	 "Makes NODE (an id from 'dm cluster status', or a unique prefix of one)\n"
	 "the master of BRANCH of DOT: the node whose working copy takes the\n"
	 "branch's commits, resets and containers. For a master that is down:\n"
	 "the branch goes on from NODE's copy, so commits the old master had not\n"
	 "replicated yet are not on it (when the old master comes back, they are\n"
	 "kept on a branch BRANCH-DIVERGED-<time> of its copy). Admin only.\n"},
	{"dot add-collaborator", dm_cmd_dot_add_collaborator, "[DOT] USER [--role read|write]",
	 "share a dot with another user",
	 "Adds USER to the collaborators of DOT (default: the current dot), or\n"
	 "changes the role USER has. With role read USER may show the dot, read\n"
	 "its log and diffs, and pull and clone from it; with role write also\n"
	 "commit, make branches, push to it and pull into it. Deleting, reset,\n"
	 "checkout, hooks and collaborators stay with the dot's owner and admins,\n"
	 "who alone add collaborators. USER must exist.\n"
	 "\n"
	 "Options:\n"
	 "  --role ROLE       read or write (default write)\n"},
	{"dot remove-collaborator", dm_cmd_dot_remove_collaborator, "[DOT] USER",
	 "stop sharing a dot with a user",
	 "Removes USER from the collaborators of DOT (default: the current dot):\n"
	 "USER may no longer use it. Only the dot's owner and admins remove\n"
	 "collaborators.\n"},
	{"dot set-hook", dm_cmd_dot_set_hook,
	 "DOT pre-commit|post-commit [--container NAME] [--timeout DURATION] -- CMD [ARG]...",
	 "run a command before or after each commit of a dot",
	 "Sets a consistency hook of DOT: CMD runs before (pre-commit) or right\n"
	 "after (post-commit) the working copy is taken, e.g. to checkpoint a\n"
	 "database or hold its writes. It runs with DM_DOT, DM_BRANCH, DM_HOOK and\n"
	 "DM_COMMIT set, without a shell (give 'sh -c ...' for one); its output\n"
	 "goes to dmd's log. A pre-commit hook that fails or times out fails the\n"
	 "commit, which then commits nothing; the post-commit hook always runs,\n"
	 "and its failure is a warning. Each commit records the hooks that ran.\n"
	 "Only the dot's owner and admins set hooks (a collaborator may not, even\n"
	 "with role write); a hook on the host (no --container) runs as dmd's\n"
	 "user, so only an admin may set one.\n"
	 "\n"
	 "Options:\n"
	 "  --container NAME  run CMD inside container NAME (as 'docker exec'),\n"
	 "                    which must use the dot's branch\n"
	 "  --timeout DURATION\n"
	 "                    stop it after this long (default 60s; at most 1h)\n"
	 "  --remove          remove the hook\n"},
	{"mount", dm_cmd_mount, "[--create] DOT[@BRANCH] PATH | DOT[@COMMIT] PATH --read-only",
	 "make PATH a symlink to a working copy, or to a past commit",
	 "Asks the server where the working copy of DOT's BRANCH (default: its\n"
	 "current branch) is and makes PATH a symbolic link to it. PATH must not\n"
	 "exist, or be a link that dm mount made earlier (it is replaced).\n"
	 "\n"
	 "With --read-only, PATH leads to a read-only copy of COMMIT instead\n"
	 "(dotmesh's MountCommit): a commit id, a unique prefix of one, or HEAD,\n"
	 "HEAD^, HEAD~N of the current branch (default HEAD). The server makes the\n"
	 "copy once and keeps it while a link leads to it ('dm unmount PATH', or\n"
	 "removing the link, lets it go; the copy goes at the server's next look).\n"
	 "\n"
	 "Options:\n"
	 "  --create          create DOT first when it does not exist\n"
	 "  --read-only       a read-only copy of a commit, not a working copy\n"},
	{"unmount", dm_cmd_unmount, "PATH", "remove a link that dm mount made",
	 "Removes PATH, a symbolic link that 'dm mount' made. When it led to a\n"
	 "read-only copy of a commit that nothing else uses, the server removes\n"
	 "the copy.\n"},
	{"remote", dm_cmd_remote_list, "[-v] [-H]", "list the remotes",
	 "Lists the remotes of the config file; the current one (where commands\n"
	 "go unless told --remote) is marked '*'.\n"
	 "\n"
	 "Options:\n"
	 "  -v, --verbose     show each remote's USER@HOST:PORT too (an S3\n"
	 "                    remote's: s3 KEY_ID@ENDPOINT)\n"
	 "  -H                for scripts: CURRENT<tab>NAME<tab>USER@HOST:PORT\n"},
	{"remote add", dm_cmd_remote_add,
	 "NAME USER@HOST[:PORT] [--fingerprint SHA256:HEX | --ca-file FILE]", "add a remote",
	 "Adds the dm server at HOST (port 32607 unless given; an IPv6 address\n"
	 "goes in brackets: [::1]:32607) as remote NAME, used as USER. The API\n"
	 "key is taken from $DM_API_KEY, else from standard input when it is not\n"
	 "a terminal (its first line: 'echo KEY | dm remote add ...'), else asked\n"
	 "for on the terminal without echo. The server must answer with that\n"
	 "user and key before the remote is saved. The first remote becomes the\n"
	 "current one.\n"
	 "The server speaks HTTPS with a certificate of its CA, which the remote\n"
	 "pins: give the CA's fingerprint that 'dm cluster init' printed there\n"
	 "(--fingerprint) or its ca.pem (--ca-file); on a terminal without\n"
	 "either, dm shows the fingerprint and asks. A server whose certificate\n"
	 "later does not chain to the pinned CA is refused. A server on this\n"
	 "host may speak plain HTTP (dmd init --insecure-http).\n"},
	{"remote rm", dm_cmd_remote_rm, "NAME", "remove a remote",
	 "Removes remote NAME from the config file, with the upstreams of its\n"
	 "dots and those that pointed to it. The current remote cannot be\n"
	 "removed: switch to another first.\n"},
	{"remote switch", dm_cmd_remote_switch, "NAME", "make NAME the current remote",
	 "Makes NAME the current remote: the server that commands talk to, and\n"
	 "the one that runs 'dm push', 'dm pull' and 'dm clone'. An S3 remote\n"
	 "cannot be the current remote.\n"},
	{"s3 remote add", dm_cmd_s3_remote_add, "NAME KEY_ID[:SECRET][@ENDPOINT]",
	 "add an S3 endpoint as a remote",
	 "Adds the S3 endpoint ENDPOINT (default https://s3.amazonaws.com; a\n"
	 "bare HOST[:PORT] is https) as remote NAME, used with the access key\n"
	 "KEY_ID. The secret is SECRET when given, else $DM_S3_SECRET, else the\n"
	 "first line of standard input when it is not a terminal, else asked for\n"
	 "on the terminal without echo. The endpoint must accept a request signed\n"
	 "with them (AWS Signature Version 4; the region is $DM_S3_REGION, default\n"
	 "us-east-1) before the remote is saved. 'dm remote -v' lists it and\n"
	 "'dm remote rm' removes it; it never becomes the current remote.\n"},
	{"push", dm_cmd_push,
	 "[REMOTE [DOT [BRANCH]]] [--remote-name [NS/]DOT] [--stash-on-divergence]",
	 "send a dot's new commits to another remote",
	 "Asks the current remote's dmd to send BRANCH (default: the dot's\n"
	 "current branch) of DOT (default: the current dot) to REMOTE, creating\n"
	 "the dot there when it does not exist, and shows the progress until it\n"
	 "ends. Only objects REMOTE lacks travel; a broken push resumes when run\n"
	 "again. Without REMOTE, the dot's upstream ('dm dot set-upstream') is\n"
	 "used. Nothing to send is not an error: 'everything up to date'.\n"
	 "A dot without an upstream gets this one.\n"
	 "\n"
	 "REMOTE must have no commits on the branch that the dot lacks, and no\n"
	 "uncommitted changes on it.\n"
	 "\n"
	 "A name on REMOTE without NS is in the namespace of the user REMOTE is\n"
	 "used as (dotmesh's default): 'dm push hub' of dot shop, as alice, goes\n"
	 "to alice/shop.\n"
	 "\n"
	 "Options:\n"
	 "  --remote-name [NS/]DOT\n"
	 "                    the dot's name on REMOTE (default: its upstream's\n"
	 "                    name there, else the same name in the user's\n"
	 "                    namespace)\n"
	 "  --stash-on-divergence\n"
	 "                    when both sides have new commits, keep REMOTE's on\n"
	 "                    a branch BRANCH-DIVERGED-<time> there instead of\n"
	 "                    failing\n"},
	{"pull", dm_cmd_pull,
	 "[REMOTE [DOT [BRANCH]]] [--remote-name [NS/]DOT] [--stash-on-divergence]",
	 "fetch a dot's new commits from another remote",
	 "Asks the current remote's dmd to fetch BRANCH (default: every branch)\n"
	 "of DOT (default: the current dot) from REMOTE, and shows the progress\n"
	 "until it ends. The branch's working copy then holds the new head.\n"
	 "Without REMOTE, the dot's upstream ('dm dot set-upstream') is used; a\n"
	 "dot without an upstream gets this one. A name on REMOTE without NS is\n"
	 "in the namespace of the user REMOTE is used as.\n"
	 "\n"
	 "Options:\n"
	 "  --remote-name [NS/]DOT\n"
	 "                    the dot's name on REMOTE (default: its upstream's\n"
	 "                    name there, else the same name in the user's\n"
	 "                    namespace)\n"
	 "  --stash-on-divergence\n"
	 "                    when both sides have new commits, keep ours on a\n"
	 "                    branch BRANCH-DIVERGED-<time> instead of failing\n"},
	{"clone", dm_cmd_clone,
	 "REMOTE [NS/]DOT [BRANCH] [--local-name DOT] [--stash-on-divergence]",
	 "copy a dot from another remote",
	 "Asks the current remote's dmd to copy DOT (every branch, or only\n"
	 "BRANCH) from REMOTE into a new dot with the same id, and shows the\n"
	 "progress until it ends. The new dot's upstream is REMOTE's DOT, so\n"
	 "'dm pull' without arguments fetches from there later. A dot of that\n"
	 "name must not exist here yet. DOT without NS is in the namespace of\n"
	 "the user REMOTE is used as; the copy keeps the name DOT as given.\n"
	 "\n"
	 "Options:\n"
	 "  --local-name DOT  the name of the copy here (default: DOT)\n"
	 "  --stash-on-divergence\n"
	 "                    accepted for dotmesh's sake; a clone never diverges\n"},
	{"gc", dm_cmd_gc, "[--dry-run] [--expire now|DURATION] [--json]",
	 "free the stored data that nothing reaches (admins only)",
	 "Collects the garbage of the server's store: every object that no commit\n"
	 "of any dot, no running transfer and no data being received reaches is\n"
	 "forgotten, and each pack file whose live part is under 80% is rewritten\n"
	 "and deleted (the others keep their dead records until then). It runs\n"
	 "online: commits, pushes, pulls and clones go on meanwhile, and nothing\n"
	 "they write or need is freed. Deleting a dot makes its data garbage.\n"
	 "\n"
	 "First, each dot forgets the commits that no branch reaches any more:\n"
	 "those of a branch deleted with 'branch -D', and those that 'dm reset\n"
	 "--hard' left behind more than 14 days ago (until then they stay\n"
	 "reachable by id, as git's reflog keeps them).\n"
	 "\n"
	 "Options:\n"
	 "  --dry-run         only count what is garbage now; change nothing (the\n"
	 "                    commits a collection would forget first are not counted)\n"
	 "  --expire now|DURATION\n"
	 "                    forget what resets dropped more than DURATION ago\n"
	 "                    (30s, 2h, 14d...), or all of it with 'now'\n"
	 "  --json            the server's answer, as JSON\n"},
	{"df", dm_cmd_df, "[--json]", "show the server's disk space (admins only)",
	 "Summarises the server's disk space: the store (every dot's history, and\n"
	 "data received but not yet settled), the working copies (as each dot\n"
	 "last measured them), what garbage collection could free (as the last\n"
	 "'dm gc' or 'dm gc --dry-run' found: dead records left in packs still\n"
	 "mostly live, and what a dry run would free), and the file system's free\n"
	 "space with the reserve dmd keeps so that deletes and 'dm gc' always run.\n"
	 "\n"
	 "Options:\n"
	 "  --json            the server's answer, as JSON\n"},
	{"fsck", dm_cmd_fsck, "[--repair] [--json]",
	 "check the server's store and dots (admins only)",
	 "Checks the server's store: every object's bytes hash to its id and lie\n"
	 "inside its pack, every object a file, tree or commit names is there,\n"
	 "the pack files match the index, every commit's record is there and\n"
	 "(unless pruned) all its data; and each dot's branches: their heads are\n"
	 "in the store and their working copies exist. It says how far it got\n"
	 "every 2 s on stderr, and exits 5 when it found problems.\n"
	 "\n"
	 "With --repair it also does what is safe: drops the index entries whose\n"
	 "bytes are gone or wrong, stores again any object a commit needs whose\n"
	 "record is still in a pack file, and marks the commits still missing\n"
	 "data as damaged (dm log shows them so; reset refuses them). Nothing\n"
	 "else changes. A garbage collection and dm fsck never run at once.\n"
	 "\n"
	 "Options:\n"
	 "  --repair          repair what is safe to repair\n"
	 "  --json            the server's report, as JSON\n"},
	{"debug", dm_cmd_debug, "METHOD [PARAMS] [--parse-json]", "make one raw API call",
	 "Calls METHOD of the server's JSON-RPC API (docs/api.md: dm's methods,\n"
	 "such as dots.list, and dotmesh's, such as DotmeshRPC.List) and prints\n"
	 "its result as one line of JSON, as dotmesh's 'dm debug' did. PARAMS is\n"
	 "sent as it is when it is JSON ('{\"dot\":\"shop\"}'), else as a JSON\n"
	 "string (an id, for the dotmesh methods that take one).\n"
	 "\n"
	 "Options:\n"
	 "  --parse-json      PARAMS must be JSON: fail when it is not\n"},
	{"user add", dm_cmd_user_add, "NAME [--expires DURATION]", "add a user (admins only)",
	 "Creates user NAME on the server and prints its API key on stdout, only\n"
	 "this once: the server keeps only a hash of it. The user may then create\n"
	 "and use the dots of namespace NAME, and the dots it collaborates on.\n"
	 "\n"
	 "Options:\n"
	 "  --expires DURATION\n"
	 "                    the key stops working after DURATION (30d, 12h, 90m,\n"
	 "                    45s), and so does each new key of the user, unless\n"
	 "                    an admin says otherwise; 'never' (the default) for\n"
	 "                    a key that never expires\n"},
	{"user reset-key", dm_cmd_user_reset_key, "[NAME] [--expires DURATION]",
	 "give yourself, or a user, a new API key",
	 "Makes a new API key and prints it on stdout, only this once; the old key\n"
	 "stops working at once. Without NAME it is your own key (any user may\n"
	 "reset it); only admins name another user. When it is the key of the\n"
	 "remote being talked to, the config file takes the new key.\n"
	 "\n"
	 "Options:\n"
	 "  --expires DURATION\n"
	 "                    the new key stops working after DURATION (30d, 12h,\n"
	 "                    90m, 45s) or 'never' (default: as long as the\n"
	 "                    user's keys live). A user who is not an admin may\n"
	 "                    not give their key a longer life than they have.\n"},
	{"user rm", dm_cmd_user_rm, "[-f] NAME", "remove a user (admins only)",
	 "Removes user NAME: its key stops working at once, and it leaves every\n"
	 "dot it collaborates on. A user who owns dots is refused unless --force:\n"
	 "then its dots are handed to you, the admin who removes it. They keep\n"
	 "their names (NAME/DOT), and a new user called NAME later would not own\n"
	 "them. An admin cannot remove themself.\n"
	 "\n"
	 "Options:\n"
	 "  -f, --force       hand the user's dots to you instead of refusing\n"},
	{"user list", dm_cmd_user_list, "[-H] [--json]", "list the users (admins only)",
	 "Lists the users of the server, whether each is an admin, and when its\n"
	 "API key expires ('never', or a time in UTC).\n"
	 "\n"
	 "Options:\n"
	 "  -H                for scripts: no header, tab-separated\n"
	 "  --json            the server's answer, as JSON\n"},
	{NULL, NULL, NULL, NULL, NULL},
};

/* Command groups: a word whose commands are "WORD SUB". A group may have a
 * command of its own ("remote"), run when no subcommand follows. */
static const char *const groups[] = {"cluster", "dot", "remote", "s3", "user", NULL};

static bool is_group(const char *word)
{
	for (size_t i = 0; groups[i]; i++)
		if (!strcmp(word, groups[i]))
			return true;
	return false;
}

/* Other names of commands, dotmesh's: the word a user types, and the
 * command's name in the table. */
static const struct {
	const char *alias, *name;
} aliases[] = {
	{"ls", "list"},
	{NULL, NULL},
};

static const struct dm_cli_cmd *find_cmd(const char *word, const char *sub)
{
	char name[64];

	for (size_t i = 0; !sub && aliases[i].alias; i++)
		if (!strcmp(word, aliases[i].alias))
			word = aliases[i].name;

	if (sub)
		snprintf(name, sizeof(name), "%s %s", word, sub);
	else
		snprintf(name, sizeof(name), "%s", word);
	for (const struct dm_cli_cmd *c = dm_cli_commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

/* The command of group word whose name is "WORD SUB" or "WORD SUB SUB2"
 * (`dm s3 remote add`), from argv[0..argc) = SUB [SUB2 ...]; *used the
 * words it took (1 or 2). */
static const struct dm_cli_cmd *find_sub_cmd(const char *word, int argc, char **argv, int *used)
{
	const struct dm_cli_cmd *c = find_cmd(word, argv[0]);
	char two[64];

	*used = 1;
	if (c || argc < 2)
		return c;
	snprintf(two, sizeof(two), "%s %s", argv[0], argv[1]);
	*used = 2;
	return find_cmd(word, two);
}

static void print_usage(FILE *f)
{
	fprintf(f, "usage: dm [-c FILE] [--remote NAME] [-v] COMMAND [ARGS]\n"
		   "\n" DM_CLI_ABOUT "\n"
		   "Commands:\n");
	for (const struct dm_cli_cmd *c = dm_cli_commands; c->name; c++)
		fprintf(f, "  %-21s %s\n", c->name, c->summary);
	fprintf(f, "  %-21s %s\n", "help [COMMAND]", "show this help, or a command's");
	fprintf(f, "\n"
		   "Run 'dm help COMMAND' or 'dm COMMAND --help' for a command's options.\n"
		   "The config file is ~/.dm/config, or $DM_CONFIG, or -c FILE.\n");
}

static void print_group_usage(FILE *f, const char *group)
{
	const struct dm_cli_cmd *own = find_cmd(group, NULL);
	size_t len = strlen(group);

	if (own)
		fprintf(f, "usage: dm %s %s\n       dm %s SUBCOMMAND [ARGS]\n\n%c%s.\n", group,
			own->args, group, toupper((unsigned char)own->summary[0]),
			own->summary + 1);
	else
		fprintf(f, "usage: dm %s SUBCOMMAND [ARGS]\n", group);
	fprintf(f, "\nSubcommands:\n");
	for (const struct dm_cli_cmd *c = dm_cli_commands; c->name; c++)
		if (!strncmp(c->name, group, len) && c->name[len] == ' ')
			fprintf(f, "  %-17s %s\n", c->name + len + 1, c->summary);
	fprintf(f, "\nRun 'dm %s SUBCOMMAND --help' for a subcommand's options.\n", group);
}

static void print_help(FILE *f, const struct dm_cli_cmd *c)
{
	fprintf(f, "usage: dm %s%s%s\n\n%c%s.\n\n%s\n" DM_CLI_COMMON_OPTIONS, c->name, *c->args ? " " : "",
		c->args, toupper((unsigned char)c->summary[0]), c->summary + 1, c->help);
}

/* `dm help [WORD [SUB]]` */
static int help(int argc, char **argv, struct dm_err *err)
{
	const struct dm_cli_cmd *c;

	if (argc < 2) {
		print_usage(stdout);
		return 0;
	}
	/* for the build: the manual page and the completion, from this table */
	if (!strcmp(argv[1], "--man")) {
		dm_cli_write_man(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--bash-completion")) {
		dm_cli_write_completion(stdout);
		return 0;
	}
	if (is_group(argv[1]) && argc < 3) {
		print_group_usage(stdout, argv[1]);
		return 0;
	}
	if (is_group(argv[1])) {
		int used;

		c = find_sub_cmd(argv[1], argc - 2, argv + 2, &used);
	} else {
		c = find_cmd(argv[1], NULL);
	}
	if (!c)
		return dm_err_set(err, DM_EINVAL, "no such command '%s%s%s'; see 'dm help'",
				  argv[1], is_group(argv[1]) ? " " : "",
				  is_group(argv[1]) ? argv[2] : "");
	print_help(stdout, c);
	return 0;
}

/* True when the command's arguments ask for help (before any "--"). */
static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return false;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	}
	return false;
}

void dm_cli_release(struct dm_cli *cli)
{
	dm_client_free(cli->client);
	cli->client = NULL;
	dm_config_free(cli->config);
	cli->config = NULL;
}

/* The global options before the command; returns the index of the command
 * word, or a negative code. */
static int global_options(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			cli->verbose++;
		} else if (!strcmp(a, "--remote")) {
			if (i + 1 >= argc)
				return dm_err_set(err, DM_EINVAL,
						  "option '--remote' needs a value; see 'dm help'");
			cli->remote_opt = argv[++i];
		} else if (!strncmp(a, "--remote=", 9)) {
			cli->remote_opt = a + 9;
		} else if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
			if (i + 1 >= argc || !argv[i + 1][0])
				return dm_err_set(err, DM_EINVAL,
						  "option '%s' needs a file; see 'dm help'", a);
			cli->config_opt = argv[++i];
		} else if (!strncmp(a, "--config=", 9) && a[9]) {
			cli->config_opt = a + 9;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			return i; /* `dm --help` is `dm help` */
		} else if (!strcmp(a, "--version")) {
			return i;
		} else {
			return dm_err_set(err, DM_EINVAL, "unknown option '%s'; see 'dm help'", a);
		}
	}
	return i;
}

static char version_word[] = "version";

static int run(struct dm_cli *cli, int argc, char **argv, struct dm_err *err)
{
	const struct dm_cli_cmd *c;
	int first, sub_argc;
	char **sub_argv;

	first = global_options(cli, argc, argv, err);
	if (first < 0)
		return first;
	if (cli->verbose)
		dm_log_setup(stderr, DM_LOG_DEBUG);
	if (first >= argc) {
		print_usage(stdout);
		return 0;
	}
	if (!strcmp(argv[first], "help") || !strcmp(argv[first], "-h") ||
	    !strcmp(argv[first], "--help"))
		return help(argc - first, argv + first, err);
	if (!strcmp(argv[first], "--version"))
		argv[first] = version_word;
	if (is_group(argv[first]) && find_cmd(argv[first], NULL) &&
	    (first + 1 >= argc || (argv[first + 1][0] == '-' && strcmp(argv[first + 1], "-h") &&
				   strcmp(argv[first + 1], "--help")))) {
		/* the group's own command: `dm remote`, `dm remote -v` */
		c = find_cmd(argv[first], NULL);
		sub_argc = argc - first;
		sub_argv = argv + first;
	} else if (is_group(argv[first])) {
		if (first + 1 >= argc || !strcmp(argv[first + 1], "-h") ||
		    !strcmp(argv[first + 1], "--help")) {
			print_group_usage(stdout, argv[first]);
			return 0;
		}
		int used;

		c = find_sub_cmd(argv[first], argc - first - 1, argv + first + 1, &used);
		if (!c)
			return dm_err_set(err, DM_EINVAL,
					  "unknown command 'dm %s %s'; see 'dm %s --help'",
					  argv[first], argv[first + 1], argv[first]);
		sub_argc = argc - first - used;
		sub_argv = argv + first + used;
	} else {
		c = find_cmd(argv[first], NULL);
		if (!c)
			return dm_err_set(err, DM_EINVAL, "unknown command '%s'; see 'dm help'",
					  argv[first]);
		sub_argc = argc - first;
		sub_argv = argv + first;
	}
	cli->cmd = c;
	if (wants_help(sub_argc, sub_argv)) {
		print_help(stdout, c);
		return 0;
	}
	return c->run(cli, sub_argc, sub_argv, err);
}

int main(int argc, char **argv)
{
	struct dm_cli cli;
	struct dm_err err;
	int rc;

	memset(&cli, 0, sizeof(cli));
	dm_err_clear(&err);
	dm_log_setup(stderr, DM_LOG_WARN);
	rc = run(&cli, argc, argv, &err);
	dm_cli_release(&cli);
	if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout)))
		rc = dm_err_errno(&err, errno, "cannot write the output");
	if (rc == 0)
		return 0;
	fflush(stdout);
	fputs("dm: ", stderr);
	dm_out_clean(stderr, err.msg[0] ? err.msg : dm_err_json_name(rc));
	fputc('\n', stderr);
	return dm_err_exit_status(rc);
}
