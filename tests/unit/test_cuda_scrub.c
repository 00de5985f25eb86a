/*
 * The cuda plugin's scrub (plugins/accelerator/cuda/scrub.c) against a
 * simulated CUDA runtime, so that its logic is checked where there is no
 * GPU: it takes all the free memory, in smaller chunks where the allocator
 * refuses large ones; every byte it takes, found dirty, ends zero and
 * verified; a word that does not stay zero fails the scrub, on the device
 * and through the host; a device the kernels cannot run on is scrubbed
 * the slow way; any CUDA error fails it; and nothing stays allocated.
 *
 * The simulated device memory is host memory, handed out dirty (every byte
 * 0xab, as a last tenant would leave it); the "kernels" are plain loops.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "scrub.h"
#include "tap.h"

#define MIB ((size_t)1 << 20)

static struct {
    size_t capacity;      /* device memory */
    size_t largest;       /* the largest allocation granted */
    size_t used;
    int live;             /* allocations not freed */
    int mallocs;          /* successful cudaMalloc calls */
    int fail_malloc_at;   /* this successful call fails instead, or 0 */
    cudaError_t malloc_error;
    cudaError_t prepare_error; /* from scrub_kernels_prepare */
    cudaError_t sync_error;    /* from cudaDeviceSynchronize */
    int stuck_chunk;      /* 1-based allocation whose word sticks, or 0 */
    size_t stuck_offset;
    uint32_t stuck_value;
    void *alloc[1024];
    size_t len[1024];
    cudaError_t last;
    int host_copies;      /* cudaMemcpy calls of more than the flag */
    int dirty_frees;      /* buffers freed with a non-zero byte left */
    int kernel_verifies, kernel_zeroes, memsets;
} sim;

static void sim_reset(void)
{
    memset(&sim, 0, sizeof(sim));
    sim.capacity = 70 * MIB;
    sim.largest = SIZE_MAX;
    sim.prepare_error = cudaSuccess;
    sim.sync_error = cudaSuccess;
}

/* After a range is zeroed, a stuck word takes its value back. */
static void sim_stick(void *p, size_t len)
{
    if (sim.stuck_chunk == 0 || sim.stuck_chunk > sim.mallocs)
        return;
    if (p == sim.alloc[sim.stuck_chunk - 1] && sim.stuck_offset + 4 <= len)
        memcpy((char *)p + sim.stuck_offset, &sim.stuck_value, 4);
}

/* ---- the runtime calls scrub.c makes ---------------------------------- */

cudaError_t cudaSetDevice(int device)
{
    return device == 0 ? cudaSuccess : cudaErrorInvalidDevice;
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = sim.last;

    sim.last = cudaSuccess;
    return e;
}

const char *cudaGetErrorName(cudaError_t e)
{
    return e == cudaErrorMemoryAllocation ? "cudaErrorMemoryAllocation"
           : e == cudaErrorECCUncorrectable ? "cudaErrorECCUncorrectable"
                                            : "cudaErrorSimulated";
}

const char *cudaGetErrorString(cudaError_t e)
{
    (void)e;
    return "simulated";
}

cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total)
{
    *free_b = sim.capacity - sim.used;
    *total = sim.capacity;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t len)
{
    if (len > sim.largest || len > sim.capacity - sim.used) {
        sim.last = cudaErrorMemoryAllocation;
        return cudaErrorMemoryAllocation;
    }
    if (sim.fail_malloc_at != 0 && sim.mallocs + 1 == sim.fail_malloc_at)
        return sim.last = sim.malloc_error;
    *p = malloc(len);
    if (*p == NULL)
        abort();
    memset(*p, 0xab, len);
    sim.alloc[sim.mallocs] = *p;
    sim.len[sim.mallocs] = len;
    sim.mallocs++;
    sim.used += len;
    sim.live++;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    if (p == NULL)
        return cudaSuccess;
    for (int i = 0; i < sim.mallocs; i++)
        if (sim.alloc[i] == p) {
            const unsigned char *b = p;

            for (size_t k = 0; k < sim.len[i]; k++)
                if (b[k] != 0) {
                    sim.dirty_frees++;
                    break;
                }
            free(p);
            sim.alloc[i] = NULL;
            sim.used -= sim.len[i];
            sim.live--;
            return cudaSuccess;
        }
    return cudaErrorInvalidValue;
}

