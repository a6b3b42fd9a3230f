/* The CPU kernel of `fused` and `fused-shared`: seed sampling with exact drop counts, and the
 * apply pass of DropBlock on a contiguous (N, C, H, W) tensor, with no full-size mask and no
 * temporaries.
 *
 * Built on first use by fused_cpu.py (plain C11, no Python or torch headers) and called
 * through ctypes. The math arrives as arguments computed by dropblock_bench.spec: gamma, the
 * seed region (rows x cols positions; a seed at position i paints the k x k block with corner
 * (top0 + i / cols, left0 + i % cols)) and the scale. Nothing here re-derives it.
 *
 * Randomness. Masks (one per map, or one per sample when channels share it) are sampled in
 * groups of consecutive masks (1,024 to 8,192 seed positions a group, see make_sampler); each
 * group owns one SplitMix64 stream started from a hash of the group index and a 64-bit seed
 * the caller draws from its torch.Generator. Grouping depends on the geometry and the number
 * of masks only, so results do not depend on the thread count.
 *
 * Seeds are iid Bernoulli(gamma) over a group's positions, drawn exactly: the gaps between
 * successive seeds of such a sequence are iid Geometric(gamma), one log per seed.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

enum { DBF_FLOAT32 = 0, DBF_FLOAT64 = 1, DBF_FLOAT16 = 2, DBF_BFLOAT16 = 3 };

/* One stream per sampling group: SplitMix64 (Steele, Lea and Flood, 2014) started at a point of
 * its 2^64-long Weyl sequence hashed from the caller's seed and the group index. A group draws
 * at most a few thousand numbers, so two groups' stretches overlap with odds below 1e-8. */
typedef struct {
    uint64_t state;
} dbf_rng;

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void rng_init(dbf_rng *r, uint64_t seed, uint64_t stream) {
    r->state = mix64(seed ^ mix64(stream * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull));
}

/* A uniform double in the open interval (0, 1), 53 random bits. */
static inline double rng_uniform(dbf_rng *r) {
    const uint64_t bits = mix64(r->state += 0x9E3779B97F4A7C15ull);
    return ((double)(bits >> 11) + 0.5) * 0x1p-53;
}

/* Seed positions per sampling group: the whole job over about DBF_GROUPS groups, within
 * [DBF_GROUP_MIN, DBF_GROUP_MAX] positions (at least one mask per group). Depends on the
 * geometry and the number of masks only, never on the thread count. */
#define DBF_GROUPS 256
#define DBF_GROUP_MIN 1024
#define DBF_GROUP_MAX 8192

typedef struct {
    uint64_t seed;
    int64_t masks;          /* how many masks (maps, or samples for a shared mask) */
    int64_t per_mask;       /* seed positions per mask: rows * cols */
    int64_t group;          /* masks per sampling group */
    double gamma;
    double per_log_miss;    /* 1 / log(1 - gamma) */
} dbf_sampler;

static dbf_sampler make_sampler(uint64_t seed, int64_t masks, int64_t per_mask, double gamma) {
    dbf_sampler s = {seed, masks, per_mask, 1, gamma, 1.0 / log1p(-gamma)};
    int64_t positions = masks * per_mask / DBF_GROUPS;
    positions = positions < DBF_GROUP_MIN ? DBF_GROUP_MIN : positions > DBF_GROUP_MAX ? DBF_GROUP_MAX : positions;
    if (per_mask > 0 && per_mask < positions) s.group = positions / per_mask;
    return s;
}

static int64_t group_count(const dbf_sampler *s) { return (s->masks + s->group - 1) / s->group; }

/* The seeds of one group, in ascending order: iid Bernoulli(gamma) over the group's
 * positions, drawn as geometric gaps (one log per seed). */
typedef struct {
    dbf_rng rng;
    double gamma, per_log_miss;
    double at, total;    /* latest seed, and positions, within the group */
    int64_t first;       /* the group's first position in the flat index */
} seed_walk;

