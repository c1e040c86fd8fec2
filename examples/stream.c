/* stream.c: classifies a camera stream with libevrt, through evrt.h alone.
 *
 * Reads raw 8-bit frames of exactly the model's input (img_size rows of
 * img_size pixels of `channels` interleaved bytes, the layout evrt_infer
 * takes) back to back from standard input, and prints one line per frame:
 *
 *   frame N class K NAME
 *
 * (N from 0; NAME, where the model file has class names, is the rest of
 * the line).  A camera pipeline scales to the model's size, for a 28x28
 * grey model:
 *
 *   gst-launch-1.0 -q v4l2src ! videoconvert ! videoscale \
 *       ! video/x-raw,format=GRAY8,width=28,height=28 ! fdsink \
 *       | ./stream model.evit 4
 *
 * evit-run --raw WxHxC does the same for frames of any size and adds each
 * frame's probability and latency (docs/JETSON.md, "Camera streams").
 *
 * Build, with runtime/libevrt.a from `make` (or, in its place, every
 * .c file of runtime/ but run_main.c):
 *
 *   cc -std=c99 -Iruntime examples/stream.c runtime/libevrt.a -lm -lpthread
 *
 * Exit status: 0 at the end of input on a frame boundary, 1 on an error
 * (one line on stderr), 2 on bad arguments. */
#include <stdio.h>
#include <stdlib.h>

#include "evrt.h"

int main(int argc, char **argv)
{
    char err[EVRT_ERR_MAX];
    evrt_file *f = NULL;
    evrt_ctx *ctx = NULL;
    const struct evrt_model *m;
    unsigned char *frame = NULL;
    float *logits = NULL;
    size_t bytes, got;
    unsigned long n;
    int rc = 1;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: stream MODEL.evit [THREADS] <frames\n");
        return 2;
    }
    /* Map the model file read-only: struct evrt_model points into the
     * mapping, nothing is copied or parsed twice. */
    if (evrt_open(&f, argv[1], err, sizeof err) != EVRT_OK) {
        fprintf(stderr, "error: %s: %s\n", argv[1], err);
        return 1;
    }
    m = evrt_file_model(f);

    /* One context for batches of 1 image: it allocates all working memory
     * and packs the weights now, so evrt_infer allocates nothing.  The
     * _file variant hands the mapped weights back to the kernel once they
     * are packed, so they are resident once.  The thread pool starts here,
     * outside inference; logits are the same for any thread count. */
    if (evrt_ctx_create_file(&ctx, f, 1) != EVRT_OK ||
        evrt_ctx_set_threads(ctx, argc > 2 ? atoi(argv[2]) : 1) != EVRT_OK) {
        fprintf(stderr, "error: %s: %s\n", argv[1], ctx ? evrt_ctx_error(ctx) : "out of memory");
        goto out;
    }

    bytes = (size_t)m->img_size * (size_t)m->img_size * (size_t)m->channels;
    frame = malloc(bytes);
    logits = malloc((size_t)m->classes * sizeof *logits);
    if (!frame || !logits) {
        fprintf(stderr, "error: %s: out of memory\n", argv[1]);
        goto out;
    }

    /* fread blocks until a whole frame has arrived (or the input ends), so
     * a frame is never split between two inferences. */
    for (n = 0; (got = fread(frame, 1, bytes, stdin)) == bytes; n++) {
        const char *name;
        int k, best = 0;
        if (evrt_infer(ctx, frame, 1, logits) != EVRT_OK) {
            fprintf(stderr, "error: %s: %s\n", argv[1], evrt_ctx_error(ctx));
            goto out;
        }
        for (k = 1; k < m->classes; k++) /* top-1: the first of equal logits */
            if (logits[k] > logits[best]) best = k;
        name = evrt_file_class_name(f, best); /* NULL when the file has none */
        printf("frame %lu class %d%s%s\n", n, best, name ? " " : "", name ? name : "");
        /* A live consumer needs each line now, not when a pipe's buffer
         * fills: stdout is fully buffered when it is not a terminal. */
        fflush(stdout);
    }
    if (ferror(stdin)) {
        fprintf(stderr, "error: -: read error\n");
        goto out;
    }
    if (got != 0) {
        fprintf(stderr, "error: -: truncated frame %lu: got %lu of %lu bytes\n", n, (unsigned long)got,
                (unsigned long)bytes);
        goto out;
    }
    rc = 0;
out:
    free(frame);
    free(logits);
    evrt_ctx_destroy(ctx); /* before the file: the context reads its mapping */
    evrt_close(f);
    return rc;
}
