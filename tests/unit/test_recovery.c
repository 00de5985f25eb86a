/*
 * test_recovery.c - what surplusd does at start about the jobs a killed
 * daemon left running: requeued or failed as their manifest says, their
 * directories removed (and nothing else, and never through a symlink), and
 * a job requeued by restarts more than RECOVERY_MAX_REQUEUES times failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsafe.h"
#include "jobstore.h"
#include "recovery.h"
#include "tap.h"

#define ID_AGAIN "00000000000000a1"
#define ID_ONCE "00000000000000b2"
#define ID_QUEUED "00000000000000c3"
#define ID_OTHER "00000000000000d4" /* not the store's: surplus run's, say */
#define ID_ENDED "00000000000000e5"
#define ENDED_RECORD ID_ENDED "-1700000000000000"

static char dir[] = "/tmp/surplus-recovery.XXXXXX";

static int insert(struct jobstore *js, const char *id, bool requeue)
{
    struct job_row row = {0};
    struct err e = {0};
    int r;

    snprintf(row.id, sizeof row.id, "%s", id);
    row.tenant = (char *)"acme";
    row.name = (char *)"job";
    row.cpus = 1;
    row.memory = 1 << 20;
    row.walltime_ms = 60000;
    row.requeue = requeue;
    if ((r = jobstore_insert(js, &row, &e)) < 0)
        tap_diag("insert %s: %s", id, e.msg);
    return r;
}

static int start(struct jobstore *js, const char *id)
{
    struct err e = {0};
    int r = jobstore_transition(js, id, JOB_QUEUED, JOB_RUNNING, NULL, &e);

    if (r < 0)
        tap_diag("start %s: %s", id, e.msg);
    return r;
}

/* <dir>/jobs/<id>/work/out.txt, as a runner leaves it. */
static void job_dir(const char *id)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof path, "%s/jobs/%s", dir, id);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/jobs/%s/work", dir, id);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/jobs/%s/work/out.txt", dir, id);
    if ((f = fopen(path, "w")) != NULL) {
        fputs("partial\n", f);
        fclose(f);
    }
}

static bool exists(const char *rel)
{
    char path[512];
    struct stat st;

    snprintf(path, sizeof path, "%s/%s", dir, rel);
    return lstat(path, &st) == 0;
}

static enum job_state state_of(struct jobstore *js, const char *id,
                               char *reason, size_t len)
{
    struct job_row row = {0};
    struct err e = {0};
    enum job_state st;

    if (jobstore_get(js, id, &row, &e) < 0)
        return JOB_STATE_NONE;
    st = row.state;
    snprintf(reason, len, "%s", row.reason ? row.reason : "");
    job_row_free(&row);
    return st;
}

static bool give_up(struct jobstore *js, const char *id)
{
    struct job_row row = {0};
    struct err e = {0};
    bool r;

    if (jobstore_get(js, id, &row, &e) < 0)
        return false;
    r = recovery_give_up(js, &row, 0);
    job_row_free(&row);
    return r;
}

struct recorded {
    int calls;
    char record_id[64];
};

static int fake_record(void *arg, const struct job_row *row)
{
    struct recorded *rc = arg;

    rc->calls++;
    snprintf(rc->record_id, sizeof rc->record_id, "%s",
             row->record_id ? row->record_id : "");
    return 0;
}

/* A job whose command ended and whose outcome was persisted (running ->
 * completing), killed with the daemon before its final state was written,
 * maybe after its usage record: it ends as it had ended, billed under the
 * persisted record id, and is never run again, even with requeue. */
static void test_completing(struct jobstore *js)
{
    struct job_update u = {.set = JOB_UPDATE_EXIT_STATUS |
                                  JOB_UPDATE_ENDED_US | JOB_UPDATE_OUTCOME |
                                  JOB_UPDATE_RECORD_ID,
                           .exit_status = 0, .ended_us = 1700000000000000,
                           .outcome = JOB_SUCCEEDED,
                           .record_id = ENDED_RECORD};
    struct recorded rc = {0};
    struct job_row row = {0};
    uint64_t requeued = 99, failed = 99, finished = 99;
    struct err e = {0};
    char reason[256];
    int r;

    tap_ok(insert(js, ID_ENDED, true) == 0 && start(js, ID_ENDED) == 0 &&
               jobstore_transition(js, ID_ENDED, JOB_RUNNING, JOB_COMPLETING,
                                   &u, &e) == 0,
           "a job with requeue ended and is completing, outcome persisted "
           "(%s)", e.msg);
    job_dir(ID_ENDED);
    r = recovery_reconcile(js, dir, 0, &requeued, &failed, &e);
    tap_ok(r == 0 && requeued == 0 && failed == 0,
           "recovery_reconcile neither requeues nor fails it (%d: %s)", r,
           e.msg);
    tap_ok(state_of(js, ID_ENDED, reason, sizeof reason) == JOB_COMPLETING,
           "it is left completing");
    tap_ok(!exists("jobs/" ID_ENDED), "its directory is removed");
    r = recovery_finish(js, 0, fake_record, &rc, &finished, &e);
    tap_ok(r == 0 && finished == 1, "recovery_finish finishes it (%d: %s)", r,
           e.msg);
    tap_ok(rc.calls == 1 && strcmp(rc.record_id, ENDED_RECORD) == 0,
           "its usage record is written once, under the persisted id '%s' "
           "(%d calls)", rc.record_id, rc.calls);
    r = jobstore_get(js, ID_ENDED, &row, &e);
    tap_ok(r == 0 && row.state == JOB_SUCCEEDED && row.recorded &&
               row.exit_status == 0 && row.ended_us == 1700000000000000 &&
               row.reason == NULL,
           "it is succeeded, recorded, with its exit status and end time "
           "(%s, reason %s)", job_state_name(row.state),
           row.reason ? row.reason : "none");
    job_row_free(&row);
    r = recovery_finish(js, 0, fake_record, &rc, &finished, &e);
    tap_ok(r == 0 && finished == 0 && rc.calls == 1,
           "a second recovery_finish changes nothing");
}

