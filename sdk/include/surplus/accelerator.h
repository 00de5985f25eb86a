/*
 * surplus/accelerator.h - operations of an accelerator plugin
 * (kind "accelerator").
 *
 * An accelerator plugin inventories devices, prepares leases (what the
 * sandbox must expose to the job) and releases them (scrubbing the device
 * so the next tenant finds nothing of the last one).
 *
 * CONTRACT
 *   discover  calls `fn` once per device; a non-zero return from `fn`
 *             stops the walk and is returned.  The struct passed to `fn` is
 *             valid only during the call.  Ids are stable: the same device
 *             has the same id on every call and across restarts.  A device
 *             that is not usable is reported with healthy = 0 and a reason.
 *             A backend that works but has no devices returns -ENODEV and
 *             says why through host->error() (no driver, no GPU, ...); the
 *             core shows it as zero devices with that reason.
 *   prepare   claims the devices named in the lease, checks their health,
 *             and describes through host->lease_setenv() and
 *             host->lease_add_device() what the job must see; it always
 *             sets SURPLUS_GPUS to the lease's device ids joined by ','
 *             (in the order given).  When lease_setenv or lease_add_device
 *             fails, prepare returns its error; the plugin's own message
 *             (host->error) is the one reported.  An unknown
 *             device id is -ENODEV, a device held by another lease -EBUSY,
 *             an unhealthy one -EIO, a lease that names one device twice
 *             -EINVAL; on any error nothing stays claimed.
 *   release   scrubs every device of the lease (all of its memory is
 *             overwritten and verified) and frees it, filling *ret (bytes
 *             scrubbed, more than 0, and the time taken).  A
 *             device that fails scrub is marked unhealthy, is never leased
 *             again, and release returns -EIO.  Releasing a lease that is
 *             no longer held scrubs its free devices again and returns 0
 *             (so a restarted core may release what it cannot remember);
 *             devices now held by another lease are left alone (-EBUSY).
 *
 * Operations on one instance are called from one thread at a time (the
 * core holds a lock per instance around each, callbacks included), unless
 * the descriptor sets SURPLUS_PLUGIN_THREAD_SAFE (surplus/plugin.h); several
 * instances (in one process or several) may share the same devices' state
 * only through the backend itself.
 *
 * This header is C99 and C++ compatible.
 */
#ifndef SURPLUS_ACCELERATOR_H
#define SURPLUS_ACCELERATOR_H

#include <stddef.h>
#include <stdint.h>

#include <surplus/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

struct surplus_device {
    const char *id;         /* stable, unique within the node */
    const char *model;      /* matched against a job's `model` glob */
    uint64_t memory_bytes;  /* device memory */
    int healthy;            /* 1 usable, 0 not */
    const char *reason;     /* why not healthy, or NULL */
    const char *pci_bus_id; /* e.g. "0000:17:00.0", or NULL */
    const char *node;       /* primary device node, e.g. "/dev/nvidia0" */
    const char *detail;     /* free text, e.g. "compute 9.0", or NULL */
};

typedef int (*surplus_device_fn)(void *arg, const struct surplus_device *dev);

struct surplus_lease {
    const char *lease_id;          /* unique per lease */
    const char *job_id;
    const char *tenant;
    const char *const *device_ids; /* n_devices ids from discover */
    size_t n_devices;
    struct surplus_lease_out *out; /* for host->lease_setenv/add_device;
                                      NULL in release */
};

struct surplus_scrub_report {
    uint64_t bytes;       /* device memory overwritten and verified */
    uint64_t duration_ns; /* time spent scrubbing */
};

struct surplus_accelerator_ops {
    /* ABI 1.0 */
    int (*discover)(void *state, surplus_device_fn fn, void *arg);
    int (*prepare)(void *state, const struct surplus_lease *lease);
    int (*release)(void *state, const struct surplus_lease *lease,
                   struct surplus_scrub_report *ret);
};

#ifdef __cplusplus
}
#endif

#endif /* SURPLUS_ACCELERATOR_H */
