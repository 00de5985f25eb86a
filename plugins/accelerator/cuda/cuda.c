/*
 * accelerator/cuda - NVIDIA GPUs through the CUDA runtime.
 *
 * The core never holds a CUDA context.  A context pins driver state, device
 * memory and threads into a long-running daemon, outlives the jobs it
 * should be isolated from, and lets a driver fault take the daemon down.  So
 * every CUDA call is made by a short-lived helper: a forked child that does
 * the work, writes fixed-size records to a pipe and _exit()s.  This process
 * only keeps the inventory and the lease bookkeeping, and bounds every
 * helper with `helper_timeout`.
 *
 * The runtime is linked statically, so the plugin loads where there is no
 * driver at all, and then reports zero devices with CUDA's own explanation.
 *
 * A lease's life: discover (and prepare, when the last check is stale)
 * health-checks the device in a helper; prepare exposes its node, the
 * control nodes and CUDA_VISIBLE_DEVICES=<UUID>; release waits until no
 * process holds the node any more (holders.c), then a helper scrubs all
 * the device's free memory (scrub.c, with the kernels of kernels.cu).  A
 * device that is still held, or whose scrub fails, is retired.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* pipe2() */
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include <surplus/accelerator.h>

#include "holders.h"
#include "scrub.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

#define CUDA_TIMEOUT_DEFAULT_MS (UINT64_C(60) * 1000)
/* How long a killed helper gets to disappear before it is given up on (a
 * process stuck in the driver may not die at once). */
#define CUDA_REAP_GRACE_MS 5000
#define CUDA_TEXT 384
#define CUDA_ID_MAX 48
/* A reply longer than this is not a reply. */
#define CUDA_REPLY_MAX 1024

#define HEALTH_BYTES ((size_t)1 << 20)
#define HEALTH_BYTE 0x5a
/* A health check younger than this is trusted by prepare: the core
 * discovers, which checks every free device, just before it leases. */
#define HEALTH_MAX_AGE_DEFAULT_MS (UINT64_C(5) * 1000)
/* How long release waits for the last job's processes to let go of a
 * device: one killed inside a driver call may take a moment to exit. */
#define HOLDER_WAIT_DEFAULT_MS (UINT64_C(10) * 1000)
#define HOLDER_POLL_MS 100
/* Holders named in one message. */
#define HOLDERS_SHOWN 4
/* Programs that keep GPU nodes open without being anyone's job: the
 * persistence daemon (that is its purpose), DCGM's host engine and
 * nvidia-smi.  Only processes outside any job's pid namespace qualify. */
#define IGNORE_HOLDERS_DEFAULT "nvidia-persistenced,nv-hostengine,nvidia-smi"

static const char *const cuda_control_nodes[] = {
    "/dev/nvidiactl",
    "/dev/nvidia-uvm",
    "/dev/nvidia-uvm-tools",
};

enum wire_type { WIRE_DEVICE = 1, WIRE_SCRUB = 2, WIRE_DONE = 3 };

enum wire_health {
    HEALTH_UNCHECKED = -1, /* held by a lease: its tenant is not disturbed */
    HEALTH_BAD = 0,
    HEALTH_OK = 1,
};

/*
 * One record of a helper's reply.  Parent and child are the same binary, so
 * a fixed struct needs no encoding; and it fits in PIPE_BUF, so each record
 * reaches the parent whole.  A reply is any number of DEVICE or SCRUB
 * records and then one DONE; without DONE it is incomplete.
 */
struct wire {
    uint32_t type;
    int32_t err;          /* SCRUB: 0 or -EIO; DONE: result of the helper */
    int32_t ordinal;      /* DEVICE */
    int32_t health;       /* DEVICE: enum wire_health */
    uint64_t bytes;       /* DEVICE: memory size; SCRUB: bytes verified */
    uint64_t duration_ns; /* SCRUB */
    char id[CUDA_ID_MAX]; /* empty when the device could not be identified */
    char model[256];
    char pci_bus_id[32];
    char node[32];
    char detail[CUDA_TEXT];
    char text[CUDA_TEXT]; /* why unhealthy, why the scrub failed, or DONE's
                             message */
};

_Static_assert(sizeof(struct wire) <= PIPE_BUF,
               "a reply record must reach the parent in one piece");

struct cuda_device {
    char id[CUDA_ID_MAX]; /* "GPU-<uuid>" */
    char model[256];
    char pci_bus_id[32];
    char node[32];
    char detail[CUDA_TEXT];
    char reason[CUDA_TEXT];
    uint64_t memory;
    bool healthy;
    bool retired; /* failed a scrub: never leased again */
    char *holder; /* lease id, NULL while free */
    uint64_t checked_ms; /* when health was last seen, now_ms(); 0: never */
};

struct cuda {
    const struct surplus_host *host;
    struct surplus_ctx *ctx;
    uint64_t timeout_ms;
    uint64_t health_max_age_ms;
    uint64_t holder_wait_ms;
    const char *devices;       /* the setting as written, for messages */
    char **filter;             /* its entries; none: every device */
    size_t n_filter;
    const char *ignore_holders; /* the setting as written */
    char **ignore;             /* its entries */
    size_t n_ignore;
    struct cuda_device *devs;  /* the inventory of the last discover */
    size_t n_devs;
    bool have_inventory;
    char why_none[CUDA_TEXT];  /* why the last discover found nothing */
};

/* The devices a health or scrub helper works on. */
struct device_request {
    const size_t *index;       /* into devs */
    size_t n;
};

typedef int (*cuda_work_fn)(const struct cuda *c, const void *arg, int fd);

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ms(void)
{
    return now_ns() / 1000000;
}

static void cuda_fini(void *state)
{
    struct cuda *c = state;

    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_devs; i++)
        free(c->devs[i].holder);
    free(c->devs);
    for (size_t i = 0; i < c->n_filter; i++)
        free(c->filter[i]);
    free(c->filter);
    for (size_t i = 0; i < c->n_ignore; i++)
        free(c->ignore[i]);
    free(c->ignore);
    free(c);
}

static bool is_index(const char *s)
{
    return s[0] != '\0' && strspn(s, "0123456789") == strlen(s);
}

/* Does the `devices` entry `f` name the device at `ordinal` with `uuid`
 * (NULL when unknown)?  "GPU-" may be left out.  Ordinals count in PCI bus
 * order among the GPUs the core itself may see: a CUDA_VISIBLE_DEVICES in
 * the core's environment is honoured, as the operator's choice. */
static bool filter_match(const char *f, int ordinal, const char *uuid)
{
    if (is_index(f))
        return strtol(f, NULL, 10) == ordinal;
    if (uuid == NULL)
        return false;
    return strcasecmp(f, uuid) == 0 ||
           (strncasecmp(uuid, "GPU-", 4) == 0 && strcasecmp(f, uuid + 4) == 0);
}

