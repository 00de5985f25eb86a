/*
 * kernels.cu - the two passes of a scrub, run on the device: zero a range,
 * then read it back and count what is not zero.
 *
 * Both passes stream through memory once, in 16-byte accesses, from a grid
 * sized to fill every SM, so that they run at close to the memory's peak
 * bandwidth.  Verifying on the device moves each byte over HBM only, where
 * a copy back to the host would move it over PCIe, tens of times slower;
 * only the small result (struct scrub_flag) comes back.
 *
 * Built by nvcc into an object of the cuda plugin (see plugins/local.mk);
 * the host side is plain C with no C++ runtime, and no symbol of this file
 * is exported from the plugin.
 */
#include <cuda_runtime.h>

#include "scrub.h"

/* Threads per block.  The grid is as many blocks as fit on every SM at
 * once (the occupancy API counts registers); that is well over the loads
 * in flight HBM needs to stay busy.  The verify kernel must not spill to
 * local memory: a first launch that needs more of it would have to
 * allocate device memory, and there is none left during a scrub. */
#define ZERO_THREADS 512
#define VERIFY_THREADS 512
/* Accesses in flight per thread and loop turn.  A load waits several
 * hundred nanoseconds for HBM: one outstanding load per thread leaves the
 * memory idle most of the time, four independent ones keep it busy. */
#define UNROLL 4

__global__ void __launch_bounds__(ZERO_THREADS)
scrub_zero(uint4 *__restrict__ p, size_t n)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    const uint4 zero = make_uint4(0, 0, 0, 0);
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;

    /* Streaming stores: the data is not read again soon, so it should
     * not evict anything from L2 for long. */
    for (; i + (UNROLL - 1) * stride < n; i += UNROLL * stride) {
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
            __stcs(p + i + u * stride, zero);
    }
    for (; i < n; i += stride)
        __stcs(p + i, zero);
}

/* The slow path, taken only where something is not zero. */
__device__ static void note_nonzero(uint4 v, size_t i, unsigned long long base,
                                    unsigned long long *bad,
                                    unsigned long long *where,
                                    unsigned *value)
{
    const unsigned w[4] = {v.x, v.y, v.z, v.w};

    for (int k = 0; k < 4; k++) {
        if (w[k] == 0)
            continue;
        (*bad)++;
        if (*where == 0) {
            *where = base + (unsigned long long)i * 16 + (unsigned)k * 4 + 1;
            *value = w[k];
        }
    }
}

__global__ void __launch_bounds__(VERIFY_THREADS)
scrub_verify(const uint4 *__restrict__ p, size_t n, unsigned long long base,
             struct scrub_flag *flag)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    unsigned long long bad = 0, where = 0;
    unsigned value = 0;

    for (; i + (UNROLL - 1) * stride < n; i += UNROLL * stride) {
        uint4 v[UNROLL];
        unsigned any = 0;

        /* Streaming loads (ld.global.cs): read once, not worth caching. */
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
            v[u] = __ldcs(p + i + u * stride);
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
            any |= v[u].x | v[u].y | v[u].z | v[u].w;
        if (any != 0)
            for (int u = 0; u < UNROLL; u++)
                note_nonzero(v[u], i + u * stride, base, &bad, &where,
                             &value);
    }
    for (; i < n; i += stride) {
        uint4 v = __ldcs(p + i);

        if ((v.x | v.y | v.z | v.w) != 0)
            note_nonzero(v, i, base, &bad, &where, &value);
    }
    /* One atomic per thread that found something; a clean pass makes
     * none.  `where` keeps whichever offset arrives first. */
    if (bad != 0) {
        atomicAdd(&flag->bad_words, bad);
        if (atomicCAS(&flag->where, 0ULL, where) == 0ULL)
            flag->value = value;
    }
}

static cudaError_t grid_for(const void *fn, unsigned threads,
                            unsigned *ret_blocks)
{
    struct cudaFuncAttributes attr;
    int dev, sms = 0, per_sm = 0;
    cudaError_t e;

    /* Loads the function: fails here, not halfway through a scrub, on a
     * device this file carries no code for. */
    e = cudaFuncGetAttributes(&attr, fn);
    if (e != cudaSuccess)
        return e;
    e = cudaGetDevice(&dev);
    if (e != cudaSuccess)
        return e;
    e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    if (e != cudaSuccess)
        return e;
    e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fn,
                                                      (int)threads, 0);
    if (e != cudaSuccess)
        return e;
    if (sms < 1)
        sms = 1;
    if (per_sm < 1)
        per_sm = 1;
    *ret_blocks = (unsigned)sms * (unsigned)per_sm;
    return cudaSuccess;
}

extern "C" cudaError_t scrub_kernels_prepare(struct scrub_launch *ret)
{
    struct scrub_launch l;
    cudaError_t e;

    l.zero_threads = ZERO_THREADS;
    l.verify_threads = VERIFY_THREADS;
    e = grid_for((const void *)scrub_zero, l.zero_threads, &l.zero_blocks);
    if (e == cudaSuccess)
        e = grid_for((const void *)scrub_verify, l.verify_threads,
                     &l.verify_blocks);
    if (e == cudaSuccess)
        *ret = l;
    return e;
}

extern "C" cudaError_t scrub_kernel_zero(const struct scrub_launch *l,
                                         void *p, size_t len)
{
    scrub_zero<<<l->zero_blocks, l->zero_threads>>>((uint4 *)p, len / 16);
    /* A failed launch leaves a non-sticky error behind: taken here, so
     * that it is reported once, and as this call's. */
    return cudaGetLastError();
}

extern "C" cudaError_t scrub_kernel_verify(const struct scrub_launch *l,
                                           const void *p, size_t len,
                                           uint64_t base,
                                           struct scrub_flag *flag)
{
    scrub_verify<<<l->verify_blocks, l->verify_threads>>>(
        (const uint4 *)p, len / 16, (unsigned long long)base, flag);
    return cudaGetLastError();
}
