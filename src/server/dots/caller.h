/*
 * caller.h - who a request is for: set by authentication (api/auth.h)
 * before dispatch, and carried to every part that acts for a user: the
 * RPC handlers, the objects endpoints, forwarding to another node of the
 * cluster. A dot's rights are checked against it.
 */
#ifndef DM_SERVER_DOTS_CALLER_H
#define DM_SERVER_DOTS_CALLER_H

#include <stdbool.h>

struct dm_caller {
	char user[128];
	bool admin;
	bool forwarded; /* another node of the cluster sent this on the user's behalf */
	char node[40];  /* the node of the cluster that called, by its certificate, or "" */
};

#endif