static bool cuda_wanted(const struct cuda *c, int ordinal, const char *uuid)
{
    if (c->n_filter == 0)
        return true;
    for (size_t i = 0; i < c->n_filter; i++)
        if (filter_match(c->filter[i], ordinal, uuid))
            return true;
    return false;
}

/* Splits a comma-separated setting into trimmed entries, stored in
 * *ret (freed by fini, also on error). */
static int split_list(struct cuda *c, const char *list, char ***ret,
                      size_t *ret_n)
{
    const char *p = list;
    size_t n = 1;

    if (list == NULL || list[0] == '\0')
        return 0;
    for (const char *q = list; *q != '\0'; q++)
        n += *q == ',';
    *ret = calloc(n, sizeof(**ret));
    if (*ret == NULL)
        return c->host->error(c->ctx, -ENOMEM, "out of memory");
    for (;;) {
        const char *end = strchr(p, ','), *e;
        char *f;

        if (end == NULL)
            end = p + strlen(p);
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        for (e = end; e > p && (e[-1] == ' ' || e[-1] == '\t'); e--)
            ;
        f = strndup(p, (size_t)(e - p));
        if (f == NULL)
            return c->host->error(c->ctx, -ENOMEM, "out of memory");
        (*ret)[(*ret_n)++] = f;
        if (*end == '\0')
            return 0;
        p = end + 1;
    }
}

static int cuda_parse_devices(struct cuda *c, const char *list)
{
    int r = split_list(c, list, &c->filter, &c->n_filter);

    if (r < 0)
        return r;
    for (size_t i = 0; i < c->n_filter; i++) {
        const char *f = c->filter[i];

        if (is_index(f) ? strlen(f) > 4
                        : (f[0] == '\0' || strlen(f) >= CUDA_ID_MAX ||
                           strspn(f, "0123456789abcdefABCDEF-GPUgpu") <
                               strlen(f)))
            return c->host->error(c->ctx, -EINVAL,
                                  "devices = '%s': '%s' is neither a GPU "
                                  "UUID nor an index", list, f);
    }
    return 0;
}

static int cuda_parse_ignore(struct cuda *c, const char *list)
{
    int r = split_list(c, list, &c->ignore, &c->n_ignore);

    if (r < 0)
        return r;
    for (size_t i = 0; i < c->n_ignore; i++)
        if (c->ignore[i][0] == '\0' || strchr(c->ignore[i], '/') != NULL)
            return c->host->error(c->ctx, -EINVAL,
                                  "ignore_holders = '%s': '%s' is not the "
                                  "name of a program (no '/', not empty)",
                                  list, c->ignore[i]);
    return 0;
}

static int cuda_init(const struct surplus_host *host, struct surplus_ctx *ctx,
                     void **ret_state)
{
    const char *devices, *ignore;
    uint64_t timeout_ms, health_ms, holder_ms;
    struct cuda *c;
    int r;

    /* All settings are read here: the core reports keys never asked for
     * as unknown. */
    r = host->config_duration(ctx, "helper_timeout", CUDA_TIMEOUT_DEFAULT_MS,
                              &timeout_ms);
    if (r < 0)
        return r;
    r = host->config_string(ctx, "devices", "", &devices);
    if (r < 0)
        return r;
    r = host->config_duration(ctx, "health_max_age",
                              HEALTH_MAX_AGE_DEFAULT_MS, &health_ms);
    if (r < 0)
        return r;
    r = host->config_duration(ctx, "holder_wait", HOLDER_WAIT_DEFAULT_MS,
                              &holder_ms);
    if (r < 0)
        return r;
    r = host->config_string(ctx, "ignore_holders", IGNORE_HOLDERS_DEFAULT,
                            &ignore);
    if (r < 0)
        return r;
    if (timeout_ms == 0)
        return host->error(ctx, -EINVAL, "helper_timeout must be positive");

    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return host->error(ctx, -ENOMEM, "out of memory");
    c->host = host;
    c->ctx = ctx;
    c->timeout_ms = timeout_ms;
    c->health_max_age_ms = health_ms;
    c->holder_wait_ms = holder_ms;
    c->devices = devices ? devices : "";
    c->ignore_holders = ignore ? ignore : "";
    r = cuda_parse_devices(c, c->devices);
    if (r == 0)
        r = cuda_parse_ignore(c, c->ignore_holders);
    if (r < 0) {
        cuda_fini(c);
        return r;
    }
    /* No CUDA here, not even to look: the inventory is taken by the first
     * discover, in a helper. */
    *ret_state = c;
    return 0;
}

/* ---- the helper side: runs only in the forked child ------------------- */

static int wire_send(int fd, const struct wire *w)
{
    const char *p = (const char *)w;
    size_t left = sizeof(*w);

    while (left > 0) {
        ssize_t n = write(fd, p, left);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        left -= (size_t)n;
    }
    return 0;
}

__attribute__((format(printf, 3, 4)))
static int wire_done(int fd, int err, const char *fmt, ...)
{
    struct wire w;
    va_list ap;

    memset(&w, 0, sizeof(w));
    w.type = WIRE_DONE;
    w.err = err;
    va_start(ap, fmt);
    vsnprintf(w.text, sizeof(w.text), fmt, ap);
    va_end(ap);
    return wire_send(fd, &w);
}

static void cuda_describe(char *buf, size_t len, const char *call,
                          cudaError_t e)
{
    snprintf(buf, len, "%s: %s: %s", call, cudaGetErrorName(e),
             cudaGetErrorString(e));
}

