/*
 * api.h - surplusd's HTTP/1.1 + JSON API (libmicrohttpd) over the Unix
 * socket and, when configured, TCP with TLS; routes in docs/openapi.yaml.
 */
#ifndef SURPLUS_API_H
#define SURPLUS_API_H

#include "config.h"
#include "err.h"
#include "service.h"

struct api;

int api_start(struct service *s, const struct config *cf, struct api **ret,
              struct err *e);
/* How many connections the listeners take together: api.max_connections,
 * but never more than the open-file limit leaves room for beside the jobs
 * (a quarter of RLIMIT_NOFILE's soft limit). */
unsigned api_connection_budget(const struct config *cf);
/* Stops accepting connections (draining) but finishes the open ones. */
void api_quiesce(struct api *a);
void api_stop(struct api *a);

#endif