cudaError_t cudaMallocHost(void **p, size_t len)
{
    *p = malloc(len);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaFreeHost(void *p)
{
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t len,
                            cudaStream_t stream)
{
    (void)stream;
    memset(p, value, len);
    sim_stick(p, len);
    sim.memsets++;
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t len,
                       enum cudaMemcpyKind kind)
{
    (void)kind;
    memcpy(dst, src, len);
    if (len > sizeof(struct scrub_flag))
        sim.host_copies++;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    return sim.sync_error;
}

cudaError_t cudaDeviceGetAttribute(int *v, enum cudaDeviceAttr attr, int dev)
{
    (void)dev;
    *v = attr == cudaDevAttrMemoryClockRate ? 2619000 : 5120;
    return cudaSuccess;
}

/* ---- the kernels of kernels.cu --------------------------------------- */

cudaError_t scrub_kernels_prepare(struct scrub_launch *ret)
{
    if (sim.prepare_error != cudaSuccess)
        return sim.last = sim.prepare_error;
    ret->zero_blocks = ret->verify_blocks = 1;
    ret->zero_threads = ret->verify_threads = 1;
    return cudaSuccess;
}

cudaError_t scrub_kernel_zero(const struct scrub_launch *l, void *p,
                              size_t len)
{
    (void)l;
    memset(p, 0, len);
    sim_stick(p, len);
    sim.kernel_zeroes++;
    return cudaSuccess;
}

cudaError_t scrub_kernel_verify(const struct scrub_launch *l, const void *p,
                                size_t len, uint64_t base,
                                struct scrub_flag *flag)
{
    const uint32_t *w = p;

    (void)l;
    for (size_t i = 0; i < len / 4; i++)
        if (w[i] != 0) {
            flag->bad_words++;
            if (flag->where == 0) {
                flag->where = base + i * 4 + 1;
                flag->value = w[i];
            }
        }
    sim.kernel_verifies++;
    return cudaSuccess;
}

/* ---- checks ------------------------------------------------------------ */

static struct scrub_result run(unsigned modes)
{
    struct scrub_result r;

    scrub_device(0, modes, &r);
    return r;
}

int main(void)
{
    struct scrub_result r;

    sim_reset();
    r = run(SCRUB_FASTEST);
    tap_ok(r.err == 0 && r.bytes == sim.capacity,
           "a clean scrub takes and verifies all %zu bytes (got %llu: %s)",
           sim.capacity, (unsigned long long)r.bytes, r.text);
    tap_ok(r.kernel_zero && r.kernel_verify && sim.kernel_verifies > 0 &&
               sim.host_copies == 0 && sim.memsets == 0,
           "both passes run as kernels, and nothing is copied to the host");
    tap_ok(sim.live == 0 && sim.used == 0,
           "nothing stays allocated (%d allocations left)", sim.live);
    tap_ok(sim.dirty_frees == 0 && sim.mallocs > 1,
           "every one of the %d buffers it took, handed out dirty, was all "
           "zero when it was freed", sim.mallocs);
    tap_ok(r.total_bytes == sim.capacity && r.left_bytes == 0 &&
               r.peak_bytes_per_s > 3.3e12 && r.peak_bytes_per_s < 3.4e12,
           "it reports the device size, nothing left free, and a peak of "
           "%.0f GB/s from the memory clock and bus width",
           r.peak_bytes_per_s / 1e9);

    sim_reset();
    sim.largest = 8 * MIB;
    r = run(SCRUB_FASTEST);
    tap_ok(r.err == 0 && r.bytes == sim.capacity && r.chunks == 10 &&
               sim.live == 0 && sim.dirty_frees == 0,
           "when the allocator grants at most 8 MiB at a time, the scrub "
           "still takes everything, in %u chunks", (unsigned)r.chunks);

    sim_reset();
    sim.capacity = 70 * MIB + 12345; /* not a whole number of pages */
    r = run(SCRUB_FASTEST);
    tap_ok(r.err == 0 && r.bytes == 70 * MIB && r.left_bytes == 12345,
           "what is left under 2 MiB is reported as left free (%llu)",
           (unsigned long long)r.left_bytes);

    sim_reset();
    sim.stuck_chunk = 2;
    sim.stuck_offset = 4096 + 8;
    sim.stuck_value = 0xdeadbeef;
    r = run(SCRUB_FASTEST);
    tap_ok(r.err == -EIO && r.bytes == 0 &&
               strstr(r.text, "1 non-zero 32-bit words") != NULL &&
               strstr(r.text, "0xdeadbeef") != NULL &&
               strstr(r.text, "offset 2101256") != NULL,
           "a word that does not stay zero fails the scrub, named with its "
           "value and offset: %s", r.text);
    tap_ok(sim.live == 0, "... and everything is freed all the same");

    sim_reset();
    sim.stuck_chunk = 2;
    sim.stuck_offset = 100;
    sim.stuck_value = 0x00ff0000;
    r = run(SCRUB_DRIVER_ZERO | SCRUB_HOST_VERIFY);
    tap_ok(r.err == -EIO && !r.kernel_zero && !r.kernel_verify &&
               sim.kernel_verifies == 0 && sim.host_copies > 0 &&
               strstr(r.text, "byte 0xff at offset 2097254") != NULL,
           "verifying through the host finds it too: %s", r.text);

    sim_reset();
    r = run(SCRUB_DRIVER_ZERO);
    tap_ok(r.err == 0 && !r.kernel_zero && r.kernel_verify &&
               sim.memsets > 0 && sim.kernel_zeroes == 0 &&
               r.bytes == sim.capacity,
           "zeroing with cudaMemsetAsync and verifying with the kernel "
           "works as well");

    sim_reset();
    sim.prepare_error = cudaErrorNoKernelImageForDevice;
    r = run(SCRUB_FASTEST);
    tap_ok(r.err == 0 && !r.kernel_zero && !r.kernel_verify &&
               sim.host_copies > 0 && r.bytes == sim.capacity &&
               sim.live == 0 && sim.dirty_frees == 0,
           "on a device the kernels carry no code for, the scrub goes the "
           "slow way and still covers everything");

    sim_reset();
    sim.prepare_error = cudaErrorECCUncorrectable;
    r = run(SCRUB_FASTEST);
    tap_ok(r.err == -EIO && strstr(r.text, "cudaErrorECCUncorrectable"),
           "another error while loading the kernels fails the scrub: %s",
           r.text);

    sim_reset();
    sim.fail_malloc_at = 5;
    sim.malloc_error = cudaErrorECCUncorrectable;
    sim.largest = 8 * MIB;
    r = run(SCRUB_FASTEST);
    tap_ok(r.err == -EIO && sim.live == 0 &&
               strstr(r.text, "cudaMalloc: cudaErrorECCUncorrectable"),
           "an error other than 'out of memory' while taking the memory "
           "fails the scrub and frees what was taken: %s", r.text);

    sim_reset();
    sim.sync_error = cudaErrorECCUncorrectable;
    r = run(SCRUB_FASTEST);
    tap_ok(r.err == -EIO && sim.live == 0 && r.bytes == 0,
           "a fault reported by cudaDeviceSynchronize fails the scrub: %s",
           r.text);

    sim_reset();
    sim.capacity = MIB;
    r = run(SCRUB_FASTEST);
    tap_ok(r.err == -EIO && strstr(r.text, "first 2 MiB"),
           "with less than 2 MiB free, the scrub fails rather than "
           "claiming a clean device: %s", r.text);

    tap_plan_done();
    return tap_failed ? 1 : 0;
}