static void walk_start(seed_walk *w, const dbf_sampler *s, int64_t g) {
    const int64_t first_mask = g * s->group, left = s->masks - first_mask;
    w->gamma = s->gamma;
    w->per_log_miss = s->per_log_miss;
    w->first = first_mask * s->per_mask;
    w->at = -1.0;
    w->total = s->gamma > 0.0 ? (double)((left < s->group ? left : s->group) * s->per_mask) : 0.0;
    rng_init(&w->rng, s->seed, (uint64_t)g);
}

/* Writes the group's next seeds as flat indices (mask * per_mask + position in the mask's
 * seed region), at most `room` of them; returns how many. Fewer than `room` means the group
 * is done. The loop has no data-dependent branch but its exit, so the logs of successive
 * draws overlap in the pipeline. */
static int64_t walk_fill(seed_walk *w, int64_t *out, int64_t room) {
    int64_t n = 0;
    double at = w->at;
    if (w->gamma >= 1.0) {
        while (n < room && at + 1.0 < w->total) out[n++] = w->first + (int64_t)(at += 1.0);
    } else {
        /* P(gap > j) = (1 - gamma)^j for the gap floor(log(U) / log(1 - gamma)) + 1. */
        while (n < room) {
            const double next = at + floor(log(rng_uniform(&w->rng)) * w->per_log_miss) + 1.0;
            if (next >= w->total) {
                at = w->total;
                break;
            }
            at = next;
            out[n++] = w->first + (int64_t)at; /* an integer below 2^53: exact */
        }
    }
    w->at = at;
    return n;
}

typedef struct {
    int64_t height, width, k, top0, left0, cols;
} dbf_geometry;

/* Rows [*r0, *r1) and columns [*c0, *c1) of the block with corner at seed position `pos`,
 * clipped to the map. */
static inline void block_bounds(const dbf_geometry *g, int32_t pos, int64_t *r0, int64_t *r1, int64_t *c0,
                                int64_t *c1) {
    const int32_t cols = (int32_t)g->cols; /* positions and cols are below 2^31 */
    const int64_t top = (int64_t)(pos / cols) + g->top0, left = (int64_t)(pos % cols) + g->left0;
    *r0 = top < 0 ? 0 : top;
    *r1 = top + g->k > g->height ? g->height : top + g->k;
    *c0 = left < 0 ? 0 : left;
    *c1 = left + g->k > g->width ? g->width : left + g->k;
}

static inline void set_bits(uint64_t *row, int64_t c0, int64_t c1) {
    while (c0 < c1) {
        const int64_t offset = c0 & 63, run = c1 - c0 < 64 - offset ? c1 - c0 : 64 - offset;
        row[c0 >> 6] |= (run == 64 ? ~(uint64_t)0 : (((uint64_t)1 << run) - 1)) << offset;
        c0 += run;
    }
}

/* Units of one map covered by the union of its blocks (seed positions `pos`). `bits` is a
 * zeroed bitset of H rows of `words` 64-bit words, and is left zeroed. */
