/* kernels.c: the plain reference kernels of libevrt (see evrt.h for the
 * integer path's specification, kernels.h for the float ones). */
#include "kernels.h"

#include <math.h>
#include <string.h>

/* Eight partial sums, lane i mod 8, so that the compiler can keep them in
 * vector registers without reassociating anything itself. */
static float dot_f32(const float *a, const float *b, int n)
{
    float s[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    int i = 0, k;
    for (; i + 8 <= n; i += 8)
        for (k = 0; k < 8; k++) s[k] += a[i + k] * b[i + k];
    for (k = 0; i < n; i++, k++) s[k] += a[i] * b[i];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

void evrt_linear_f32_ref(float *y, const float *x, const float *w, const float *b, int N, int I,
                         int O)
{
    int n, o;
    for (n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * I;
        float *yr = y + (size_t)n * O;
        for (o = 0; o < O; o++) yr[o] = dot_f32(xr, w + (size_t)o * I, I) + (b ? b[o] : 0.0f);
    }
}

void evrt_quantize_act_ref(int8_t *xq, const float *x, size_t n, float scale, int32_t zero)
{
    float inv = 1.0f / scale;
    float lo = (float)(-128 - zero), hi = (float)(127 - zero);
    size_t i;
    for (i = 0; i < n; i++) {
        float t = x[i] * inv;
        if (t != t) t = 0.0f; /* NaN */
        t = t < lo ? lo : t > hi ? hi : t;
        /* lo and hi are integers, so clamping before rounding is the same
         * as after; rintf rounds ties to even in the default mode */
        xq[i] = (int8_t)((int32_t)rintf(t) + zero);
    }
}

/* Exact integer dot product; sixteen lanes for the vectoriser, and integer
 * addition is associative, so any order gives the same acc. */
static int32_t dot_i8(const int8_t *x, const int8_t *w, int32_t zx, int n)
{
    int32_t s[16];
    int i = 0, k;
    for (k = 0; k < 16; k++) s[k] = 0;
    for (; i + 16 <= n; i += 16)
        for (k = 0; k < 16; k++) s[k] += ((int32_t)x[i + k] - zx) * (int32_t)w[i + k];
    for (k = 0; i < n; i++, k++) s[k] += ((int32_t)x[i] - zx) * (int32_t)w[i];
    for (k = 1; k < 16; k++) s[0] += s[k];
    return s[0];
}

void evrt_linear_i8_ref(float *y, const int8_t *xq, int32_t x_zero, float x_scale,
                        const int8_t *wq, const float *w_scale, const float *b, int N, int I,
                        int O)
{
    int n, o;
    for (n = 0; n < N; n++) {
        const int8_t *xr = xq + (size_t)n * I;
        float *yr = y + (size_t)n * O;
        for (o = 0; o < O; o++) {
            int32_t acc = dot_i8(xr, wq + (size_t)o * I, x_zero, I);
            float m = x_scale * w_scale[o];
            float v = (float)acc * m;
            yr[o] = v + (b ? b[o] : 0.0f);
        }
    }
}

void evrt_quantize_weights_ref(int8_t *wq, float *scale, const float *w, int O, int I)
{
    int o, i;
    for (o = 0; o < O; o++) {
        const float *r = w + (size_t)o * I;
        int8_t *q = wq + (size_t)o * I;
        float amax = 0.0f;
        for (i = 0; i < I; i++) amax = fabsf(r[i]) > amax ? fabsf(r[i]) : amax;
        if (!(amax > 0.0f)) { /* all zero (or NaN): nothing to scale */
            scale[o] = 1.0f;
            memset(q, 0, (size_t)I);
            continue;
        }
        scale[o] = amax / 127.0f;
        for (i = 0; i < I; i++) {
            float t = rintf(r[i] / scale[o]);
            q[i] = (int8_t)(t < -127.0f ? -127 : t > 127.0f ? 127 : (int)t);
        }
    }
}

void evrt_patchify_ref(float *out, const uint8_t *img, const float *mean, const float *std, int B,
                       int H, int C, int P)
{
    int G = H / P, K = C * P * P, b, g, py, px, c;
    for (b = 0; b < B; b++) {
        const uint8_t *src = img + (size_t)b * H * H * C;
        for (g = 0; g < G * G; g++) {
            int gy = g / G, gx = g % G;
            float *row = out + ((size_t)b * G * G + g) * K;
            for (py = 0; py < P; py++)
                for (px = 0; px < P; px++) {
                    const uint8_t *pix = src + ((size_t)(gy * P + py) * H + gx * P + px) * C;
                    for (c = 0; c < C; c++)
                        row[c * P * P + py * P + px] = ((float)pix[c] / 255.0f - mean[c]) / std[c];
                }
        }
    }
}

void evrt_layernorm_ref(float *out, const float *x, const float *w, const float *b, int N, int D)
{
    int n, i;
    for (n = 0; n < N; n++) {
        const float *r = x + (size_t)n * D;
        float *y = out + (size_t)n * D;
        float m = 0.0f, v = 0.0f, rstd;
        for (i = 0; i < D; i++) m += r[i];
        m /= (float)D;
        for (i = 0; i < D; i++) v += (r[i] - m) * (r[i] - m);
        v /= (float)D;
        rstd = 1.0f / sqrtf(v + EVRT_LN_EPS);
        for (i = 0; i < D; i++) y[i] = (r[i] - m) * rstd * w[i] + b[i];
    }
}

void evrt_gelu_ref(float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void evrt_attention_ref(float *out, float *scores, const float *qkv, int B, int T, int nq, int H,
                        int d)
{
    int I = H * d, b, h, t, j, i;
    float scale = 1.0f / sqrtf((float)d);
    for (b = 0; b < B; b++) {
        const float *base = qkv + (size_t)b * T * 3 * I;
        for (t = 0; t < nq; t++) {
            for (h = 0; h < H; h++) {
                const float *q = base + (size_t)t * 3 * I + h * d;
                float *o = out + ((size_t)b * nq + t) * I + h * d;
                float mx = -INFINITY, sum = 0.0f;
                for (j = 0; j < T; j++) {
                    const float *k = base + (size_t)j * 3 * I + I + h * d;
                    scores[j] = dot_f32(q, k, d) * scale;
                    mx = scores[j] > mx ? scores[j] : mx;
                }
                for (j = 0; j < T; j++) {
                    scores[j] = expf(scores[j] - mx);
                    sum += scores[j];
                }
                for (i = 0; i < d; i++) o[i] = 0.0f;
                for (j = 0; j < T; j++) {
                    const float *v = base + (size_t)j * 3 * I + 2 * I + h * d;
                    float p = scores[j] / sum;
                    for (i = 0; i < d; i++) o[i] += p * v[i];
                }
            }
        }
    }
}

void evrt_add_ref(float *x, const float *y, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] += y[i];
}
