/*
 * internal.h - what every engine shares with the dispatch in engine.c
 * (src/engine only).
 *
 * Each engine's struct dm_engine begins with a struct dm_engine_base, so
 * that engine.c can find the ops table of any engine it is handed.
 */
#ifndef DM_ENGINE_INTERNAL_H
#define DM_ENGINE_INTERNAL_H

#include "engine/engine.h"

struct dm_engine_base {
	const struct dm_engine_ops *ops;
};

#endif