static void format_uuid(const cudaUUID_t *uuid, char *buf, size_t len)
{
    const unsigned char *b = (const unsigned char *)uuid->bytes;

    snprintf(buf, len,
             "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
             b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* Reads "Device Minor:" from one /proc/driver/nvidia/gpus/<bus id>/
 * information file.  Returns 0, -errno, or -ENOENT without the line. */
static int read_minor(const char *dir, unsigned *ret)
{
    char path[PATH_MAX], *line = NULL;
    size_t cap = 0;
    int r = -ENOENT;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/driver/nvidia/gpus/%s/information",
             dir);
    f = fopen(path, "re");
    if (f == NULL)
        return -errno;
    while (getline(&line, &cap, f) > 0)
        if (strncmp(line, "Device Minor:", 13) == 0 &&
            sscanf(line + 13, " %u", ret) == 1) {
            r = 0;
            break;
        }
    free(line);
    fclose(f);
    return r;
}

/* The device node the driver gave the GPU at domain:bus:device, found
 * through the driver's /proc entry, whose name the driver spells as it
 * likes (4 or 8 hex digits of domain, either case): hence the scan. */
static void find_node(const struct cudaDeviceProp *prop, char *node,
                      size_t node_len, char *why, size_t why_len)
{
    const char *base = "/proc/driver/nvidia/gpus";
    char exact[32];
    struct dirent *de;
    unsigned minor;
    DIR *d;
    int r;

    snprintf(exact, sizeof(exact), "%04x:%02x:%02x.0",
             (unsigned)prop->pciDomainID, (unsigned)prop->pciBusID,
             (unsigned)prop->pciDeviceID);
    r = read_minor(exact, &minor);
    if (r == -ENOENT || r == -ENOTDIR) {
        d = opendir(base);
        if (d == NULL) {
            snprintf(why, why_len, "no device node: %s: %s", base,
                     strerror(errno));
            return;
        }
        while ((de = readdir(d)) != NULL) {
            unsigned dom, bus, dev, fn;
            char extra;

            if (sscanf(de->d_name, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn,
                       &extra) == 4 &&
                dom == (unsigned)prop->pciDomainID &&
                bus == (unsigned)prop->pciBusID &&
                dev == (unsigned)prop->pciDeviceID) {
                r = read_minor(de->d_name, &minor);
                break;
            }
        }
        closedir(d);
    }
    if (r < 0) {
        snprintf(why, why_len, "no device node: %s/%s/information: %s",
                 base, exact,
                 r == -ENOENT ? "not found, or no 'Device Minor' line"
                              : strerror(-r));
        return;
    }
    snprintf(node, node_len, "/dev/nvidia%u", minor);
}

/* A device is healthy when a round trip through its memory works. */
static void check_health(int ordinal, struct wire *w)
{
    unsigned char *host = NULL;
    void *dev = NULL;
    const char *call;
    cudaError_t e;
    size_t bad;

    w->health = HEALTH_BAD;
    call = "cudaSetDevice";
    e = cudaSetDevice(ordinal);
    if (e != cudaSuccess)
        goto cuda_fail;
    call = "cudaMalloc";
    e = cudaMalloc(&dev, HEALTH_BYTES);
    if (e != cudaSuccess)
        goto cuda_fail;
    call = "cudaMemset";
    e = cudaMemset(dev, HEALTH_BYTE, HEALTH_BYTES);
    if (e != cudaSuccess)
        goto cuda_fail;
    host = malloc(HEALTH_BYTES);
    if (host == NULL) {
        snprintf(w->text, sizeof(w->text),
                 "health check: out of host memory");
        goto out;
    }
    call = "cudaMemcpy";
    e = cudaMemcpy(host, dev, HEALTH_BYTES, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess)
        goto cuda_fail;
    for (bad = 0; bad < HEALTH_BYTES && host[bad] == HEALTH_BYTE; bad++)
        ;
    if (bad < HEALTH_BYTES) {
        snprintf(w->text, sizeof(w->text),
                 "health check: wrote 0x%02x, read back 0x%02x at offset "
                 "%zu", HEALTH_BYTE, host[bad], bad);
        goto out;
    }
    w->health = HEALTH_OK;
    goto out;

cuda_fail:
    cuda_describe(w->text, sizeof(w->text), call, e);
    /* Clears a non-sticky error, so that it is not blamed on the next
     * device. */
    (void)cudaGetLastError();
out:
    if (dev != NULL)
        (void)cudaFree(dev);
    free(host);
}

/* The copy of the inventory the helper was forked with says who holds
 * what; a held device is in a tenant's hands and is not touched. */
static bool is_held(const struct cuda *c, const char *id)
{
    for (size_t j = 0; j < c->n_devs; j++)
        if (c->devs[j].holder != NULL && strcmp(c->devs[j].id, id) == 0)
            return true;
    return false;
}

static int discover_child(const struct cuda *c, const void *arg, int fd)
{
    struct cudaDeviceProp prop;
    int n = 0, sent = 0, r;
    cudaError_t e;

    (void)arg;
    e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
        return wire_done(fd, -ENODEV, "CUDA: %s: %s (no GPU or driver)",
                         cudaGetErrorName(e), cudaGetErrorString(e));
    if (n <= 0)
        return wire_done(fd, -ENODEV,
                         "CUDA: no device found (no GPU or driver)");

    for (int i = 0; i < n; i++) {
        char why[CUDA_TEXT] = "";
        struct wire w;

        memset(&w, 0, sizeof(w));
        w.type = WIRE_DEVICE;
        w.ordinal = i;
        memset(&prop, 0, sizeof(prop));
        e = cudaGetDeviceProperties(&prop, i);
        if (e != cudaSuccess) {
            if (!cuda_wanted(c, i, NULL))
                continue;
            w.health = HEALTH_BAD;
            cuda_describe(w.text, sizeof(w.text), "cudaGetDeviceProperties",
                          e);
            (void)cudaGetLastError();
        } else {
            format_uuid(&prop.uuid, w.id, sizeof(w.id));
            if (!cuda_wanted(c, i, w.id))
                continue;
            prop.name[sizeof(prop.name) - 1] = '\0';
            snprintf(w.model, sizeof(w.model), "%s", prop.name);
            w.bytes = prop.totalGlobalMem;
            /* The form of sysfs, of the driver's /proc entries and of
             * cudaDeviceGetPCIBusId() (nvidia-smi alone pads the domain
             * to 8 digits). */
            snprintf(w.pci_bus_id, sizeof(w.pci_bus_id), "%04x:%02x:%02x.0",
                     (unsigned)prop.pciDomainID, (unsigned)prop.pciBusID,
                     (unsigned)prop.pciDeviceID);
            find_node(&prop, w.node, sizeof(w.node), why, sizeof(why));
            snprintf(w.detail, sizeof(w.detail), "compute %d.%d%s%.300s",
                     prop.major, prop.minor, why[0] ? "; " : "", why);

            if (is_held(c, w.id))
                w.health = HEALTH_UNCHECKED;
            else
                check_health(i, &w);
        }
        r = wire_send(fd, &w);
        if (r < 0)
            return r;
        sent++;
    }
    if (sent == 0)
        return wire_done(fd, -ENODEV,
                         "no CUDA device matches devices = '%s' (%d found)",
                         c->devices, n);
    return wire_done(fd, 0, "%d devices", sent);
}

/* The CUDA ordinal, now, of each device of `req`, found by UUID: the
 * ordinals of the inventory may have changed since it was taken.  -1 for
 * a device CUDA does not find.  Returns the device count, or -EIO with
 * the CUDA error in `why`. */
static int find_ordinals(const struct cuda *c,
                         const struct device_request *req, int *ordinal,
                         char *why, size_t why_len)
{
    struct cudaDeviceProp prop;
    char uuid[CUDA_ID_MAX];
    int n = 0;
    cudaError_t e;

    e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(why, why_len, "CUDA: %s: %s", cudaGetErrorName(e),
                 cudaGetErrorString(e));
        return -EIO;
    }
    for (size_t k = 0; k < req->n; k++)
        ordinal[k] = -1;
    for (int i = 0; i < n; i++) {
        if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
            (void)cudaGetLastError();
            continue;
        }
        format_uuid(&prop.uuid, uuid, sizeof(uuid));
        for (size_t k = 0; k < req->n; k++)
            if (strcmp(uuid, c->devs[req->index[k]].id) == 0)
                ordinal[k] = i;
    }
    return n;
}

