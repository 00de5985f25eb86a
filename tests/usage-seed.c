/*
 * usage-seed CONFIG FIELD=VALUE... [-- FIELD=VALUE...]...
 *
 * Writes synthetic usage records through the accounting plugin that CONFIG
 * names, for tests/cli-usage.sh: nothing writes records yet but a finished
 * job.  Each group of arguments between "--" is one record; FIELD is a
 * member of struct surplus_usage_record, and device=ID=MODEL (repeatable)
 * adds a device.  Unset fields default to job_id = record_id, job_name
 * "job", node "node-1", state "succeeded", currency "USD", start_us =
 * end_us - duration_us.  Exits 0, 64 for bad arguments, 78 when the plugin
 * cannot be loaded, 70 when it refuses a record, with the message on
 * stderr.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <surplus/accounting.h>

#include "calls.h"
#include "config.h"
#include "loader.h"

#define MAX_DEVICES 16

struct seed {
    struct surplus_usage_record rec;
    struct surplus_usage_device devices[MAX_DEVICES];
    bool has_start;
};

static bool parse_i64(const char *s, int64_t *ret)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return false;
    *ret = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *ret)
{
    int64_t v;

    if (!parse_i64(s, &v) || v < 0)
        return false;
    *ret = (uint64_t)v;
    return true;
}

static bool parse_double(const char *s, double *ret)
{
    char *end;

    errno = 0;
    *ret = strtod(s, &end);
    return errno == 0 && end != s && *end == '\0';
}

/* One FIELD=VALUE; the value stays in argv, which outlives the record. */
static bool set_field(struct seed *sd, char *arg)
{
    struct surplus_usage_record *r = &sd->rec;
    char *v = strchr(arg, '=');
    int64_t exit_status;

    if (v == NULL)
        return false;
    *v++ = '\0';
    if (strcmp(arg, "record_id") == 0)
        r->record_id = v;
    else if (strcmp(arg, "job_id") == 0)
        r->job_id = v;
    else if (strcmp(arg, "tenant") == 0)
        r->tenant = v;
    else if (strcmp(arg, "job_name") == 0)
        r->job_name = v;
    else if (strcmp(arg, "node") == 0)
        r->node = v;
    else if (strcmp(arg, "state") == 0)
        r->state = v;
    else if (strcmp(arg, "currency") == 0)
        r->currency = v;
    else if (strcmp(arg, "device") == 0) {
        char *model = strchr(v, '=');
        if (model == NULL || r->n_devices == MAX_DEVICES)
            return false;
        *model++ = '\0';
        sd->devices[r->n_devices].id = v;
        sd->devices[r->n_devices++].model = model;
    } else if (strcmp(arg, "start_us") == 0)
        return (sd->has_start = parse_i64(v, &r->start_us));
    else if (strcmp(arg, "end_us") == 0)
        return parse_i64(v, &r->end_us);
    else if (strcmp(arg, "duration_us") == 0)
        return parse_u64(v, &r->duration_us);
    else if (strcmp(arg, "device_seconds") == 0)
        return parse_double(v, &r->device_seconds);
    else if (strcmp(arg, "cpu_seconds") == 0)
        return parse_double(v, &r->cpu_seconds);
    else if (strcmp(arg, "max_rss_bytes") == 0)
        return parse_u64(v, &r->max_rss_bytes);
    else if (strcmp(arg, "exit_status") == 0) {
        if (!parse_i64(v, &exit_status) || exit_status < 0 ||
            exit_status > 255)
            return false;
        r->exit_status = (int)exit_status;
    } else if (strcmp(arg, "bytes_in") == 0)
        return parse_u64(v, &r->bytes_in);
    else if (strcmp(arg, "bytes_out") == 0)
        return parse_u64(v, &r->bytes_out);
    else if (strcmp(arg, "cost_micros") == 0)
        return parse_i64(v, &r->cost_micros);
    else
        return false;
    return true;
}

static void defaults(struct seed *sd)
{
    struct surplus_usage_record *r = &sd->rec;

    if (r->job_id == NULL)
        r->job_id = r->record_id;
    if (r->job_name == NULL)
        r->job_name = "job";
    if (r->node == NULL)
        r->node = "node-1";
    if (r->state == NULL)
        r->state = "succeeded";
    if (r->currency == NULL)
        r->currency = "USD";
    if (!sd->has_start)
        r->start_us = r->end_us - (int64_t)r->duration_us;
    r->devices = sd->devices;
}

static int load(const char *config_path, struct config **ret_cf,
                struct plugin **ret_p, struct err *e)
{
    struct settings s = {0};
    char *path = NULL;
    int r;

    r = config_load(config_path, ret_cf, e);
    if (r == 0)
        r = plugin_find("accounting", (*ret_cf)->accounting.plugin,
                        (*ret_cf)->plugin_dir, &path, e);
    if (r == 0)
        r = plugin_open(path, ret_p, e);
    if (r == 0 && settings_copy(&(*ret_cf)->accounting.settings, &s) < 0)
        r = err_set(e, -ENOMEM, "out of memory");
    if (r == 0)
        r = plugin_start(*ret_p, &s, e);
    free(path);
    return r;
}

int main(int argc, char **argv)
{
    struct config *cf = NULL;
    struct plugin *p = NULL;
    struct err e = {0};
    int i = 2, r, status = 0, n = 0;

    if (argc < 3) {
        fprintf(stderr,
                "usage: usage-seed CONFIG FIELD=VALUE... [-- FIELD=VALUE...]"
                "...\n");
        return 64;
    }
    if (load(argv[1], &cf, &p, &e) < 0) {
        fprintf(stderr, "usage-seed: %s\n", e.msg);
        plugin_close(p);
        config_free(cf);
        return 78;
    }
    while (i < argc && status == 0) {
        struct seed sd = {0};

        for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
            if (!set_field(&sd, argv[i])) {
                fprintf(stderr, "usage-seed: bad field '%s'\n", argv[i]);
                status = 64;
                break;
            }
        }
        i++; /* past "--" */
        if (status != 0)
            break;
        defaults(&sd);
        r = accounting_record(p, &sd.rec, &e);
        if (r < 0) {
            plugin_error(p, r, &e, "record");
            fprintf(stderr, "usage-seed: %s\n", e.msg);
            status = 70;
        }
        n++;
    }
    if (status == 0 && (r = accounting_flush(p, &e)) < 0) {
        plugin_error(p, r, &e, "flush");
        fprintf(stderr, "usage-seed: %s\n", e.msg);
        status = 70;
    }
    plugin_close(p);
    config_free(cf);
    if (status == 0)
        printf("%d records written\n", n);
    return status;
}
