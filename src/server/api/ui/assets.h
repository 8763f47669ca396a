/*
 * assets.h - the web page's files, built into dmd (scripts/embed-ui.py
 * writes the table from src/server/api/ui/page/ at build time), so that
 * nothing needs building or installing on the user's machine.
 */
#ifndef DM_SERVER_API_UI_ASSETS_H
#define DM_SERVER_API_UI_ASSETS_H

#include <stddef.h>

struct dm_ui_asset {
	const char *path; /* "/ui/app.js" */
	const char *content_type;
	const unsigned char *data;
	size_t len;
};

/* Terminated by a NULL path. */
extern const struct dm_ui_asset dm_ui_assets[];

#endif