/* In a helper: the CUDA ordinal of each requested device (-1 if CUDA does
 * not list it), and in *ret_n how many devices CUDA sees.  On failure,
 * NULL once the failure has been sent as the reply, and *ret_n is what
 * sending it returned. */
static int *request_ordinals(const struct cuda *c,
                             const struct device_request *req, int fd,
                             int *ret_n)
{
    char why[CUDA_TEXT];
    int *ordinal = calloc(req->n ? req->n : 1, sizeof(*ordinal));

    if (ordinal == NULL) {
        *ret_n = wire_done(fd, -EIO, "out of memory");
        return NULL;
    }
    *ret_n = find_ordinals(c, req, ordinal, why, sizeof(why));
    if (*ret_n < 0) {
        free(ordinal);
        *ret_n = wire_done(fd, -EIO, "%s", why);
        return NULL;
    }
    return ordinal;
}

static int health_child(const struct cuda *c, const void *arg, int fd)
{
    const struct device_request *req = arg;
    int *ordinal, n, r = 0;

    if ((ordinal = request_ordinals(c, req, fd, &n)) == NULL)
        return n;
    for (size_t k = 0; k < req->n && r == 0; k++) {
        struct wire w;

        memset(&w, 0, sizeof(w));
        w.type = WIRE_DEVICE;
        w.ordinal = ordinal[k];
        snprintf(w.id, sizeof(w.id), "%s", c->devs[req->index[k]].id);
        if (ordinal[k] < 0) {
            w.health = HEALTH_BAD;
            snprintf(w.text, sizeof(w.text),
                     "not found by CUDA (%d devices)", n);
        } else {
            check_health(ordinal[k], &w);
        }
        r = wire_send(fd, &w);
    }
    free(ordinal);
    return r < 0 ? r : wire_done(fd, 0, "done");
}

static int scrub_child(const struct cuda *c, const void *arg, int fd)
{
    const struct device_request *req = arg;
    int *ordinal, n, r = 0;

    if ((ordinal = request_ordinals(c, req, fd, &n)) == NULL)
        return n;
    for (size_t k = 0; k < req->n && r == 0; k++) {
        struct scrub_result res;
        struct wire w;

        memset(&w, 0, sizeof(w));
        w.type = WIRE_SCRUB;
        snprintf(w.id, sizeof(w.id), "%s", c->devs[req->index[k]].id);
        if (ordinal[k] < 0) {
            w.err = -EIO;
            snprintf(w.text, sizeof(w.text),
                     "not found by CUDA (%d devices)", n);
        } else {
            scrub_device(ordinal[k], SCRUB_FASTEST, &res);
            w.err = res.err;
            w.bytes = res.bytes;
            w.duration_ns = res.total_ns;
            snprintf(w.text, sizeof(w.text), "%s", res.text);
            scrub_describe(&res, w.detail, sizeof(w.detail));
        }
        r = wire_send(fd, &w);
    }
    free(ordinal);
    return r < 0 ? r : wire_done(fd, 0, "done");
}

/* ---- starting, bounding and reaping helpers ---------------------------- */

/* Moves the helper's end of the pipe to descriptor 3 and closes every
 * other one above stdio.  The helper is a copy of the core: left alone, it
 * would hold the core's sockets, locks and the pipes of running jobs open
 * for as long as it lives, or forever if it gets stuck in the driver. */
static int helper_close_fds(int fd)
{
    long max;

    if (fd != 3 && dup2(fd, 3) < 0)
        return -errno;
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 4U, ~0U, 0U) == 0)
        return 3;
#endif
    max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (int i = 4; i < max; i++)
        close(i);
    return 3;
}

static void helper_child_setup(pid_t parent)
{
    struct sigaction sa;
    sigset_t none;

    /* The core's handlers and mask mean nothing here, and one of its
     * handlers running in this copy could write to the core's own
     * descriptors. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)sigaction(sig, &sa, NULL);
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    /* An orphaned helper must not keep a GPU busy. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(3);
    /* Ordinals, in `devices` and between helpers, count in PCI bus order,
     * as nvidia-smi does, not in CUDA's default fastest-first order. */
    (void)setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID", 1);
}

/* Waits up to `ms` for the helper to exit.  Returns 1 with *status, 0 if
 * it has not exited, -ECHILD if someone else reaped it. */
static int helper_wait(pid_t pid, uint64_t ms, int *status)
{
    uint64_t deadline = now_ms() + ms;
    const struct timespec tick = {0, 10 * 1000 * 1000};

    for (;;) {
        pid_t k = waitpid(pid, status, WNOHANG);

        if (k == pid)
            return 1;
        if (k < 0 && errno != EINTR)
            return -errno;
        if (k == 0 && now_ms() >= deadline)
            return 0;
        if (k == 0)
            nanosleep(&tick, NULL);
    }
}

static void format_ms(uint64_t ms, char *buf, size_t len)
{
    if (ms % 1000 == 0)
        snprintf(buf, len, "%" PRIu64 "s", ms / 1000);
    else
        snprintf(buf, len, "%" PRIu64 "ms", ms);
}

/*
 * Runs `work` in a helper and collects its records into *ret (and *ret_n),
 * also on failure, when they are what arrived before it.  Returns 0 for a
 * complete reply from a helper that exited cleanly; otherwise -EIO or
 * -errno, with the story in `msg`.  The helper must keep making progress:
 * it is killed when `helper_timeout` passes without a record, so that a
 * long scrub of many devices is not cut short while a hung one is.
 */
