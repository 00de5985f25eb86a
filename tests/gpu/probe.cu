/*
 * probe - the CUDA program the GPU tests run inside jobs, compiled at test
 * time with nvcc (the CUDA runtime linked statically, as a job brings its
 * own).
 *   probe list          what the job can see: "count N", then one line per
 *                       device (uuid, pci bus id, name, memory, compute);
 *                       exit 3 when CUDA finds no device
 *   probe fill WORD     allocates all the free memory it can, fills it with
 *                       the 32-bit WORD (hex) and exits without freeing it
 *   probe seek WORD     allocates all the free memory it can, leaves it as
 *                       the allocator hands it out, and counts the words
 *                       equal to WORD; exit 1 when there is any
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#define GRANULE ((size_t)2 << 20)
#define MAX_CHUNKS 4096

#define CHECK(call)                                                          \
    do {                                                                     \
        cudaError_t e_ = (call);                                             \
        if (e_ != cudaSuccess) {                                             \
            fprintf(stderr, "probe: %s: %s: %s\n", #call,                    \
                    cudaGetErrorName(e_), cudaGetErrorString(e_));           \
            exit(2);                                                         \
        }                                                                    \
    } while (0)

__global__ void fill(unsigned *p, size_t n, unsigned word)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        p[i] = word;
}

__global__ void seek(const unsigned *p, size_t n, unsigned word,
                     unsigned long long *found)
{
    unsigned long long mine = 0;

    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        mine += p[i] == word;
    if (mine != 0)
        atomicAdd(found, mine);
}

static int list(void)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);

    if (e != cudaSuccess) {
        printf("count 0 error %s\n", cudaGetErrorName(e));
        return 3;
    }
    printf("count %d\n", n);
    for (int i = 0; i < n; i++) {
        struct cudaDeviceProp p;
        const unsigned char *u;
        char pci[32];

        CHECK(cudaGetDeviceProperties(&p, i));
        CHECK(cudaDeviceGetPCIBusId(pci, sizeof(pci), i));
        u = (const unsigned char *)p.uuid.bytes;
        printf("device %d uuid GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-"
               "%02x%02x-%02x%02x%02x%02x%02x%02x pci %s memory %zu "
               "compute %d.%d name %s\n",
               i, u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
               u[10], u[11], u[12], u[13], u[14], u[15], pci,
               p.totalGlobalMem, p.major, p.minor, p.name);
    }
    return n > 0 ? 0 : 3;
}

/* All the free memory, in chunks that shrink where the allocator
 * refuses. */
static size_t grab(void **chunk, size_t *len, size_t *ret_n)
{
    size_t free_b, total_b, step, total = 0, n = 0;

    CHECK(cudaMemGetInfo(&free_b, &total_b));
    step = free_b / GRANULE * GRANULE;
    while (step >= GRANULE && n < MAX_CHUNKS) {
        cudaError_t e = cudaMalloc(&chunk[n], step);

        if (e == cudaErrorMemoryAllocation) {
            (void)cudaGetLastError();
            step = step / 2 / GRANULE * GRANULE;
            continue;
        }
        CHECK(e);
        len[n++] = step;
        total += step;
        CHECK(cudaMemGetInfo(&free_b, &total_b));
        if (step > free_b / GRANULE * GRANULE)
            step = free_b / GRANULE * GRANULE;
    }
    *ret_n = n;
    return total;
}

int main(int argc, char **argv)
{
    static void *chunk[MAX_CHUNKS];
    static size_t len[MAX_CHUNKS];
    unsigned long long *found, got = 0;
    size_t n = 0, total, free_b, total_b;
    unsigned word;
    char *end;

    if (argc == 2 && strcmp(argv[1], "list") == 0)
        return list();
    if (argc != 3 || (strcmp(argv[1], "fill") && strcmp(argv[1], "seek"))) {
        fprintf(stderr, "usage: probe list | probe fill|seek WORD\n");
        return 64;
    }
    errno = 0;
    word = (unsigned)strtoul(argv[2], &end, 16);
    if (errno || *end || word == 0) {
        fprintf(stderr, "probe: '%s' is not a non-zero hex word\n", argv[2]);
        return 64;
    }
    CHECK(cudaSetDevice(0));
    CHECK(cudaMalloc((void **)&found, sizeof(*found)));
    CHECK(cudaMemset(found, 0, sizeof(*found)));
    CHECK(cudaMemGetInfo(&free_b, &total_b));
    total = grab(chunk, len, &n);
    for (size_t i = 0; i < n; i++) {
        if (argv[1][0] == 'f')
            fill<<<1024, 512>>>((unsigned *)chunk[i], len[i] / 4, word);
        else
            seek<<<1024, 512>>>((const unsigned *)chunk[i], len[i] / 4,
                                word, found);
        CHECK(cudaGetLastError());
    }
    CHECK(cudaDeviceSynchronize());
    if (argv[1][0] == 'f') {
        /* Exits holding it all: freeing is the driver's and then the
         * scrub's business. */
        printf("filled %zu of %zu bytes with %08x\n", total, total_b, word);
        return 0;
    }
    CHECK(cudaMemcpy(&got, found, sizeof(got), cudaMemcpyDeviceToHost));
    printf("scanned %zu of %zu bytes, found %llu words %08x\n", total,
           total_b, got, word);
    for (size_t i = 0; i < n; i++)
        CHECK(cudaFree(chunk[i]));
    CHECK(cudaFree(found));
    return got == 0 ? 0 : 1;
}
