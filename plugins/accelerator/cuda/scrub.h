/*
 * scrub.h - overwriting and verifying all the free memory of one CUDA
 * device, shared by the cuda plugin's helper process and by
 * tests/bench/scrub, so that the benchmark measures the code that runs.
 *
 * Nothing here forks or talks to the plugin: the caller is a process that
 * may create a CUDA context and will exit soon after.
 */
#ifndef SURPLUS_CUDA_SCRUB_H
#define SURPLUS_CUDA_SCRUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The allocator hands out device memory in 2 MiB pages: every chunk is a
 * multiple of this, so a kernel's 16-byte accesses cover it exactly. */
#define SCRUB_GRANULE ((size_t)2 << 20)

/* Where the verify kernel reports.  It lives at the start of the first
 * page the scrub allocates, which is zeroed and verified with the rest
 * (from SCRUB_FLAG_SPAN on): a clean scrub leaves all of it zero. */
struct scrub_flag {
    unsigned long long bad_words; /* 32-bit words found non-zero */
    unsigned long long where;     /* 1 + byte offset of one of them, or 0 */
    unsigned long long value;     /* the word found there */
};
#define SCRUB_FLAG_SPAN 256 /* bytes kept for the flag; keeps alignment */

enum scrub_mode {
    SCRUB_FASTEST = 0,     /* kernels where the device can run them */
    SCRUB_DRIVER_ZERO = 1, /* zero with cudaMemsetAsync, not our kernel */
    SCRUB_HOST_VERIFY = 2, /* verify by copying back to the host */
};

struct scrub_result {
    int err;               /* 0: clean; -EIO: failed, text says why */
    uint64_t bytes;        /* allocated, zeroed and verified */
    uint64_t total_bytes;  /* the device's memory */
    uint64_t free_bytes;   /* free when the scrub started */
    uint64_t left_bytes;   /* still free after every allocation */
    uint32_t chunks;
    bool kernel_zero;      /* zeroed by our kernel (else cudaMemsetAsync) */
    bool kernel_verify;    /* verified on the device (else on the host) */
    uint64_t alloc_ns, zero_ns, verify_ns, free_ns;
    uint64_t total_ns;     /* from the first allocation to the last free */
    double peak_bytes_per_s; /* 0 when the device does not say */
    char text[384];        /* why it failed */
};

/* Scrubs the device at `ordinal` (modes may be or'ed).  Creates the
 * device's primary context if there is none; the context itself is not
 * timed.  Never leaves memory allocated. */
int scrub_device(int ordinal, unsigned modes, struct scrub_result *ret);

/* The theoretical peak memory bandwidth of the device, in bytes per
 * second, from its memory clock and bus width; 0 when unknown. */
double scrub_peak_bandwidth(int ordinal);

/* One line for logs: bytes, time, and each pass's speed. */
void scrub_describe(const struct scrub_result *r, char *buf, size_t len);

/* ---- kernels (kernels.cu); present when built with nvcc ---------------- */
#ifdef SURPLUS_SCRUB_KERNELS
struct scrub_launch {
    unsigned zero_blocks, zero_threads;
    unsigned verify_blocks, verify_threads;
};
/* Grid sizes for the current device.  Also loads the kernels, which must
 * happen before device memory is exhausted: a lazily loaded module needs
 * device memory of its own. */
cudaError_t scrub_kernels_prepare(struct scrub_launch *ret);
/* Both take a 16-byte aligned range whose length is a multiple of 16,
 * queue the work on the default stream and return the launch's error. */
cudaError_t scrub_kernel_zero(const struct scrub_launch *l, void *p,
                              size_t len);
cudaError_t scrub_kernel_verify(const struct scrub_launch *l, const void *p,
                                size_t len, uint64_t base,
                                struct scrub_flag *flag);
#endif

#ifdef __cplusplus
}
#endif

#endif /* SURPLUS_CUDA_SCRUB_H */
