/* dist.h: the few collective operations evit-distill and evit-eval use to
 * run on several processes with Open MPI (configure --with-mpi), and their
 * single-process stand-ins in a build without MPI (rank 0 of 1; every
 * collective is then a no-op), so callers have one code path.
 *
 * The communicator is MPI_COMM_WORLD: one job is one training or one
 * evaluation.  Errors inside MPI abort the job (Open MPI's default handler),
 * which is what a synchronous data-parallel step wants: a rank that dies,
 * or returns from main with a non-zero status, takes every other rank down,
 * and mpirun names the rank.  Files written
 * before stay valid: they are written to a temporary name and renamed. */
#ifndef EVIT_DIST_H
#define EVIT_DIST_H

#include <stddef.h>

/* Initialises MPI when the program was started by mpirun (or always, in an
 * MPI build: singleton init is cheap).  Call first in main. */
void evit_dist_init(int *argc, char ***argv);
void evit_dist_finalize(void);

int evit_dist_rank(void);
int evit_dist_size(void);
/* 1 in a build with MPI support. */
int evit_dist_available(void);

/* In place: buf = sum over ranks of buf, the same bits on every rank. */
void evit_dist_sum_floats(float *buf, size_t n);
void evit_dist_sum_doubles(double *buf, size_t n);
/* Copies root's bytes to every rank. */
void evit_dist_bcast(void *buf, size_t bytes, int root);
/* Rank 0's out receives each rank's part (counts[r] floats from rank r)
 * back to back; out is only used on rank 0. */
void evit_dist_gather_floats(float *out, const float *part, const int *counts);

/* main() of a program that may run as an MPI job: initialises, runs
 * body(argc, argv) and finalizes when it succeeded.  A failed rank leaves
 * without MPI_Finalize, so mpirun ends the whole job. */
int evit_dist_main(int (*body)(int, char **), int argc, char **argv);

/* The contiguous share [lo, hi) of n items that rank r of size gets:
 * lo = n r / size, as even as integers allow. */
void evit_dist_share(long n, int r, int size, long *lo, long *hi);

#endif