int main(void)
{
    struct jobstore *js = NULL;
    struct err e = {0};
    uint64_t requeued = 99, failed = 99;
    char path[512], reason[256];
    int r;

    if (mkdtemp(dir) == NULL)
        return 99;
    snprintf(path, sizeof path, "%s/jobs.db", dir);
    if (jobstore_open(path, &js, &e) < 0) {
        tap_diag("%s", e.msg);
        return 99;
    }
    snprintf(path, sizeof path, "%s/jobs", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/outside", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/outside/keep", dir);
    close(open(path, O_WRONLY | O_CREAT, 0600));

    tap_ok(insert(js, ID_AGAIN, true) == 0 && insert(js, ID_ONCE, false) == 0 &&
               insert(js, ID_QUEUED, true) == 0 && start(js, ID_AGAIN) == 0 &&
               start(js, ID_ONCE) == 0,
           "two running jobs (requeue and not) and a queued one");
    job_dir(ID_AGAIN);
    job_dir(ID_ONCE);
    job_dir(ID_OTHER);
    /* A job may have left a link to somewhere else: only the link goes. */
    snprintf(path, sizeof path, "%s/jobs/%s/work/escape", dir, ID_ONCE);
    if (symlink("../../../outside", path) < 0)
        return 99;

    r = recovery_reconcile(js, dir, 0, &requeued, &failed, &e);
    tap_ok(r == 0, "recovery_reconcile: %s", e.msg);
    tap_is_int(requeued, 1, "one job requeued");
    tap_is_int(failed, 1, "one job failed");
    tap_ok(state_of(js, ID_AGAIN, reason, sizeof reason) == JOB_QUEUED &&
               strcmp(reason, "node restarted; requeued") == 0,
           "the job with requeue is queued again: %s", reason);
    tap_ok(state_of(js, ID_ONCE, reason, sizeof reason) == JOB_FAILED &&
               strcmp(reason, "node restarted") == 0,
           "the job without is failed: %s", reason);
    tap_ok(!exists("jobs/" ID_AGAIN) && !exists("jobs/" ID_ONCE),
           "both directories are removed");
    tap_ok(exists("outside/keep"), "nothing is removed through a symlink");
    tap_ok(exists("jobs/" ID_OTHER "/work/out.txt"),
           "a directory of a job the store does not know is left alone");
    tap_ok(state_of(js, ID_QUEUED, reason, sizeof reason) == JOB_QUEUED,
           "the queued job stays queued");
    tap_ok(!give_up(js, ID_QUEUED), "a queued job never requeued runs");

    /* Requeued again and again: RECOVERY_MAX_REQUEUES times it runs. */
    for (int i = 1; i <= RECOVERY_MAX_REQUEUES + 1; i++) {
        bool gave_up = give_up(js, ID_AGAIN);

        if (i <= RECOVERY_MAX_REQUEUES) {
            tap_ok(!gave_up, "after %d requeue(s) by a restart it runs again",
                   i);
            if (start(js, ID_AGAIN) < 0 ||
                recovery_reconcile(js, dir, 0, NULL, NULL, &e) < 0)
                break;
            continue;
        }
        tap_ok(gave_up, "after %d it is not queued", i);
        tap_ok(state_of(js, ID_AGAIN, reason, sizeof reason) == JOB_FAILED &&
                   strcmp(reason, "node restarted while it ran, 4 times; "
                                  "requeued at most 3") == 0,
               "it is failed, saying why: %s", reason);
    }
    tap_ok(!give_up(js, ID_AGAIN), "a failed job is left alone");
    test_completing(js);

    jobstore_close(js);
    fsafe_remove_tree(dir);
    return tap_done();
}
