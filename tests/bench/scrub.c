/*
 * scrub - times the cuda plugin's scrub (plugins/accelerator/cuda/scrub.c,
 * the very code its helper runs) on one device, and sets it against the
 * device's peak memory bandwidth; the measuring half of
 * tests/bench/scrub.sh.
 *   scrub [-d ORDINAL] [-n RUNS] [-m kernel|memset|host]
 *
 * Each run allocates all free memory, zeroes it, verifies it and frees it.
 * The first run pays for loading the kernels and is left out.  Prints one
 * line per run, then the median run as "key=value" words:
 *   zero_gbs / verify_gbs   each pass, bytes scrubbed per second
 *   pass_frac               both passes: 2 x bytes / (zero + verify time),
 *                           over the peak (each pass moves every byte once)
 *   scrub_ms                allocation to last free, the whole device
 * Exit 77 without a usable CUDA device.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "scrub.h"

#define RUNS_MAX 100

static int by_total(const void *a, const void *b)
{
    const struct scrub_result *x = a, *y = b;

    return x->total_ns < y->total_ns ? -1 : x->total_ns > y->total_ns;
}

int main(int argc, char **argv)
{
    static struct scrub_result res[RUNS_MAX + 1];
    struct cudaDeviceProp prop;
    unsigned modes = SCRUB_FASTEST;
    int ordinal = 0, runs = 5, n = 0, opt, khz = 0, bits = 0;
    const struct scrub_result *m;
    char line[512];
    double peak, pass;
    cudaError_t e;

    while ((opt = getopt(argc, argv, "d:n:m:")) != -1) {
        switch (opt) {
        case 'd':
            ordinal = atoi(optarg);
            break;
        case 'n':
            runs = atoi(optarg);
            break;
        case 'm':
            if (strcmp(optarg, "memset") == 0)
                modes = SCRUB_DRIVER_ZERO;
            else if (strcmp(optarg, "host") == 0)
                modes = SCRUB_DRIVER_ZERO | SCRUB_HOST_VERIFY;
            else if (strcmp(optarg, "kernel") == 0)
                modes = SCRUB_FASTEST;
            else
                goto usage;
            break;
        default:
            goto usage;
        }
    }
    if (optind != argc || runs < 1 || runs > RUNS_MAX || ordinal < 0)
        goto usage;

    e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || ordinal >= n) {
        printf("no CUDA device %d here (%s)\n", ordinal,
               e != cudaSuccess ? cudaGetErrorString(e) : "too few devices");
        return 77;
    }
    e = cudaGetDeviceProperties(&prop, ordinal);
    if (e != cudaSuccess) {
        fprintf(stderr, "scrub: cudaGetDeviceProperties: %s\n",
                cudaGetErrorString(e));
        return 1;
    }
    peak = scrub_peak_bandwidth(ordinal);
    (void)cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, ordinal);
    (void)cudaDeviceGetAttribute(&bits, cudaDevAttrGlobalMemoryBusWidth,
                                 ordinal);
    printf("device %d: %s, compute %d.%d, %.2f GiB, %d SMs; peak %.0f GB/s "
           "(memory clock %d MHz x %d-bit bus x 2)\n",
           ordinal, prop.name, prop.major, prop.minor,
           (double)prop.totalGlobalMem / (1 << 30), prop.multiProcessorCount,
           peak / 1e9, khz / 1000, bits);

    for (int i = 0; i <= runs; i++) {
        if (scrub_device(ordinal, modes, &res[i]) < 0) {
            fprintf(stderr, "scrub: run %d failed: %s\n", i, res[i].text);
            return 1;
        }
        scrub_describe(&res[i], line, sizeof(line));
        printf("%s %d: %s\n", i == 0 ? "warm-up" : "run", i, line);
    }
    qsort(res + 1, (size_t)runs, sizeof(res[0]), by_total);
    m = &res[1 + runs / 2];
    pass = m->zero_ns + m->verify_ns
               ? 2.0 * (double)m->bytes /
                     ((double)(m->zero_ns + m->verify_ns) / 1e9)
               : 0;
    printf("median: name=\"%s\" bytes=%llu total_bytes=%llu zero_gbs=%.1f "
           "verify_gbs=%.1f pass_gbs=%.1f peak_gbs=%.1f pass_frac=%.3f "
           "zero_ms=%.2f verify_ms=%.2f alloc_ms=%.2f free_ms=%.2f "
           "scrub_ms=%.2f zero=%s verify=%s\n",
           prop.name, (unsigned long long)m->bytes,
           (unsigned long long)m->total_bytes,
           m->zero_ns ? (double)m->bytes / (double)m->zero_ns : 0,
           m->verify_ns ? (double)m->bytes / (double)m->verify_ns : 0,
           pass / 1e9, peak / 1e9, peak > 0 ? pass / peak : 0,
           m->zero_ns / 1e6, m->verify_ns / 1e6, m->alloc_ns / 1e6,
           m->free_ns / 1e6, m->total_ns / 1e6,
           m->kernel_zero ? "kernel" : "cudaMemset",
           m->kernel_verify ? "device" : "host");
    return 0;

usage:
    fprintf(stderr, "usage: scrub [-d ORDINAL] [-n RUNS (1-%d)] "
                    "[-m kernel|memset|host]\n", RUNS_MAX);
    return 64;
}