static int64_t covered_units(const dbf_geometry *g, const int32_t *pos, int64_t n, uint64_t *bits, int64_t words) {
    int64_t r0, r1, c0, c1, covered = 0;
    if (n == 0) return 0;
    if (n <= 2) { /* one block, or two: |A u B| = |A| + |B| - |A n B| */
        block_bounds(g, pos[0], &r0, &r1, &c0, &c1);
        covered = (r1 - r0) * (c1 - c0);
        if (n == 2) {
            int64_t s0, s1, d0, d1;
            block_bounds(g, pos[1], &s0, &s1, &d0, &d1);
            const int64_t rows = (r1 < s1 ? r1 : s1) - (r0 > s0 ? r0 : s0);
            const int64_t cols = (c1 < d1 ? c1 : d1) - (c0 > d0 ? c0 : d0);
            covered += (s1 - s0) * (d1 - d0) - (rows > 0 && cols > 0 ? rows * cols : 0);
        }
        return covered;
    }
    int64_t lowest = g->height, highest = 0;
    for (int64_t i = 0; i < n; ++i) {
        block_bounds(g, pos[i], &r0, &r1, &c0, &c1);
        lowest = r0 < lowest ? r0 : lowest;
        highest = r1 > highest ? r1 : highest;
        if (words == 1) { /* the common case: a row fits one word */
            const uint64_t run = c1 - c0 == 64 ? ~(uint64_t)0 : (((uint64_t)1 << (c1 - c0)) - 1) << c0;
            for (int64_t row = r0; row < r1; ++row) bits[row] |= run;
        } else {
            for (int64_t row = r0; row < r1; ++row) set_bits(bits + row * words, c0, c1);
        }
    }
    for (int64_t i = lowest * words; i < highest * words; ++i) {
        covered += __builtin_popcountll(bits[i]);
        bits[i] = 0;
    }
    return covered;
}