static int helper_run(const struct cuda *c, const char *what,
                      cuda_work_fn work, const void *arg, struct wire **ret,
                      size_t *ret_n, char *msg, size_t msg_len)
{
    char *buf = NULL, tmo[32];
    size_t size = 0, cap = 0, n;
    bool timed_out = false;
    pid_t parent = getpid(), pid;
    int fds[2], r = 0, k, status = 0;
    uint64_t deadline;
    struct wire *rec;

    *ret = NULL;
    *ret_n = 0;
    /* Close-on-exec from birth: a child another thread of the core
     * spawns meanwhile must not keep the write end open, or the end of the
     * reply would never be seen. */
    if (pipe2(fds, O_CLOEXEC) < 0) {
        r = -errno;
        snprintf(msg, msg_len, "cannot create a pipe for the CUDA helper: %s",
                 strerror(-r));
        return r;
    }
    pid = fork();
    if (pid < 0) {
        r = -errno;
        close(fds[0]);
        close(fds[1]);
        snprintf(msg, msg_len, "cannot start the CUDA helper for %s: %s",
                 what, strerror(-r));
        return r;
    }
    if (pid == 0) {
        int fd;

        close(fds[0]);
        fd = helper_close_fds(fds[1]);
        if (fd < 0)
            _exit(3);
        helper_child_setup(parent);
        _exit(work(c, arg, fd) < 0 ? 2 : 0);
    }
    close(fds[1]);

    deadline = now_ms() + c->timeout_ms;
    for (;;) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        uint64_t now = now_ms();
        ssize_t got;

        if (now >= deadline) {
            timed_out = true;
            break;
        }
        k = poll(&pfd, 1, deadline - now > INT_MAX ? INT_MAX
                                                  : (int)(deadline - now));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            r = -errno;
            snprintf(msg, msg_len, "cannot wait for the CUDA helper for %s: "
                     "%s", what, strerror(-r));
            break;
        }
        if (k == 0)
            continue;
        if (cap - size < sizeof(struct wire)) {
            size_t ncap = cap ? cap * 2 : 16 * sizeof(struct wire);
            char *nbuf;

            if (cap >= CUDA_REPLY_MAX * sizeof(struct wire)) {
                r = -EIO;
                snprintf(msg, msg_len, "CUDA helper for %s sent more than %d "
                         "records", what, CUDA_REPLY_MAX);
                break;
            }
            nbuf = realloc(buf, ncap);
            if (nbuf == NULL) {
                r = -ENOMEM;
                snprintf(msg, msg_len, "out of memory");
                break;
            }
            buf = nbuf;
            cap = ncap;
        }
        got = read(fds[0], buf + size, cap - size);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got < 0) {
            r = -errno;
            snprintf(msg, msg_len, "cannot read the reply of the CUDA helper "
                     "for %s: %s", what, strerror(-r));
            break;
        }
        if (got == 0)
            break; /* the helper closed its end: it has exited */
        size += (size_t)got;
        deadline = now_ms() + c->timeout_ms;
    }
    close(fds[0]);

    format_ms(c->timeout_ms, tmo, sizeof(tmo));
    if (timed_out || r < 0) {
        kill(pid, SIGKILL);
        k = helper_wait(pid, CUDA_REAP_GRACE_MS, &status);
    } else {
        /* The reply is complete once the pipe closes, but the driver may
         * still be tearing the helper's contexts down. */
        k = helper_wait(pid, c->timeout_ms, &status);
        if (k == 0) {
            kill(pid, SIGKILL);
            k = helper_wait(pid, CUDA_REAP_GRACE_MS, &status);
            r = -EIO;
            snprintf(msg, msg_len, "CUDA helper for %s (pid %d) did not exit "
                     "within %s of its reply; killed%s", what, (int)pid, tmo,
                     k == 0 ? ", but it has not gone away" : "");
        }
    }
    if (timed_out) {
        r = -EIO;
        snprintf(msg, msg_len, "CUDA helper for %s (pid %d) made no progress "
                 "for %s; killed%s", what, (int)pid, tmo,
                 k == 0 ? ", but it has not gone away (stuck in the driver?)"
                        : "");
    } else if (r == 0 && k == 1 && WIFSIGNALED(status)) {
        r = -EIO;
        snprintf(msg, msg_len, "CUDA helper for %s (pid %d) crashed: killed "
                 "by signal %d (%s)", what, (int)pid, WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    } else if (r == 0 && k == 1 && WEXITSTATUS(status) != 0) {
        r = -EIO;
        snprintf(msg, msg_len, "CUDA helper for %s (pid %d) failed: exit "
                 "status %d", what, (int)pid, WEXITSTATUS(status));
    }
    /* k == -ECHILD: a SIGCHLD handler of the core reaped it; a complete
     * reply says enough. */

    n = size / sizeof(struct wire);
    rec = (struct wire *)buf;
    for (size_t i = 0; i < n; i++) {
        rec[i].id[sizeof(rec[i].id) - 1] = '\0';
        rec[i].model[sizeof(rec[i].model) - 1] = '\0';
        rec[i].pci_bus_id[sizeof(rec[i].pci_bus_id) - 1] = '\0';
        rec[i].node[sizeof(rec[i].node) - 1] = '\0';
        rec[i].detail[sizeof(rec[i].detail) - 1] = '\0';
        rec[i].text[sizeof(rec[i].text) - 1] = '\0';
    }
    if (r == 0 && (size % sizeof(struct wire) != 0 || n == 0 ||
                   rec[n - 1].type != WIRE_DONE)) {
        r = -EIO;
        snprintf(msg, msg_len, "CUDA helper for %s (pid %d) sent an "
                 "incomplete reply", what, (int)pid);
    }
    *ret = rec;
    *ret_n = n;
    return r;
}

static struct cuda_device *cuda_find(struct cuda *c, const char *id)
{
    if (id == NULL)
        return NULL;
    for (size_t i = 0; i < c->n_devs; i++)
        if (strcmp(c->devs[i].id, id) == 0)
            return &c->devs[i];
    return NULL;
}

/*
 * Replaces the inventory with the devices of a discover reply, carrying
 * over what only this process knows: who holds a device, which devices
 * failed a scrub, and the health of held devices, which the helper leaves
 * alone.  A device that vanished is kept while held (its lease must still
 * be released) or retired (it must stay refused if it comes back).
 */
static int cuda_merge(struct cuda *c, const struct wire *rec, size_t n)
{
    struct cuda_device *devs, *old;
    size_t m = 0;

    devs = calloc(n + c->n_devs + 1, sizeof(*devs));
    if (devs == NULL)
        return c->host->error(c->ctx, -ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const struct wire *w = &rec[i];
        struct cuda_device *d;

        if (w->type != WIRE_DEVICE)
            continue;
        if (w->id[0] == '\0') {
            c->host->log(c->ctx, SURPLUS_LOG_WARNING,
                         "CUDA device %d left out: %s", (int)w->ordinal,
                         w->text);
            continue;
        }
        if (cuda_find(c, w->id) == NULL && w->health == HEALTH_UNCHECKED)
            continue; /* cannot happen: only held devices go unchecked */
        d = &devs[m++];
        memcpy(d->id, w->id, sizeof(d->id));
        memcpy(d->model, w->model, sizeof(d->model));
        memcpy(d->pci_bus_id, w->pci_bus_id, sizeof(d->pci_bus_id));
        memcpy(d->node, w->node, sizeof(d->node));
        memcpy(d->detail, w->detail, sizeof(d->detail));
        d->memory = w->bytes;
        d->healthy = w->health == HEALTH_OK;
        memcpy(d->reason, w->text, sizeof(d->reason));
        if (w->health != HEALTH_UNCHECKED)
            d->checked_ms = now_ms();

        old = cuda_find(c, w->id);
        if (old == NULL)
            continue;
        d->holder = old->holder;
        old->holder = NULL;
        d->retired = old->retired;
        if (old->retired || w->health == HEALTH_UNCHECKED) {
            d->healthy = old->healthy;
            d->checked_ms = old->checked_ms;
            memcpy(d->reason, old->reason, sizeof(d->reason));
        }
        old->id[0] = '\0'; /* taken over */
    }
    for (size_t i = 0; i < c->n_devs; i++) {
        struct cuda_device *d;

        old = &c->devs[i];
        if (old->id[0] == '\0' || (old->holder == NULL && !old->retired))
            continue;
        d = &devs[m++];
        *d = *old;
        old->holder = NULL;
        if (!d->retired) {
            d->healthy = false;
            snprintf(d->reason, sizeof(d->reason),
                     "no longer found by CUDA");
        }
    }
    for (size_t i = 0; i < c->n_devs; i++)
        free(c->devs[i].holder);
    free(c->devs);
    c->devs = devs;
    c->n_devs = m;
    return 0;
}

