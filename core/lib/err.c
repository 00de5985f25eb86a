#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int err_set(struct err *e, int code, const char *fmt, ...)
{
    va_list ap;

    if (e == NULL)
        return code;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return code;
}

int err_prefix(struct err *e, const char *fmt, ...)
{
    char prefix[ERR_MSG_MAX], old[ERR_MSG_MAX];
    va_list ap;

    if (e == NULL)
        return 0;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof(old));
    {
        size_t pl = strnlen(prefix, sizeof(e->msg) - 1);
        size_t ol = strnlen(old, sizeof(e->msg) - 1 - pl);

        memcpy(e->msg, prefix, pl);
        memcpy(e->msg + pl, old, ol);
        e->msg[pl + ol] = '\0';
    }
    return e->code;
}

void err_clear(struct err *e)
{
    if (e == NULL)
        return;
    e->code = 0;
    e->msg[0] = '\0';
}

char *err_escape(const char *s, char *buf, size_t len)
{
    size_t o = 0;

    if (len == 0)
        return buf;
    if (s == NULL)
        s = "(null)";
    for (; *s != '\0' && o + 5 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            buf[o++] = (char)c;
        } else {
            snprintf(buf + o, len - o, "\\x%02x", c);
            o += 4;
        }
    }
    buf[o] = '\0';
    return buf;
}