static inline int thread_index(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static inline int team_size(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

#define DBF_MAX_THREADS 256

/* Everything the kernel needs to know about the geometry, from dropblock_bench.spec: H x W
 * maps, a k x k block per seed, seeds on a rows x cols region whose position i paints the
 * block with corner (top0 + i / cols, left0 + i % cols), each with probability gamma. */
typedef struct {
    int64_t height, width, k, top0, rows, left0, cols;
    double gamma;
} dbf_args;

typedef struct {
    dbf_sampler s;
    dbf_geometry geo;
    int64_t groups, words;
} sample_job;

typedef struct {
    int64_t *seeds, n, covered;
    int failed;
} sample_part;

/* The seeds of groups [groups * me / team, groups * (me + 1) / team), and what they cover. */
static void sample_share(const sample_job *job, int me, int team, sample_part *part) {
    const dbf_sampler *s = &job->s;
    const int64_t first = job->groups * me / team, last = job->groups * (me + 1) / team;
    const int64_t mask_lo = first * s->group, mask_hi = last * s->group < s->masks ? last * s->group : s->masks;
    const double expected = (double)((mask_hi - mask_lo) * s->per_mask) * (s->gamma < 1.0 ? s->gamma : 1.0);
    int64_t room = (int64_t)(expected + 8.0 * sqrt(expected) + 64.0), n = 0, covered = 0;
    int64_t *mine = malloc(sizeof(int64_t) * (size_t)room);
    int32_t *in_mask = malloc(sizeof(int32_t) * (size_t)(s->per_mask > 0 ? s->per_mask : 1));
    uint64_t *bits = calloc((size_t)(job->geo.height * job->words), sizeof(uint64_t));
    int failed = !mine || !in_mask || !bits;
    int64_t mask_end = -1, held = 0; /* the current mask ends at flat index mask_end; held seeds in it */
    for (int64_t g = first; g < last && !failed; ++g) {
        seed_walk w;
        walk_start(&w, s, g);
        for (;;) {
            if (n == room) {
                int64_t *grown = realloc(mine, sizeof(int64_t) * (size_t)(2 * room));
                if (!grown) {
                    failed = 1;
                    break;
                }
                mine = grown, room *= 2;
            }
            const int64_t start = n;
            n += walk_fill(&w, mine + n, room - n);
            /* Count each mask's blocks once all its seeds are in. */
            for (int64_t i = start; i < n; ++i) {
                if (mine[i] >= mask_end) {
                    covered += covered_units(&job->geo, in_mask, held, bits, job->words);
                    held = 0;
                    mask_end = (mine[i] / s->per_mask + 1) * s->per_mask;
                }
                in_mask[held++] = (int32_t)(mine[i] - (mask_end - s->per_mask));
            }
            if (n < room) break; /* the group is done */
        }
    }
    if (!failed) covered += covered_units(&job->geo, in_mask, held, bits, job->words);
    free(in_mask);
    free(bits);
    *part = (sample_part){mine, n, covered, failed};
}

/* Samples the seeds of `masks` masks and counts the units they drop. Seeds are flat indices
 * mask * rows * cols + position (row-major in the mask's seed region), ascending; they are
 * written when they fit in `capacity`. *dropped receives the exact number of units covered,
 * summed over masks (each mask's blocks counted as a union). Returns the number of seeds;
 * when that exceeds `capacity`, call again with at least that much room (the same arguments
 * give the same seeds). -1 when scratch memory cannot be had. */
int64_t dbf_sample(uint64_t seed, int64_t masks, const dbf_args *a, int64_t *seeds, int64_t capacity,
                   int64_t *dropped, int n_threads) {
    sample_job job = {make_sampler(seed, masks, a->rows * a->cols, a->gamma),
                      {a->height, a->width, a->k, a->top0, a->left0, a->cols}, 0, (a->width + 63) / 64};
    job.groups = group_count(&job.s);
    sample_part parts[DBF_MAX_THREADS];
    int team = job.groups > 1 && n_threads > 1 ? n_threads : 1;
    team = team > DBF_MAX_THREADS ? DBF_MAX_THREADS : team;
    if (team == 1) {
        sample_share(&job, 0, 1, &parts[0]);
    } else {
        /* Each thread takes a contiguous run of groups, so concatenating the threads' seeds
         * in thread order keeps them ascending. */
#pragma omp parallel num_threads(team)
        {
#pragma omp single
            team = team_size();
            sample_share(&job, thread_index(), team, &parts[thread_index()]);
        }
    }
    int64_t total = 0, covered = 0;
    int failed = 0;
    for (int t = 0; t < team; ++t) {
        if (!parts[t].failed && total + parts[t].n <= capacity)
            memcpy(seeds + total, parts[t].seeds, sizeof(int64_t) * (size_t)parts[t].n);
        total += parts[t].n, covered += parts[t].covered, failed |= parts[t].failed;
        free(parts[t].seeds);
    }
    *dropped = covered;
    return failed ? -1 : total;
}

/* ------------------------------------------------------------------ element loops */

static inline float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t float_to_bf16(float f) { /* round to nearest even, as c10::BFloat16 */
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if (f != f) return 0x7FC0;
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

/* Products are computed in float (double for double) and rounded once, as torch does for
 * reduced precision. A scalar head brings `dst` to a 32-byte boundary (unaligned vector
 * stores cost a quarter more here); `src` and `dst` are the same buffer or disjoint, and the
 * two loop versions let the compiler vectorise each without an overlap check.
 *
 * scale_T(src, dst, n, s):        dst[i] = src[i] * s
 * keep_T(src, dst, n, s, keep):   dst[i] = src[i] * s with its bits ANDed with keep[i], an
 *                                 all-ones or all-zero word of the element's size: a dropped
 *                                 unit is an exact +0 even where src is inf or NaN. */
#define ELEMENT_LOOPS(T, U, W, LOAD, STORE)                                                         \
    static void scale_##T(const void *src, void *dst, int64_t n, float s) {                         \
        const W ws = (W)s;                                                                          \
        const T *a = (const T *)src;                                                                \
        T *b = (T *)dst;                                                                            \
        int64_t i = 0;                                                                              \
        for (; i < n && ((uintptr_t)(b + i) & 31) != 0; ++i) b[i] = STORE(LOAD(a[i]) * ws);        \
        if (a == b) {                                                                               \
            T *c = __builtin_assume_aligned(b + i, 32);                                             \
            for (int64_t j = 0; j < n - i; ++j) c[j] = STORE(LOAD(c[j]) * ws);                      \
        } else {                                                                                    \
            const T *restrict x = a + i;                                                            \
            T *restrict y = __builtin_assume_aligned(b + i, 32);                                    \
            for (int64_t j = 0; j < n - i; ++j) y[j] = STORE(LOAD(x[j]) * ws);                      \
        }                                                                                           \
    }                                                                                               \
    static inline void keep_one_##T(const T *from, T *to, W ws, U mask) {                           \
        T v = STORE(LOAD(*from) * ws);                                                              \
        U u;                                                                                        \
        memcpy(&u, &v, sizeof u);                                                                   \
        u &= mask;                                                                                  \
        memcpy(to, &u, sizeof u);                                                                   \
    }                                                                                               \
    static void keep_##T(const void *src, void *dst, int64_t n, float s, const void *keep_bits) {   \
        const W ws = (W)s;                                                                          \
        const U *restrict keep = (const U *)keep_bits;                                              \
        const T *a = (const T *)src;                                                                \
        T *b = (T *)dst;                                                                            \
        int64_t i = 0;                                                                              \
        for (; i < n && ((uintptr_t)(b + i) & 31) != 0; ++i) keep_one_##T(a + i, b + i, ws, keep[i]); \
        if (a == b) {                                                                               \
            T *c = __builtin_assume_aligned(b + i, 32);                                             \
            for (int64_t j = 0; j < n - i; ++j) keep_one_##T(c + j, c + j, ws, keep[i + j]);        \
        } else {                                                                                    \
            const T *restrict x = a + i;                                                            \
            T *restrict y = __builtin_assume_aligned(b + i, 32);                                    \
            for (int64_t j = 0; j < n - i; ++j) keep_one_##T(x + j, y + j, ws, keep[i + j]);        \
        }                                                                                           \
    }