static int cuda_refresh(struct cuda *c)
{
    char msg[CUDA_TEXT + 128];
    struct wire *rec;
    const struct wire *done;
    size_t n;
    int r;

    r = helper_run(c, "discover", discover_child, NULL, &rec, &n, msg,
                   sizeof(msg));
    if (r < 0) {
        free(rec);
        return c->host->error(c->ctx, r, "%s", msg);
    }
    done = &rec[n - 1];
    r = cuda_merge(c, rec, n - 1);
    if (r < 0) {
        free(rec);
        return r;
    }
    c->have_inventory = true;
    if (done->err < 0) {
        snprintf(c->why_none, sizeof(c->why_none), "%s", done->text);
        r = c->host->error(c->ctx, done->err, "%s", done->text);
        free(rec);
        return r;
    }
    c->why_none[0] = '\0';
    /* A `devices` entry that names nothing is most likely a typo, or a GPU
     * that fell off the bus: worth a line, not worth refusing the rest. */
    for (size_t i = 0; i < c->n_filter; i++) {
        bool hit = false;

        for (size_t j = 0; j + 1 < n && !hit; j++)
            hit = rec[j].type == WIRE_DEVICE &&
                  filter_match(c->filter[i], rec[j].ordinal,
                               rec[j].id[0] ? rec[j].id : NULL);
        if (!hit)
            c->host->log(c->ctx, SURPLUS_LOG_WARNING,
                         "devices: '%s' matches no CUDA device",
                         c->filter[i]);
    }
    free(rec);
    return 0;
}

static int cuda_discover(void *state, surplus_device_fn fn, void *arg)
{
    struct cuda *c = state;
    int r;

    if (fn == NULL)
        return c->host->error(c->ctx, -EINVAL,
                              "discover of CUDA devices: no callback");
    r = cuda_refresh(c);
    if (r < 0)
        return r;
    for (size_t i = 0; i < c->n_devs; i++) {
        const struct cuda_device *d = &c->devs[i];
        const struct surplus_device dev = {
            .id = d->id,
            .model = d->model,
            .memory_bytes = d->memory,
            .healthy = d->healthy,
            .reason = d->healthy ? NULL : d->reason,
            .pci_bus_id = d->pci_bus_id[0] ? d->pci_bus_id : NULL,
            .node = d->node[0] ? d->node : NULL,
            .detail = d->detail[0] ? d->detail : NULL,
        };

        r = fn(arg, &dev);
        if (r != 0)
            return r;
    }
    return 0;
}

/* prepare and release need an inventory; a restarted core may call them
 * before its first discover. */
static int cuda_need_inventory(struct cuda *c)
{
    int r;

    if (c->have_inventory)
        return 0;
    r = cuda_refresh(c);
    return r == -ENODEV ? 0 : r; /* then every id is unknown */
}

static int cuda_check_lease(struct cuda *c, const struct surplus_lease *lease,
                            const char *what)
{
    if (lease == NULL || lease->lease_id == NULL || lease->lease_id[0] == '\0')
        return c->host->error(c->ctx, -EINVAL,
                              "%s of CUDA devices: lease has no id", what);
    if (lease->n_devices > 0 && lease->device_ids == NULL)
        return c->host->error(c->ctx, -EINVAL,
                              "%s of CUDA devices: lease '%s' has no device "
                              "list", what, lease->lease_id);
    return 0;
}

static int cuda_unknown(struct cuda *c, const char *id)
{
    if (c->n_devs == 0 && c->why_none[0] != '\0')
        return c->host->error(c->ctx, -ENODEV, "no CUDA device '%s' (%s)",
                              id ? id : "(null)", c->why_none);
    return c->host->error(c->ctx, -ENODEV, "no CUDA device '%s'",
                          id ? id : "(null)");
}

/* The health check before a lease: devices of `lease` not checked within
 * health_max_age (and neither retired nor held by another lease, which
 * the caller has made sure of) are checked again, in a helper. */
static int cuda_recheck(struct cuda *c, const struct surplus_lease *lease)
{
    char msg[CUDA_TEXT + 128] = "";
    struct device_request req = {NULL, 0};
    struct wire *rec = NULL;
    uint64_t now = now_ms();
    size_t *index, n_rec = 0;
    int k;

    index = calloc(lease->n_devices, sizeof(*index));
    if (index == NULL)
        return c->host->error(c->ctx, -ENOMEM, "out of memory");
    for (size_t i = 0; i < lease->n_devices; i++) {
        struct cuda_device *d = cuda_find(c, lease->device_ids[i]);

        if (d->retired || d->holder != NULL ||
            (d->checked_ms != 0 &&
             now - d->checked_ms < c->health_max_age_ms))
            continue;
        index[req.n++] = (size_t)(d - c->devs);
    }
    if (req.n == 0) {
        free(index);
        return 0;
    }
    req.index = index;
    k = helper_run(c, "health check", health_child, &req, &rec, &n_rec, msg,
                   sizeof(msg));
    if (k == 0 && rec[n_rec - 1].err < 0)
        snprintf(msg, sizeof(msg), "%s", rec[n_rec - 1].text);
    for (size_t j = 0; j < req.n; j++) {
        struct cuda_device *d = &c->devs[index[j]];
        const struct wire *w = NULL;

        for (size_t i = 0; i < n_rec && w == NULL; i++)
            if (rec[i].type == WIRE_DEVICE && strcmp(rec[i].id, d->id) == 0)
                w = &rec[i];
        /* A helper that dies or hangs on a device says as much about
         * it as a failed check. */
        d->healthy = w != NULL && w->health == HEALTH_OK;
        if (w != NULL)
            snprintf(d->reason, sizeof(d->reason), "%s", w->text);
        else
            snprintf(d->reason, sizeof(d->reason), "health check: %.360s",
                     msg[0] ? msg : "the CUDA helper did not report it");
        d->checked_ms = now_ms();
    }
    free(rec);
    free(index);
    return 0;
}

