/*
 * recovery.c - jobs a killed surplusd left running (recovery.h).
 */
#include "recovery.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsafe.h"
#include "jobfs.h"
#include "log.h"

/* The reason jobstore_reconcile() gives a job it puts back in the queue. */
#define REQUEUED_BY_RESTART "node restarted; requeued"

struct job_ids {
    char (*id)[JOBSTORE_ID_LEN + 1];
    size_t n;
};

static int on_active(void *arg, const struct job_row *row)
{
    struct job_ids *v = arg;
    char(*n)[JOBSTORE_ID_LEN + 1] = realloc(v->id, (v->n + 1) * sizeof *n);

    if (n == NULL)
        return -ENOMEM;
    v->id = n;
    memcpy(v->id[v->n++], row->id, sizeof *n);
    return 0;
}

int recovery_reconcile(struct jobstore *js, const char *state_dir,
                       int64_t now_us, uint64_t *ret_requeued,
                       uint64_t *ret_failed, struct err *e)
{
    struct job_filter f = {.states = JOB_STATE_BIT(JOB_RUNNING) |
                                     JOB_STATE_BIT(JOB_COMPLETING)};
    struct job_ids v = {0};
    char path[4200];
    int r;

    if ((r = jobstore_list(js, &f, on_active, &v, e)) == 0)
        r = jobstore_reconcile(js, now_us, ret_requeued, ret_failed, e);
    for (size_t i = 0; r == 0 && i < v.n; i++) {
        int rr;

        snprintf(path, sizeof path, "%s/jobs/%s", state_dir, v.id[i]);
        /* Its filesystem first: still mounted where the daemon was
         * killed, and removing the tree would descend into it. */
        if ((rr = jobfs_remove(path, &(struct err){0})) < 0)
            log_msg(SURPLUS_LOG_WARNING, "%s: %s", path, strerror(-rr));
        if ((rr = fsafe_remove_tree(path)) < 0)
            log_msg(SURPLUS_LOG_WARNING, "%s: not removed: %s", path,
                    strerror(-rr));
    }
    free(v.id);
    return r;
}

static int64_t wall_us(void);

struct finish {
    struct jobstore *js;
    int64_t now_us;
    recovery_record_fn record;
    void *arg;
    uint64_t finished;
};

static int on_completing(void *arg, const struct job_row *row)
{
    struct finish *f = arg;
    struct job_update u = {.set = JOB_UPDATE_RECORDED | JOB_UPDATE_REASON,
                           .recorded = row->recorded, .reason = row->reason,
                           .time_us = f->now_us};
    struct err e = {0};
    int r;

    if (row->outcome == JOB_STATE_NONE)
        return 0;
    /* The record may have been written before the crash, under the id
     * persisted with the outcome: the ledger is asked, not the store. */
    if (!row->recorded && f->record) {
        if ((r = f->record(f->arg, row)) < 0)
            log_msg(SURPLUS_LOG_ERR, "job %s: usage record %s not written: "
                                     "%s", row->id,
                    row->record_id ? row->record_id : "(none)",
                    strerror(-r));
        else
            u.recorded = true;
    }
    if (jobstore_transition(f->js, row->id, JOB_COMPLETING, row->outcome,
                            &u, &e) < 0) {
        log_msg(SURPLUS_LOG_ERR, "job %s: %s", row->id, e.msg);
        return 0;
    }
    log_msg(SURPLUS_LOG_INFO, "job %s: %s after a restart, as it had ended",
            row->id, job_state_name(row->outcome));
    f->finished++;
    return 0;
}

int recovery_finish(struct jobstore *js, int64_t now_us,
                    recovery_record_fn record, void *arg,
                    uint64_t *ret_finished, struct err *e)
{
    struct job_filter jf = {.states = JOB_STATE_BIT(JOB_COMPLETING)};
    struct finish f = {.js = js, .now_us = now_us ? now_us : wall_us(),
                       .record = record, .arg = arg};
    int r;

    if ((r = jobstore_list(js, &jf, on_completing, &f, e)) < 0)
        return r;
    if (ret_finished)
        *ret_finished = f.finished;
    return 0;
}

static int count_requeues(void *arg, const struct job_transition *t)
{
    if (t->from == JOB_RUNNING && t->to == JOB_QUEUED && t->reason &&
        strcmp(t->reason, REQUEUED_BY_RESTART) == 0)
        ++*(uint64_t *)arg;
    return 0;
}

static int64_t wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool recovery_give_up(struct jobstore *js, const struct job_row *row,
                      int64_t now_us)
{
    struct job_update u = {.set = JOB_UPDATE_REASON | JOB_UPDATE_ENDED_US,
                           .ended_us = now_us, .time_us = now_us};
    struct err e = {0};
    uint64_t n = 0;
    char why[160];

    if (row->state != JOB_QUEUED || row->reason == NULL ||
        strcmp(row->reason, REQUEUED_BY_RESTART) != 0)
        return false;
    if (jobstore_transitions(js, row->id, count_requeues, &n, &e) < 0) {
        log_msg(SURPLUS_LOG_ERR, "job %s: %s", row->id, e.msg);
        return false;
    }
    if (n <= RECOVERY_MAX_REQUEUES)
        return false;
    if (now_us == 0)
        u.ended_us = u.time_us = wall_us();
    snprintf(why, sizeof why, "node restarted while it ran, %llu times; "
                              "requeued at most %d",
             (unsigned long long)n, RECOVERY_MAX_REQUEUES);
    u.reason = why;
    if (jobstore_transition(js, row->id, JOB_QUEUED, JOB_FAILED, &u, &e) <
        0) {
        log_msg(SURPLUS_LOG_ERR, "job %s: %s", row->id, e.msg);
        return false;
    }
    log_msg(SURPLUS_LOG_WARNING, "job %s: failed: %s", row->id, why);
    return true;
}