#define IDENTITY(v) (v)
typedef double f64;
typedef uint16_t bf16;
ELEMENT_LOOPS(float, uint32_t, float, IDENTITY, IDENTITY)
ELEMENT_LOOPS(f64, uint64_t, double, IDENTITY, IDENTITY)

/* Half-width types, 8 at a time with AVX2 (bfloat16) or F16C (float16): a lane-wise version
 * of the scalar conversions, scalar for the tail. */
#define HALF_WIDTH_LOOPS(NAME, LOAD8, STORE8, LOAD1, STORE1)                                        \
    static void scale_##NAME(const void *src, void *dst, int64_t n, float s) {                      \
        const uint16_t *a = (const uint16_t *)src;                                                  \
        uint16_t *b = (uint16_t *)dst;                                                              \
        const __m256 ws = _mm256_set1_ps(s);                                                        \
        int64_t i = 0;                                                                              \
        for (; i + 8 <= n; i += 8) {                                                                \
            __m256 v = _mm256_mul_ps(LOAD8(_mm_loadu_si128((const __m128i *)(a + i))), ws);         \
            _mm_storeu_si128((__m128i *)(b + i), STORE8(v));                                        \
        }                                                                                           \
        for (; i < n; ++i) b[i] = STORE1(LOAD1(a[i]) * s);                                          \
    }                                                                                               \
    static void keep_##NAME(const void *src, void *dst, int64_t n, float s, const void *keep_bits) { \
        const uint16_t *a = (const uint16_t *)src, *keep = (const uint16_t *)keep_bits;             \
        uint16_t *b = (uint16_t *)dst;                                                              \
        const __m256 ws = _mm256_set1_ps(s);                                                        \
        int64_t i = 0;                                                                              \
        for (; i + 8 <= n; i += 8) {                                                                \
            __m256 v = _mm256_mul_ps(LOAD8(_mm_loadu_si128((const __m128i *)(a + i))), ws);         \
            __m128i h = STORE8(v);                                                                  \
            _mm_storeu_si128((__m128i *)(b + i), _mm_and_si128(h, _mm_loadu_si128((const __m128i *)(keep + i)))); \
        }                                                                                           \
        for (; i < n; ++i) b[i] = STORE1(LOAD1(a[i]) * s) & keep[i];                                \
    }

