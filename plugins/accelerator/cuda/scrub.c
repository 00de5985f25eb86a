/*
 * scrub.c - overwrite and verify the free memory of one CUDA device.
 *
 * A scrub takes every byte cudaMalloc will give (so that nothing of the
 * last tenant stays where the next one's allocations land), zeroes it,
 * reads all of it back and checks it is zero, and frees it.  On a device
 * the kernels of kernels.cu can run on, both passes run on the device at
 * memory speed; elsewhere (an architecture the plugin carries no code for,
 * or a build without nvcc) zeroing falls back to cudaMemsetAsync and
 * verifying to copies through the host, which is slower but as thorough.
 *
 * Every CUDA call is checked; any failure makes the scrub fail, because a
 * device that cannot be shown clean must not be leased again.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>

#include "scrub.h"

/* Bounds the allocation loop: the largest devices need a few dozen. */
#define SCRUB_MAX_CHUNKS 4096
/* Host buffer of the host-side verify: large copies run at full PCIe
 * speed, and 64 MiB of pinned memory is easy to find. */
#define HOST_VERIFY_BYTES ((size_t)64 << 20)

#ifndef SURPLUS_SCRUB_KERNELS
/* Built without nvcc: there are no kernels to launch. */
struct scrub_launch {
    int none;
};
#endif

struct chunks {
    void **p;
    size_t *len;
    size_t n, cap;
    uint64_t bytes;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

/* Keeps the first failure: later ones are usually its consequences. */
static void fail_cuda(struct scrub_result *r, const char *call,
                      cudaError_t e)
{
    if (r->text[0] == '\0')
        snprintf(r->text, sizeof(r->text), "%s: %s: %s", call,
                 cudaGetErrorName(e), cudaGetErrorString(e));
}

__attribute__((format(printf, 2, 3)))
static void fail(struct scrub_result *r, const char *fmt, ...)
{
    va_list ap;

    if (r->text[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(r->text, sizeof(r->text), fmt, ap);
    va_end(ap);
}

#ifdef SURPLUS_SCRUB_KERNELS
/* Errors that mean "no code for this device", after which the scrub goes
 * on the slower way rather than failing the device. */
static bool no_code_for_device(cudaError_t e)
{
    return e == cudaErrorNoKernelImageForDevice ||
           e == cudaErrorInvalidDeviceFunction ||
           e == cudaErrorInvalidKernelImage ||
           e == cudaErrorUnsupportedPtxVersion ||
           e == cudaErrorJitCompilerNotFound ||
           e == cudaErrorJitCompilationDisabled ||
           e == cudaErrorInvalidPtx;
}
#endif

static int chunks_push(struct chunks *c, void *p, size_t len)
{
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 64;
        void **np = realloc(c->p, ncap * sizeof(*np));
        size_t *nl;

        if (np == NULL)
            return -ENOMEM;
        c->p = np;
        nl = realloc(c->len, ncap * sizeof(*nl));
        if (nl == NULL)
            return -ENOMEM;
        c->len = nl;
        c->cap = ncap;
    }
    c->p[c->n] = p;
    c->len[c->n] = len;
    c->n++;
    c->bytes += len;
    return 0;
}

static size_t granules(size_t bytes)
{
    return bytes / SCRUB_GRANULE * SCRUB_GRANULE;
}

/*
 * Allocates what is free, largest chunks first: one call for most of the
 * memory, then smaller ones as the allocator refuses, down to its 2 MiB
 * pages, so that nothing is left over that a later allocation could land
 * on.  Returns 0 or -EIO with the story in r->text.
 */
static int grab_free_memory(struct chunks *c, struct scrub_result *r)
{
    size_t free_b = 0, total_b = 0, step;
    cudaError_t e;

    e = cudaMemGetInfo(&free_b, &total_b);
    if (e != cudaSuccess) {
        fail_cuda(r, "cudaMemGetInfo", e);
        return -EIO;
    }
    step = granules(free_b);
    while (step >= SCRUB_GRANULE && c->n < SCRUB_MAX_CHUNKS) {
        void *p = NULL;

        e = cudaMalloc(&p, step);
        if (e == cudaErrorMemoryAllocation) {
            /* Not an error here, just the edge of what is free; cleared
             * so that it is not reported by a later call. */
            (void)cudaGetLastError();
            step = granules(step / 2);
            continue;
        }
        if (e != cudaSuccess) {
            fail_cuda(r, "cudaMalloc", e);
            return -EIO;
        }
        if (chunks_push(c, p, step) < 0) {
            (void)cudaFree(p);
            fail(r, "out of host memory");
            return -EIO;
        }
        e = cudaMemGetInfo(&free_b, &total_b);
        if (e != cudaSuccess) {
            fail_cuda(r, "cudaMemGetInfo", e);
            return -EIO;
        }
        if (step > granules(free_b))
            step = granules(free_b);
    }
    r->left_bytes = free_b;
    return 0;
}

static int zero_range(const struct scrub_launch *l, void *p, size_t len,
                      struct scrub_result *r)
{
    cudaError_t e;

#ifdef SURPLUS_SCRUB_KERNELS
    if (r->kernel_zero) {
        e = scrub_kernel_zero(l, p, len);
        if (e != cudaSuccess)
            fail_cuda(r, "zero kernel launch", e);
        return e == cudaSuccess ? 0 : -EIO;
    }
#endif
    (void)l;
    e = cudaMemsetAsync(p, 0, len, 0);
    if (e != cudaSuccess)
        fail_cuda(r, "cudaMemsetAsync", e);
    return e == cudaSuccess ? 0 : -EIO;
}

/* Offset of the first non-zero byte, or len when all are zero. */
static size_t first_nonzero(const unsigned char *p, size_t len)
{
    /* p[0] == 0 and p[i] == p[i + 1] for all i means all zero; memcmp
     * checks that at memory speed. */
    if (len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0))
        return len;
    for (size_t i = 0; i < len; i++)
        if (p[i] != 0)
            return i;
    return len;
}

static int verify_on_host(const struct chunks *c, unsigned char *buf,
                          struct scrub_result *r)
{
    uint64_t base = 0;

