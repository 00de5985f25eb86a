/*
 * client.h - the CLI's side of the surplusd API: one HTTP request over the
 * Unix socket (--socket, default api.socket) or HTTPS (--url with
 * --token-file), and the exit code that matches the answer.
 */
#ifndef SURPLUS_CLIENT_H
#define SURPLUS_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cli.h"

struct reply {
    long status;    /* HTTP status, 0 when no answer came */
    char *body;     /* NUL-terminated */
    size_t len;
    bool replayed;  /* Idempotent-Replayed: true (a submission's retry) */
};

/* `upload_fd` >= 0 sends that file as the body (with a progress bar on a
 * terminal); `sink_fd` >= 0 streams the body there instead of keeping it.
 * Returns 0 when an answer came (whatever its status), else an exit code
 * with the reason printed: EXIT_TEMPFAIL (rep->status 0) when none came
 * (no daemon, a connection cut before the answer), which a retry may
 * cure. */
int client_request(const struct cli *cli, const char *method,
                   const char *path, int upload_fd, int sink_fd,
                   struct reply *rep);
/* The same, with more header lines ("Name: value"; NULL ends the list). */
int client_request_with(const struct cli *cli, const char *method,
                        const char *path, const char *const *headers,
                        int upload_fd, int sink_fd, struct reply *rep);
void reply_free(struct reply *rep);

/* Prints the API's error message for a non-2xx reply and returns the exit
 * code of surplus(1) for it. */
int client_fail(const struct reply *rep);

/* Parses a 2xx JSON body; NULL (and a message) if it is not JSON. */
json_t *client_json(const struct reply *rep);

#endif