#if defined(__AVX2__)
#include <immintrin.h>
static inline __m256 bf16x8_to_ps(__m128i h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
static inline __m128i ps_to_bf16x8(__m256 f) { /* float_to_bf16, lane-wise */
    const __m256i bits = _mm256_castps_si256(f);
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7FFF))), 16);
    const __m256 nan = _mm256_cmp_ps(f, f, _CMP_UNORD_Q);
    rounded = _mm256_blendv_epi8(rounded, _mm256_set1_epi32(0x7FC0), _mm256_castps_si256(nan));
    return _mm_packus_epi32(_mm256_castsi256_si128(rounded), _mm256_extracti128_si256(rounded, 1));
}
HALF_WIDTH_LOOPS(bf16, bf16x8_to_ps, ps_to_bf16x8, bf16_to_float, float_to_bf16)
#else
ELEMENT_LOOPS(bf16, uint16_t, float, bf16_to_float, float_to_bf16)
#endif

/* float16 as uint16 bits; F16C converts 8 at a time where the CPU has it. */
#if defined(__F16C__)
#include <immintrin.h>
#define DBF_HAS_FLOAT16 1
typedef uint16_t f16;
static inline float f16_to_float(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t float_to_f16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
static inline __m128i ps_to_f16x8(__m256 v) { return _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT); }
HALF_WIDTH_LOOPS(f16, _mm256_cvtph_ps, ps_to_f16x8, f16_to_float, float_to_f16)
#elif defined(__FLT16_MAX__)
#define DBF_HAS_FLOAT16 1
typedef _Float16 f16;
#define TO_FLOAT(v) ((float)(v))
#define TO_F16(v) ((_Float16)(v))
ELEMENT_LOOPS(f16, uint16_t, float, TO_FLOAT, TO_F16)
#else
#define DBF_HAS_FLOAT16 0
#endif

typedef struct {
    size_t item;
    void (*scale)(const void *, void *, int64_t, float);
    void (*keep)(const void *, void *, int64_t, float, const void *);
} element_loops;

/* 1 when this build handles `dtype`. */
int dbf_supports(int dtype) {
    return dtype == DBF_FLOAT32 || dtype == DBF_FLOAT64 || dtype == DBF_BFLOAT16 ||
           (dtype == DBF_FLOAT16 && DBF_HAS_FLOAT16);
}

static int loops_for(int dtype, element_loops *loops) {
    switch (dtype) {
    case DBF_FLOAT32: *loops = (element_loops){4, scale_float, keep_float}; return 1;
    case DBF_FLOAT64: *loops = (element_loops){8, scale_f64, keep_f64}; return 1;
    case DBF_BFLOAT16: *loops = (element_loops){2, scale_bf16, keep_bf16}; return 1;
#if DBF_HAS_FLOAT16
    case DBF_FLOAT16: *loops = (element_loops){2, scale_f16, keep_f16}; return 1;
#endif
    default: return 0;
    }
}

/* Zeros n bytes: short runs (a block's row) as two overlapping fixed-size stores instead of
 * a call to memset. */
static inline void zero_bytes(char *p, size_t n) {
    static const char zeros[16] = {0};
    if (n > 32) {
        memset(p, 0, n);
    } else if (n >= 16) {
        memcpy(p, zeros, 16), memcpy(p + n - 16, zeros, 16);
    } else if (n >= 8) {
        memcpy(p, zeros, 8), memcpy(p + n - 8, zeros, 8);
    } else if (n >= 4) {
        memcpy(p, zeros, 4), memcpy(p + n - 4, zeros, 4);
    } else if (n >= 2) {
        memcpy(p, zeros, 2), memcpy(p + n - 2, zeros, 2);
    } else if (n == 1) {
        *p = 0;
    }
}

/* Writes zeros over one block of a map (+0.0 is all zero bits in every supported dtype);
 * rows spanning the whole width are one run. */
