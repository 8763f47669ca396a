/*
 * metrics_http.h - GET /metrics: every metric of dm (metrics/catalog.h)
 * in Prometheus's text exposition format, with the figures that are read
 * when asked for (the dots, the store, the process) brought up to date
 * first. docs/metrics.md lists them. http.c routes the request and decides
 * who may ask (an admin, or anyone with dmd start --metrics-public).
 */
#ifndef DM_SERVER_API_METRICS_HTTP_H
#define DM_SERVER_API_METRICS_HTTP_H

struct dm_api_env;

/* The body (malloc'ed, NUL-terminated), or NULL when out of memory.
 * Called on connection threads, any number at once. */
char *dm_metrics_http_body(const struct dm_api_env *env);

#endif
