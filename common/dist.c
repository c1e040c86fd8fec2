/* dist.c: see dist.h. */
#include "dist.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* One process: its part is the whole. */
static void gather_alone(float *out, const float *part, const int *counts)
{
    if (out != part) memmove(out, part, sizeof(float) * (size_t)counts[0]);
}

#ifdef EVIT_MPI
#include <mpi.h>

/* MPI counts are int: large buffers go in slices of at most 2^30 elements. */
#define SLICE ((size_t)1 << 30)

/* Only a process that mpirun (or another PMIx launcher) started joins a
 * job; run by hand, a program stays one process and never touches MPI
 * (Open MPI's singleton start would spawn a daemon for nothing). */
static int launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

static int active(void)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

void evit_dist_init(int *argc, char ***argv)
{
    int provided;
    /* only the main thread calls MPI; OpenMP threads compute between calls */
    if (launched() && !active()) MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
}

void evit_dist_finalize(void)
{
    if (active()) MPI_Finalize();
}

int evit_dist_rank(void)
{
    int r = 0;
    if (active()) MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int evit_dist_size(void)
{
    int n = 1;
    if (active()) MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

int evit_dist_available(void)
{
    return 1;
}

/* Allreduce with MPI_SUM: Open MPI picks its algorithm from the message
 * size and the number of ranks alone, so a run's summation order is fixed,
 * and every rank receives the same reduced bits. */
void evit_dist_sum_floats(float *buf, size_t n)
{
    if (!active()) return;
    for (size_t at = 0; at < n; at += SLICE) {
        size_t k = n - at < SLICE ? n - at : SLICE;
        MPI_Allreduce(MPI_IN_PLACE, buf + at, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}

void evit_dist_sum_doubles(double *buf, size_t n)
{
    if (!active()) return;
    for (size_t at = 0; at < n; at += SLICE) {
        size_t k = n - at < SLICE ? n - at : SLICE;
        MPI_Allreduce(MPI_IN_PLACE, buf + at, (int)k, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    }
}

void evit_dist_bcast(void *buf, size_t bytes, int root)
{
    if (!active()) return;
    for (size_t at = 0; at < bytes; at += SLICE) {
        size_t k = bytes - at < SLICE ? bytes - at : SLICE;
        MPI_Bcast((char *)buf + at, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
    }
}

void evit_dist_gather_floats(float *out, const float *part, const int *counts)
{
    int size = evit_dist_size(), rank = evit_dist_rank();
    if (!active()) {
        gather_alone(out, part, counts);
        return;
    }
    int *displs = evit_malloc(sizeof(int) * (size_t)size);
    for (int r = 0, at = 0; r < size; r++) {
        displs[r] = at;
        at += counts[r];
    }
    MPI_Gatherv(part, counts[rank], MPI_FLOAT, out, counts, displs, MPI_FLOAT, 0, MPI_COMM_WORLD);
    free(displs);
}

#else /* one process */

void evit_dist_init(int *argc, char ***argv)
{
    const char *n = getenv("OMPI_COMM_WORLD_SIZE"), *r = getenv("OMPI_COMM_WORLD_RANK");
    if (n && atoi(n) > 1 && (!r || atoi(r) == 0))
        evit_info("warning: this evit was built without MPI: each of the %s processes mpirun started runs the "
                  "whole job on its own (reconfigure with --with-mpi)",
                  n);
}

void evit_dist_finalize(void)
{
}

int evit_dist_rank(void)
{
    return 0;
}

int evit_dist_size(void)
{
    return 1;
}

int evit_dist_available(void)
{
    return 0;
}

void evit_dist_sum_floats(float *buf, size_t n)
{
}

void evit_dist_sum_doubles(double *buf, size_t n)
{
}

void evit_dist_bcast(void *buf, size_t bytes, int root)
{
}

void evit_dist_gather_floats(float *out, const float *part, const int *counts)
{
    gather_alone(out, part, counts);
}

#endif

void evit_dist_share(long n, int r, int size, long *lo, long *hi)
{
    *lo = (long)((int64_t)n * r / size);
    *hi = (long)((int64_t)n * (r + 1) / size);
}

int evit_dist_main(int (*body)(int, char **), int argc, char **argv)
{
    evit_dist_init(&argc, &argv);
    int rc = body(argc, argv);
    if (rc == 0) evit_dist_finalize();
    return rc;
}