    for (size_t i = 0; i < c->n; base += c->len[i], i++)
        for (size_t off = 0; off < c->len[i]; off += HOST_VERIFY_BYTES) {
            size_t len = c->len[i] - off < HOST_VERIFY_BYTES
                             ? c->len[i] - off
                             : HOST_VERIFY_BYTES;
            cudaError_t e;
            size_t bad;

            e = cudaMemcpy(buf, (char *)c->p[i] + off, len,
                           cudaMemcpyDeviceToHost);
            if (e != cudaSuccess) {
                fail_cuda(r, "cudaMemcpy", e);
                return -EIO;
            }
            bad = first_nonzero(buf, len);
            if (bad < len) {
                fail(r, "verification found byte 0x%02x at offset %llu of "
                        "the scrubbed memory after zeroing it",
                     buf[bad], (unsigned long long)(base + off + bad));
                return -EIO;
            }
        }
    return 0;
}

#ifdef SURPLUS_SCRUB_KERNELS
/* The flag sits at the start of chunk 0, which the zero pass cleared with
 * the rest: the kernels find it zero, and it stays zero unless they find
 * something. */
static int verify_on_device(const struct chunks *c,
                            const struct scrub_launch *l,
                            struct scrub_result *r)
{
    struct scrub_flag *flag = c->p[0], got;
    uint64_t base = 0;
    cudaError_t e;

