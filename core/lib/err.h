/*
 * err.h - error reporting inside the core library.
 *
 * Library functions return 0 or a negative errno and describe the failure in
 * a caller-provided struct err; they never print or exit.  The program at
 * the top (CLI or daemon) reports the message once.
 */
#ifndef SURPLUS_ERR_H
#define SURPLUS_ERR_H

#include <stddef.h>

#define ERR_MSG_MAX 2048

struct err {
    int code;               /* negative errno of the first failure */
    char msg[ERR_MSG_MAX];  /* one line, no trailing newline */
};

/* Records `code` and the message; returns `code`.  Accepts a NULL err. */
__attribute__((format(printf, 3, 4)))
int err_set(struct err *e, int code, const char *fmt, ...);

/* Prepends context ("loading storage: ") to the current message; returns
 * e->code. */
__attribute__((format(printf, 2, 3)))
int err_prefix(struct err *e, const char *fmt, ...);

void err_clear(struct err *e);

/* Copies `s` into `buf`, escaping bytes that are not printable ASCII as
 * \xNN so that hostile names cannot forge log lines or terminal output. */
char *err_escape(const char *s, char *buf, size_t len);

#endif