static inline void zero_block(char *map, const dbf_geometry *g, int32_t position, size_t item) {
    int64_t r0, r1, c0, c1;
    block_bounds(g, position, &r0, &r1, &c0, &c1);
    if (c0 == 0 && c1 == g->width) {
        memset(map + (size_t)(r0 * g->width) * item, 0, (size_t)((r1 - r0) * g->width) * item);
        return;
    }
    for (int64_t row = r0; row < r1; ++row) zero_bytes(map + (size_t)(row * g->width + c0) * item, (size_t)(c1 - c0) * item);
}

/* Maps are processed in spans of about this many bytes: a map's blocks are zeroed while it is
 * still in cache. */
#define DBF_SPAN_BYTES 131072

/* The first index i in seeds[lo, hi) with seeds[i] >= value (seeds ascending). */
static int64_t lower_bound(const int64_t *seeds, int64_t lo, int64_t hi, int64_t value) {
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (seeds[mid] < value)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Keep bits are built for as many copies of a map as fit in this many bytes, so one call
 * covers several small maps. */
#define DBF_KEEP_BYTES 8192

typedef struct {
    element_loops loops;
    dbf_geometry g;
    const void *x;
    void *out;
    const int64_t *seeds;
    int64_t n_seeds, per_mask, maps, maps_per_mask, area, span;
    size_t map_bytes;
    float scale;
} apply_job;

/* Builds the keep bits of one mask from its `count` seeds; returns 1 when the mask drops the
 * whole map. */
static int build_keep(const apply_job *job, const int64_t *seeds, int64_t count, int64_t mask_start, unsigned char *keep) {
    memset(keep, 0xFF, job->map_bytes);
    for (int64_t t = 0; t < count; ++t) zero_block((char *)keep, &job->g, (int32_t)(seeds[t] - mask_start), job->loops.item);
    unsigned char any = 0;
    for (size_t b = 0; b < job->map_bytes; ++b) any |= keep[b];
    return any == 0;
}

/* Spans [lo, hi) of apply_job: maps [lo * span, min(hi * span, maps)). */
static int apply_spans(const apply_job *job, int64_t lo, int64_t hi) {
    const element_loops *loops = &job->loops;
    const size_t item = loops->item, map_bytes = job->map_bytes;
    const int64_t per_mask = job->per_mask, mpm = job->maps_per_mask, area = job->area;
    unsigned char *keep = NULL;
    int64_t built = -1;
    int dropped_whole = 0;
    /* Keep bits for `copies` maps at once: one call covers several small maps. */
    int64_t copies = (int64_t)(DBF_KEEP_BYTES / map_bytes);
    copies = copies < 1 ? 1 : copies > mpm ? mpm : copies;
    if (mpm > 1) {
        keep = malloc(map_bytes * (size_t)copies);
        if (!keep) return -1;
    }
    for (int64_t chunk = lo; chunk < hi; ++chunk) {
        const int64_t first = chunk * job->span, last = first + job->span < job->maps ? first + job->span : job->maps;
        const int64_t first_mask = first / mpm, last_mask = (last - 1) / mpm;
        int64_t i = lower_bound(job->seeds, 0, job->n_seeds, first_mask * per_mask);
        const int64_t stop = lower_bound(job->seeds, i, job->n_seeds, (last_mask + 1) * per_mask);
        const char *src = (const char *)job->x + (size_t)first * map_bytes;
        char *dst = (char *)job->out + (size_t)first * map_bytes;
        if (mpm == 1) {
            /* One mask per map: scale the span, then zero its maps' blocks in cache. */
            loops->scale(src, dst, (last - first) * area, job->scale);
            for (; i < stop; ++i) {
                const int64_t map = job->seeds[i] / per_mask;
                zero_block(dst + (size_t)(map - first) * map_bytes, &job->g, (int32_t)(job->seeds[i] - map * per_mask), item);
            }
            continue;
        }
        /* Shared masks: runs of maps whose masks hold no seed are scaled in one go; the maps of
         * a seeded mask go through its keep bits, or are zeroed when it drops them whole. */
        int64_t m = first;
        while (m < last) {
            const int64_t next_seeded = i < stop ? job->seeds[i] / per_mask : last_mask + 1;
            const int64_t run_end = next_seeded * mpm < last ? next_seeded * mpm : last;
            if (run_end > m) {
                loops->scale(src + (size_t)(m - first) * map_bytes, dst + (size_t)(m - first) * map_bytes,
                             (run_end - m) * area, job->scale);
                m = run_end;
                continue;
            }
            const int64_t mask = next_seeded, mask_start = mask * per_mask;
            int64_t j = i;
            while (j < stop && job->seeds[j] < mask_start + per_mask) ++j;
            if (built != mask) {
                dropped_whole = build_keep(job, job->seeds + i, j - i, mask_start, keep);
                for (int64_t copy = 1; copy < copies; ++copy) memcpy(keep + (size_t)copy * map_bytes, keep, map_bytes);
                built = mask;
            }
            const int64_t end = (mask + 1) * mpm < last ? (mask + 1) * mpm : last;
            if (dropped_whole) { /* nothing kept: zeros, x unread */
                memset(dst + (size_t)(m - first) * map_bytes, 0, (size_t)(end - m) * map_bytes);
                m = end;
            }
            while (m < end) { /* one call per `copies` maps */
                const int64_t count = end - m < copies ? end - m : copies;
                loops->keep(src + (size_t)(m - first) * map_bytes, dst + (size_t)(m - first) * map_bytes, count * area,
                            job->scale, keep);
                m += count;
            }
            i = j;
        }
    }
    free(keep);
    return 0;
}

/* out = x * scale with every block zeroed, for `maps` contiguous H x W maps; map m takes the
 * blocks of mask m / maps_per_mask (1, or C for a mask shared by a sample's channels).
 * `seeds` are the n_seeds flat seeds from dbf_sample with the same geometry. `out` may be `x`
 * (in place). Dropped units are exact zeros, whatever x holds there and however large the
 * scale. Returns 0, or -1 for an unsupported dtype or no scratch memory. */
int dbf_apply(int dtype, const void *x, void *out, int64_t maps, int64_t maps_per_mask, const int64_t *seeds,
              int64_t n_seeds, const dbf_args *a, float scale, int n_threads) {
    apply_job job = {.g = {a->height, a->width, a->k, a->top0, a->left0, a->cols}, .x = x, .out = out,
                     .seeds = seeds, .n_seeds = n_seeds, .per_mask = a->rows * a->cols, .maps = maps,
                     .maps_per_mask = maps_per_mask, .area = a->height * a->width, .scale = scale};
    if (!loops_for(dtype, &job.loops) || maps_per_mask < 1 || job.area < 1 || job.per_mask < 1) return -1;
    job.map_bytes = (size_t)job.area * job.loops.item;
    /* Spans hold a multiple of `step` maps, so they start on 64-byte boundaries when x and
     * out do. */
    int64_t step = 64, common = (int64_t)job.map_bytes;
    while (common % 2 == 0 && step > 1) common /= 2, step /= 2;
    job.span = (int64_t)(DBF_SPAN_BYTES / job.map_bytes) / step * step;
    job.span = job.span < step ? step : job.span;
    const int64_t spans = (maps + job.span - 1) / job.span;
    const int team = maps * job.area > 16384 && n_threads > 1 ? n_threads : 1;
    if (team == 1) return apply_spans(&job, 0, spans);
    int failed = 0;
#pragma omp parallel num_threads(team) reduction(| : failed)
    {
        const int me = thread_index(), size = team_size();
        failed |= apply_spans(&job, spans * me / size, spans * (me + 1) / size) != 0;
    }
    return failed ? -1 : 0;
}