    for (size_t i = 0; i < c->n; base += c->len[i], i++) {
        size_t skip = i == 0 ? SCRUB_FLAG_SPAN : 0;

        e = scrub_kernel_verify(l, (const char *)c->p[i] + skip,
                                c->len[i] - skip, base + skip, flag);
        if (e != cudaSuccess) {
            fail_cuda(r, "verify kernel launch", e);
            return -EIO;
        }
    }
    /* Synchronous: also where a fault during either pass shows up. */
    e = cudaMemcpy(&got, flag, sizeof(got), cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) {
        fail_cuda(r, "cudaMemcpy of the verify result", e);
        return -EIO;
    }
    if (got.bad_words != 0 || got.where != 0) {
        fail(r, "verification found %llu non-zero 32-bit words after "
                "zeroing, one of them 0x%08llx at offset %llu of the "
                "scrubbed memory",
             got.bad_words, got.value,
             got.where ? got.where - 1 : 0ULL);
        return -EIO;
    }
    return 0;
}
#endif

int scrub_device(int ordinal, unsigned modes, struct scrub_result *r)
{
    struct chunks c = {0};
    unsigned char *host = NULL;
    bool pinned = false;
    size_t free_b = 0, total_b = 0;
    uint64_t start = 0, t;
    cudaError_t e;
    struct scrub_launch launch;
    int ok = -EIO;

    memset(r, 0, sizeof(*r));
    memset(&launch, 0, sizeof(launch));
    r->err = -EIO;
    e = cudaSetDevice(ordinal);
    if (e != cudaSuccess) {
        fail_cuda(r, "cudaSetDevice", e);
        goto out;
    }
    /* Creates the context now, outside the timed part: its cost is the
     * runtime's, paid by a fresh helper whatever it does. */
    e = cudaFree(NULL);
    if (e != cudaSuccess) {
        fail_cuda(r, "cudaFree(NULL) (creating a context)", e);
        goto out;
    }
    e = cudaMemGetInfo(&free_b, &total_b);
    if (e != cudaSuccess) {
        fail_cuda(r, "cudaMemGetInfo", e);
        goto out;
    }
    r->free_bytes = free_b;
    r->total_bytes = total_b;
    r->peak_bytes_per_s = scrub_peak_bandwidth(ordinal);

#ifdef SURPLUS_SCRUB_KERNELS
    if ((modes & (SCRUB_DRIVER_ZERO | SCRUB_HOST_VERIFY)) !=
        (SCRUB_DRIVER_ZERO | SCRUB_HOST_VERIFY)) {
        e = scrub_kernels_prepare(&launch);
        if (e == cudaSuccess) {
            r->kernel_zero = !(modes & SCRUB_DRIVER_ZERO);
            r->kernel_verify = !(modes & SCRUB_HOST_VERIFY);
        } else if (no_code_for_device(e)) {
            (void)cudaGetLastError();
        } else {
            fail_cuda(r, "loading the scrub kernels", e);
            goto out;
        }
    }
#else
    (void)modes;
#endif

    /* Host memory first: pinning may need device resources, and none
     * are left once the grab is done.  Pageable memory is slower but
     * does the same job. */
    if (!r->kernel_verify) {
        e = cudaMallocHost((void **)&host, HOST_VERIFY_BYTES);
        if (e == cudaSuccess) {
            pinned = true;
        } else {
            (void)cudaGetLastError();
            host = malloc(HOST_VERIFY_BYTES);
            if (host == NULL) {
                fail(r, "out of host memory for the verify buffer");
                goto out;
            }
        }
    }

    start = mono_ns();
    /* The first page holds the verify flag.  Both passes run over it
     * once before the rest is taken: a kernel's first launch may need
     * device memory (lazy module loading), and this is the last moment
     * there is some. */
    {
        void *p = NULL;

        e = cudaMalloc(&p, SCRUB_GRANULE);
        if (e != cudaSuccess) {
            fail_cuda(r, "cudaMalloc of the first 2 MiB", e);
            goto out;
        }
        if (chunks_push(&c, p, SCRUB_GRANULE) < 0) {
            (void)cudaFree(p);
            fail(r, "out of host memory");
            goto out;
        }
        if (zero_range(&launch, p, SCRUB_GRANULE, r) < 0)
            goto out;
#ifdef SURPLUS_SCRUB_KERNELS
        if (r->kernel_verify && verify_on_device(&c, &launch, r) < 0)
            goto out;
#endif
        e = cudaDeviceSynchronize();
        if (e != cudaSuccess) {
            fail_cuda(r, "cudaDeviceSynchronize", e);
            goto out;
        }
    }
    if (grab_free_memory(&c, r) < 0)
        goto out;
    t = mono_ns();
    r->alloc_ns = t - start;
    r->chunks = (uint32_t)c.n;

    for (size_t i = 0; i < c.n; i++)
        if (zero_range(&launch, c.p[i], c.len[i], r) < 0)
            goto out;
    e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
        fail_cuda(r, "cudaDeviceSynchronize after zeroing", e);
        goto out;
    }
    r->zero_ns = mono_ns() - t;