static int cuda_prepare(void *state, const struct surplus_lease *lease)
{
    struct cuda *c = state;
    char **holders = NULL, *list = NULL, *p;
    size_t n, len = 1;
    int r;

    r = cuda_check_lease(c, lease, "prepare");
    if (r < 0)
        return r;
    n = lease->n_devices;
    if (n == 0 || lease->out == NULL)
        return c->host->error(c->ctx, -EINVAL,
                              "lease '%s' %s", lease->lease_id,
                              lease->out == NULL
                                  ? "has nowhere to describe the job's view"
                                  : "names no CUDA devices");
    r = cuda_need_inventory(c);
    if (r < 0)
        return r;

    /* Everything is checked before anything is claimed, so that a refused
     * lease leaves no device half-taken. */
    for (size_t i = 0; i < n; i++) {
        const char *id = lease->device_ids[i];
        struct cuda_device *d = cuda_find(c, id);

        if (d == NULL)
            return cuda_unknown(c, id);
        for (size_t j = 0; j < i; j++)
            if (cuda_find(c, lease->device_ids[j]) == d)
                return c->host->error(c->ctx, -EINVAL,
                                      "CUDA device '%s' appears twice in "
                                      "lease '%s'", id, lease->lease_id);
        if (d->holder != NULL && strcmp(d->holder, lease->lease_id) != 0)
            return c->host->error(c->ctx, -EBUSY,
                                  "CUDA device '%s' is held by lease '%s'",
                                  id, d->holder);
    }
    /* Only now, when none of them is someone else's to disturb. */
    r = cuda_recheck(c, lease);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        const char *id = lease->device_ids[i];
        struct cuda_device *d = cuda_find(c, id);

        if (!d->healthy)
            return c->host->error(c->ctx, -EIO,
                                  "CUDA device '%s' is unhealthy: %s", id,
                                  d->reason);
        len += strlen(d->id) + 1;
    }

    holders = calloc(n, sizeof(*holders));
    list = malloc(len);
    if (holders == NULL || list == NULL) {
        r = c->host->error(c->ctx, -ENOMEM, "out of memory");
        goto out;
    }
    p = list;
    for (size_t i = 0; i < n; i++) {
        struct cuda_device *d = cuda_find(c, lease->device_ids[i]);

        p += sprintf(p, "%s%s", i > 0 ? "," : "", d->id);
        if (d->holder == NULL) {
            holders[i] = strdup(lease->lease_id);
            if (holders[i] == NULL) {
                r = c->host->error(c->ctx, -ENOMEM, "out of memory");
                goto out;
            }
        }
    }

    /* UUIDs rather than ordinals: they mean the same devices whatever the
     * job's view of the bus. */
    r = c->host->lease_setenv(lease->out, "CUDA_VISIBLE_DEVICES", list);
    if (r == 0)
        r = c->host->lease_setenv(lease->out, "CUDA_DEVICE_ORDER",
                                  "PCI_BUS_ID");
    if (r == 0)
        r = c->host->lease_setenv(lease->out, "SURPLUS_GPUS", list);
    if (r == 0)
        r = c->host->lease_setenv(lease->out, "SURPLUS_ACCELERATOR", "cuda");
    if (r < 0) {
        r = c->host->error(c->ctx, r, "cannot set the environment of lease "
                           "'%s': %s", lease->lease_id, strerror(-r));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct cuda_device *d = cuda_find(c, lease->device_ids[i]);

        if (d->node[0] == '\0' || access(d->node, F_OK) < 0) {
            c->host->log(c->ctx, SURPLUS_LOG_WARNING,
                         "lease '%s': CUDA device '%s' has no device node "
                         "to expose (%s)", lease->lease_id, d->id,
                         d->node[0] ? d->node : d->detail);
            continue;
        }
        r = c->host->lease_add_device(lease->out, d->node);
        if (r < 0) {
            r = c->host->error(c->ctx, r, "cannot expose %s to lease '%s': "
                               "%s", d->node, lease->lease_id, strerror(-r));
            goto out;
        }
    }
    for (size_t i = 0; i < sizeof(cuda_control_nodes) /
                           sizeof(cuda_control_nodes[0]); i++) {
        const char *node = cuda_control_nodes[i];

        if (access(node, F_OK) < 0)
            continue;
        r = c->host->lease_add_device(lease->out, node);
        if (r < 0) {
            r = c->host->error(c->ctx, r, "cannot expose %s to lease '%s': "
                               "%s", node, lease->lease_id, strerror(-r));
            goto out;
        }
    }

    /* Nothing can fail from here on. */
    for (size_t i = 0; i < n; i++)
        if (holders[i] != NULL) {
            cuda_find(c, lease->device_ids[i])->holder = holders[i];
            holders[i] = NULL;
        }
    r = 0;

out:
    if (holders != NULL)
        for (size_t i = 0; i < n; i++)
            free(holders[i]);
    free(holders);
    free(list);
    return r;
}

/* Release goes on past a device it cannot scrub, so it may meet several
 * errors; it returns the most serious: a failed scrub before a device held
 * elsewhere before an unknown device. */
static int error_rank(int err)
{
    switch (err) {
    case 0:
        return 0;
    case -ENODEV:
        return 1;
    case -EBUSY:
        return 2;
    default:
        return 3;
    }
}

/* Whatever is left on `d` may belong to the last tenant: it is never
 * leased again (until the plugin is loaded anew; the core keeps its own
 * record, which an operator clears). */
static void cuda_retire(struct cuda *c, struct cuda_device *d,
                        const char *reason, const char *what, int *r)
{
    d->healthy = false;
    d->retired = true;
    snprintf(d->reason, sizeof(d->reason), "%s: %.340s", what, reason);
    if (error_rank(-EIO) > error_rank(*r))
        *r = c->host->error(c->ctx, -EIO, "CUDA device '%s': %s: %s; marked "
                            "unhealthy", d->id, what, reason);
}

/* Who holds node `k` of a scan, for a message: a few of them by pid,
 * program and uid. */
static void describe_holders(const struct holder *hs, size_t shown,
                             size_t total, size_t k, char *buf, size_t len)
{
    size_t used = 0, named = 0, more = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < shown; i++) {
        int n;

        if (hs[i].node != k)
            continue;
        if (named == HOLDERS_SHOWN) {
            more++;
            continue;
        }
        n = snprintf(buf + used, len - used, "%spid %d (%s, uid %ld)",
                     named ? ", " : "", (int)hs[i].pid, hs[i].exe,
                     hs[i].uid == (uid_t)-1 ? -1L : (long)hs[i].uid);
        if (n < 0 || (size_t)n >= len - used)
            return;
        used += (size_t)n;
        named++;
    }
    if (more > 0 || total > shown)
        snprintf(buf + used, len - used, " and others");
}

/*
 * Waits, up to holder_wait, until no process (but those ignore_holders
 * and holders.h let off) has the node of a device of `req` open, and
 * fills held[j] for each device still held then.  By the time the core
 * releases a lease, the job's processes are gone: a holder is a straggler
 * stuck in the driver, or a process from outside the job using the GPU.
 * Either way the device cannot be shown clean, and a tenant's context
 * may still hold memory the scrub cannot reach.
 */
