/*
 * saxpy - y = a*x + y on the GPU the job leased, checked on the host.
 *   saxpy [--n N] [--a A]
 *
 * Inside a surplus job, CUDA sees exactly the leased GPUs (device 0 is the
 * first of SURPLUS_GPUS).  The inputs are small integers, so every result
 * is exact in single precision and checking it needs no tolerance.
 * Prints what it did and writes it to saxpy.out; exits 0 when every
 * element is right, 1 when one is not, 2 when CUDA fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#define CHECK(call)                                                          \
    do {                                                                     \
        cudaError_t e_ = (call);                                             \
        if (e_ != cudaSuccess) {                                             \
            fprintf(stderr, "saxpy: %s failed: %s: %s\n", #call,             \
                    cudaGetErrorName(e_), cudaGetErrorString(e_));           \
            exit(2);                                                         \
        }                                                                    \
    } while (0)

__global__ void saxpy(size_t n, float a, const float *x, float *y)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = a * x[i] + y[i];
}

static void usage(void)
{
    fprintf(stderr, "usage: saxpy [--n N (1 to 2^32)] [--a INTEGER]\n");
    exit(64);
}

static float x_at(size_t i) { return (float)(i % 1024); }
static float y_at(size_t i) { return (float)(i % 7); }

int main(int argc, char **argv)
{
    size_t n = (size_t)1 << 24, bad = 0, first_bad = 0;
    float a = 2.0f, *hx, *hy, *dx, *dy, ms = 0;
    struct cudaDeviceProp prop;
    cudaEvent_t t0, t1;
    const char *visible = getenv("CUDA_VISIBLE_DEVICES");
    int dev, sms;
    FILE *out;

    for (int i = 1; i < argc; i += 2) {
        if (i + 1 == argc)
            usage();
        if (strcmp(argv[i], "--n") == 0)
            n = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--a") == 0)
            a = (float)atoi(argv[i + 1]); /* an integer keeps it exact */
        else
            usage();
    }
    if (n == 0 || n > ((size_t)1 << 32))
        usage();

    CHECK(cudaGetDevice(&dev));
    CHECK(cudaGetDeviceProperties(&prop, dev));
    CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    printf("saxpy: %s, compute %d.%d, CUDA_VISIBLE_DEVICES=%s\n", prop.name,
           prop.major, prop.minor, visible ? visible : "(unset)");

    hx = (float *)malloc(n * sizeof(float));
    hy = (float *)malloc(n * sizeof(float));
    if (hx == NULL || hy == NULL) {
        fprintf(stderr, "saxpy: out of host memory for %zu elements\n", n);
        return 2;
    }
    for (size_t i = 0; i < n; i++) {
        hx[i] = x_at(i);
        hy[i] = y_at(i);
    }
    CHECK(cudaMalloc((void **)&dx, n * sizeof(float)));
    CHECK(cudaMalloc((void **)&dy, n * sizeof(float)));
    CHECK(cudaMemcpy(dx, hx, n * sizeof(float), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dy, hy, n * sizeof(float), cudaMemcpyHostToDevice));
    CHECK(cudaEventCreate(&t0));
    CHECK(cudaEventCreate(&t1));

    CHECK(cudaEventRecord(t0));
    saxpy<<<sms * 8, 256>>>(n, a, dx, dy);
    CHECK(cudaGetLastError());
    CHECK(cudaEventRecord(t1));
    CHECK(cudaEventSynchronize(t1));
    CHECK(cudaEventElapsedTime(&ms, t0, t1));
    CHECK(cudaMemcpy(hy, dy, n * sizeof(float), cudaMemcpyDeviceToHost));

    for (size_t i = 0; i < n; i++)
        if (hy[i] != a * x_at(i) + y_at(i) && bad++ == 0)
            first_bad = i;

    out = fopen("saxpy.out", "w");
    for (int k = 0; k < 2; k++) {
        FILE *f = k == 0 ? stdout : out;

        if (f == NULL)
            continue;
        fprintf(f, "saxpy: n=%zu a=%g on %s: %.3f ms, %.1f GB/s\n", n, a,
                prop.name, ms, 3.0 * n * sizeof(float) / (ms * 1e6));
        fprintf(f, "saxpy: y[0]=%g y[%zu]=%g\n", hy[0], n - 1, hy[n - 1]);
        if (bad == 0)
            fprintf(f, "saxpy: all %zu elements are right: ok\n", n);
        else
            fprintf(f, "saxpy: %zu of %zu elements are wrong, the first at "
                       "%zu (%g, not %g): FAILED\n",
                    bad, n, first_bad, hy[first_bad],
                    a * x_at(first_bad) + y_at(first_bad));
    }
    if (out == NULL || fclose(out) != 0)
        fprintf(stderr, "saxpy: cannot write saxpy.out\n");

    CHECK(cudaFree(dx));
    CHECK(cudaFree(dy));
    free(hx);
    free(hy);
    return bad == 0 ? 0 : 1;
}
