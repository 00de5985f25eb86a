/*
 * calls.h - the one way the core calls a plugin instance's operations.
 *
 * The SDK promises a plugin that the operations of one instance are called
 * from one thread at a time, and that the message it gives host->error() is
 * reported with the error it returns.  surplusd calls one instance from its
 * HTTP threads and from every job thread, so every operation goes through
 * a function here that:
 *
 *   - takes the instance's lock for the duration of the call, shared when
 *     the plugin declares SURPLUS_PLUGIN_THREAD_SAFE, exclusive otherwise
 *     (plugin_stop takes it exclusively, so fini never runs during one);
 *   - captures the host->error() message of this call, and only this one,
 *     in the caller's struct err (the capture is per thread, so another
 *     thread's message can neither overwrite nor be mistaken for it);
 *   - calls an operation only when the plugin's descriptor declares the
 *     ABI minor version that added it (-ENOSYS otherwise), and an optional
 *     one (accounting flush) only when the plugin provides it;
 *   - returns 0 or the plugin's negative errno, with e->code set to it and
 *     e->msg to the message the plugin gave for this call (empty when it
 *     gave none); e is cleared on success.  A failure of the layer itself
 *     (instance not started, operation the plugin lacks) has its own
 *     message, naming the instance and the operation.
 *
 * The plugin's message is its alone; plugin_error() prefixes it with the
 * instance ("storage/local") and what the core was doing, and stands in
 * strerror() for a message the plugin did not give.  Callbacks of
 * list, query and discover run with the lock held: they must not call the
 * same instance (such a call fails with -EDEADLK instead of hanging).
 * Reading `flags` is the one use of a later minor so far: a plugin built
 * for ABI 1.0 is never thread-safe.
 *
 * Nothing outside calls.c and the loader touches a descriptor's ops.
 */
#ifndef SURPLUS_CALLS_H
#define SURPLUS_CALLS_H

#include <stdbool.h>

#include <surplus/surplus.h>

#include "err.h"
#include "loader.h"

/* storage */
int storage_put(struct plugin *p, const char *key, int fd, struct err *e);
int storage_get(struct plugin *p, const char *key, int fd, struct err *e);
int storage_stat(struct plugin *p, const char *key,
                 struct surplus_object_info *ret, struct err *e);
int storage_remove(struct plugin *p, const char *key, struct err *e);
int storage_list(struct plugin *p, const char *prefix, surplus_object_fn fn,
                 void *arg, struct err *e);

/* accounting; flush is 0 for a plugin whose record is durable by itself */
int accounting_record(struct plugin *p,
                      const struct surplus_usage_record *rec, struct err *e);
int accounting_flush(struct plugin *p, struct err *e);
bool accounting_has_flush(const struct plugin *p); /* it batches records */
int accounting_query(struct plugin *p, const struct surplus_usage_query *q,
                     surplus_usage_fn fn, void *arg, struct err *e);

/* accelerator */
int accelerator_discover(struct plugin *p, surplus_device_fn fn, void *arg,
                         struct err *e);
int accelerator_prepare(struct plugin *p, const struct surplus_lease *lease,
                        struct err *e);
int accelerator_release(struct plugin *p, const struct surplus_lease *lease,
                        struct surplus_scrub_report *ret, struct err *e);

#endif
