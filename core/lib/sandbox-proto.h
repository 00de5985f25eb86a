/*
 * sandbox-proto.h - what the runner and surplus-sandbox-init, the first
 * process of a job's pid namespace, agree on.
 *
 * The runner sets the sandbox up in a vfork-like child, then executes
 * surplus-sandbox-init with the job's identity already taken:
 *   argv   "surplus-sandbox-init", "--", the job's command...
 *   envp   the job's environment
 *   fd 0   /dev/null;  fd 1, 2  the job's log
 *   fd 3   the report pipe: a struct sb_report if the command cannot be
 *          executed (or setup fails); closed without one once it runs
 */
#ifndef SURPLUS_SANDBOX_PROTO_H
#define SURPLUS_SANDBOX_PROTO_H

#include <stdint.h>

#define SB_REPORT_FD 3
#define SB_ERR_TEXT 480

struct sb_report {
    int32_t stage;  /* SB_SETUP or SB_EXEC */
    int32_t err;    /* positive errno, or 0 */
    char text[SB_ERR_TEXT]; /* what failed; the reader adds strerror(err) */
};
enum { SB_SETUP = 1, SB_EXEC = 2 };

/* Exit statuses of init when the command never ran. */
#define SB_EXIT_SETUP 125
#define SB_EXIT_NOEXEC 126
#define SB_EXIT_NOTFOUND 127

#endif