static void cuda_wait_holders(struct cuda *c, const struct device_request *req,
                              char (*held)[CUDA_TEXT])
{
    const struct holders_ignore ig = {(const char *const *)c->ignore,
                                      c->n_ignore};
    const struct timespec tick = {0, HOLDER_POLL_MS * 1000 * 1000};
    struct holder hs[32];
    uint64_t start = now_ms();
    const char **nodes;
    size_t *dev_of, m = 0, nh = 0;
    char wait[32];
    int r;

    nodes = calloc(req->n, sizeof(*nodes));
    dev_of = calloc(req->n, sizeof(*dev_of));
    if (nodes == NULL || dev_of == NULL) {
        for (size_t j = 0; j < req->n; j++)
            snprintf(held[j], CUDA_TEXT, "out of memory while checking "
                     "for processes holding it");
        goto out;
    }
    for (size_t j = 0; j < req->n; j++) {
        const struct cuda_device *d = &c->devs[req->index[j]];

        /* A device without a node was not exposed to the job either. */
        if (d->node[0] == '\0' || access(d->node, F_OK) < 0)
            continue;
        nodes[m] = d->node;
        dev_of[m++] = j;
    }
    if (m == 0)
        goto out;
    for (;;) {
        r = holders_scan(nodes, m, &ig, hs, sizeof(hs) / sizeof(hs[0]), &nh);
        if (r < 0) {
            for (size_t i = 0; i < m; i++)
                snprintf(held[dev_of[i]], CUDA_TEXT, "cannot tell whether "
                         "a process still holds %s: %s", nodes[i],
                         strerror(-r));
            break;
        }
        if (nh == 0 || now_ms() - start >= c->holder_wait_ms)
            break;
        nanosleep(&tick, NULL);
    }
    if (r < 0 || nh == 0)
        goto out;
    format_ms(c->holder_wait_ms, wait, sizeof(wait));
    for (size_t i = 0; i < m; i++) {
        size_t shown = nh < sizeof(hs) / sizeof(hs[0])
                           ? nh
                           : sizeof(hs) / sizeof(hs[0]);
        char who[CUDA_TEXT - 80];

        describe_holders(hs, shown, nh, i, who, sizeof(who));
        if (who[0] != '\0')
            snprintf(held[dev_of[i]], CUDA_TEXT, "%s still open, %s after "
                     "the lease ended, in %s", nodes[i], wait, who);
    }
out:
    free(nodes);
    free(dev_of);
}

static int cuda_release(void *state, const struct surplus_lease *lease,
                        struct surplus_scrub_report *ret)
{
    struct cuda *c = state;
    char msg[CUDA_TEXT + 128] = "", (*held)[CUDA_TEXT] = NULL;
    struct device_request req = {NULL, 0}, sreq = {NULL, 0};
    uint64_t bytes = 0, duration_ns = 0;
    struct wire *rec = NULL;
    size_t *index = NULL, *sindex = NULL, n_rec = 0;
    int r, k;

    r = cuda_check_lease(c, lease, "release");
    if (r < 0)
        return r;
    r = cuda_need_inventory(c);
    if (r < 0)
        return r;
    if (lease->n_devices == 0)
        goto report;
    index = calloc(lease->n_devices, sizeof(*index));
    sindex = calloc(lease->n_devices, sizeof(*sindex));
    held = calloc(lease->n_devices, sizeof(*held));
    if (index == NULL || sindex == NULL || held == NULL) {
        r = c->host->error(c->ctx, -ENOMEM, "out of memory");
        goto report;
    }

    for (size_t i = 0; i < lease->n_devices; i++) {
        const char *id = lease->device_ids[i];
        struct cuda_device *d = cuda_find(c, id);
        bool dup = false;

        if (d == NULL) {
            if (error_rank(-ENODEV) > error_rank(r))
                r = cuda_unknown(c, id);
            continue;
        }
        /* The lease may be long gone and the device handed to someone
         * else since: scrubbing it now would wipe the new tenant's data. */
        if (d->holder != NULL && strcmp(d->holder, lease->lease_id) != 0) {
            if (error_rank(-EBUSY) > error_rank(r))
                r = c->host->error(c->ctx, -EBUSY,
                                   "CUDA device '%s' is held by lease '%s', "
                                   "not '%s'; left alone", id, d->holder,
                                   lease->lease_id);
            continue;
        }
        for (size_t j = 0; j < req.n; j++)
            dup |= index[j] == (size_t)(d - c->devs);
        if (!dup)
            index[req.n++] = (size_t)(d - c->devs);
    }
    if (req.n == 0)
        goto report;
    req.index = index;

    /* Nothing is scrubbed while a process may still be using it. */
    cuda_wait_holders(c, &req, held);
    for (size_t j = 0; j < req.n; j++)
        if (held[j][0] == '\0')
            sindex[sreq.n++] = index[j];
        else
            cuda_retire(c, &c->devs[index[j]], held[j], "not scrubbed", &r);
    sreq.index = sindex;

    k = sreq.n == 0 ? 0
                    : helper_run(c, "scrub", scrub_child, &sreq, &rec, &n_rec,
                                 msg, sizeof(msg));
    if (sreq.n > 0 && k == 0 && rec[n_rec - 1].err < 0)
        snprintf(msg, sizeof(msg), "%s", rec[n_rec - 1].text);
    for (size_t j = 0; j < sreq.n; j++) {
        struct cuda_device *d = &c->devs[sindex[j]];
        const struct wire *w = NULL;

        for (size_t i = 0; i < n_rec && w == NULL; i++)
            if (rec[i].type == WIRE_SCRUB && strcmp(rec[i].id, d->id) == 0)
                w = &rec[i];
        if (w != NULL)
            duration_ns += w->duration_ns;
        if (w != NULL && w->err == 0) {
            bytes += w->bytes;
            /* A scrub exercises all of the memory: as good as a health
             * check, and fresher. */
            d->checked_ms = now_ms();
            c->host->log(c->ctx, SURPLUS_LOG_INFO, "scrubbed CUDA device "
                         "%s: %s", d->id, w->detail);
        } else {
            cuda_retire(c, d,
                        w != NULL ? w->text
                        : msg[0]  ? msg
                                  : "the CUDA helper did not report it",
                        "scrub failed", &r);
        }
    }
    for (size_t j = 0; j < req.n; j++) {
        struct cuda_device *d = &c->devs[index[j]];

        free(d->holder);
        d->holder = NULL;
    }
    free(rec);

report:
    free(index);
    free(sindex);
    free(held);
    if (r < 0)
        return r;
    if (ret != NULL) {
        ret->bytes = bytes;
        ret->duration_ns = duration_ns;
    }
    return 0;
}

static const struct surplus_accelerator_ops cuda_ops = {
    .discover = cuda_discover,
    .prepare = cuda_prepare,
    .release = cuda_release,
};

static const struct surplus_plugin cuda_plugin = {
    SURPLUS_PLUGIN_HEADER(SURPLUS_KIND_ACCELERATOR),
    .name = "cuda",
    .version = PACKAGE_VERSION,
    .description = "NVIDIA GPUs through the CUDA runtime, with memory scrub "
                   "between tenants",
    .init = cuda_init,
    .fini = cuda_fini,
    .ops = &cuda_ops,
};

SURPLUS_PLUGIN_EXPORT(cuda_plugin)