    t = mono_ns();
#ifdef SURPLUS_SCRUB_KERNELS
    if (r->kernel_verify) {
        if (verify_on_device(&c, &launch, r) < 0)
            goto out;
    } else
#endif
        if (verify_on_host(&c, host, r) < 0)
        goto out;
    r->verify_ns = mono_ns() - t;
    ok = 0;

out:
    t = mono_ns();
    for (size_t i = 0; i < c.n; i++) {
        e = cudaFree(c.p[i]);
        if (e != cudaSuccess) {
            fail_cuda(r, "cudaFree", e);
            ok = -EIO;
        }
    }
    if (start != 0) {
        r->free_ns = mono_ns() - t;
        r->total_ns = mono_ns() - start;
    }
    if (ok == 0)
        r->bytes = c.bytes;
    free(c.p);
    free(c.len);
    if (pinned)
        (void)cudaFreeHost(host);
    else
        free(host);
    r->err = ok;
    return ok;
}

double scrub_peak_bandwidth(int ordinal)
{
    int khz = 0, bits = 0;

    if (cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, ordinal) !=
            cudaSuccess ||
        cudaDeviceGetAttribute(&bits, cudaDevAttrGlobalMemoryBusWidth,
                               ordinal) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    if (khz <= 0 || bits <= 0)
        return 0;
    /* Two transfers per memory clock (double data rate), each as wide as
     * the bus: for an H100 SXM, 2 x 2619 MHz x 5120 bits = 3.35 TB/s. */
    return 2.0 * (double)khz * 1e3 * (double)bits / 8.0;
}

static double gb_per_s(uint64_t bytes, uint64_t ns)
{
    return ns ? (double)bytes / (double)ns : 0;
}

static void speed(char *buf, size_t len, uint64_t bytes, uint64_t ns,
                  double peak)
{
    double gbs = gb_per_s(bytes, ns);

    if (peak > 0)
        snprintf(buf, len, "%.0f GB/s, %.0f%% of peak", gbs,
                 100.0 * gbs * 1e9 / peak);
    else
        snprintf(buf, len, "%.0f GB/s", gbs);
}

void scrub_describe(const struct scrub_result *r, char *buf, size_t len)
{
    char zero[64], verify[64];
    uint64_t bytes = r->bytes;

    speed(zero, sizeof(zero), bytes, r->zero_ns, r->peak_bytes_per_s);
    speed(verify, sizeof(verify), bytes, r->verify_ns, r->peak_bytes_per_s);
    snprintf(buf, len,
             "%.2f of %.2f GiB in %.1f ms (%u chunks, %.1f MiB left free): "
             "alloc %.1f ms, zero %.1f ms (%s, %s), verify %.1f ms (%s, "
             "%s), free %.1f ms",
             (double)bytes / (1 << 30), (double)r->total_bytes / (1 << 30),
             r->total_ns / 1e6, (unsigned)r->chunks,
             (double)r->left_bytes / (1 << 20), r->alloc_ns / 1e6,
             r->zero_ns / 1e6, r->kernel_zero ? "kernel" : "cudaMemset",
             zero, r->verify_ns / 1e6,
             r->kernel_verify ? "on the device" : "through the host", verify,
             r->free_ns / 1e6);
}
