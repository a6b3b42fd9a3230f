/* The CPU kernel of `fused` and `fused-shared`: seed sampling with exact drop counts, and the
 * apply pass of DropBlock on a contiguous (N, C, H, W) tensor, with no full-size mask and no
 * temporaries.
 *
 * Built on first use by fused_cpu.py (plain C11, no Python or torch headers) and called
 * through ctypes. The math arrives from dropblock_bench.spec: gamma and the seed region (rows x
 * cols positions; a seed at position i paints the k x k block with corner (top0 + i / cols,
 * left0 + i % cols)) as arguments, and the scale as an argument (dbf_apply) or from a callback
 * given the exact count (dbf_drop). Nothing here re-derives it.
 *
 * Randomness. Masks (one per map, or one per sample when channels share it) are sampled in
 * groups of consecutive masks (1,024 to 32,768 seed positions a group, see make_sampler); each
 * group owns one SplitMix64 stream started from a hash of the group index and a 64-bit seed
 * the caller draws from its torch.Generator. Grouping depends on the geometry and the number
 * of masks only, so results do not depend on the thread count.
 *
 * Seeds are iid Bernoulli(gamma) over a group's positions, drawn exactly: the gaps between
 * successive seeds of such a sequence are iid Geometric(gamma), one log per seed, drawn in
 * batches (draw_gaps). With AVX2, where no block is clipped, seeds are sampled and their
 * drops counted lanes wide (wide_groups), else one seed at a time (scalar_groups): the same
 * seeds and counts either way.
 */
#define _DEFAULT_SOURCE /* madvise and MADV_HUGEPAGE under -std=c11 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
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

static inline uint64_t rng_next(dbf_rng *r) { return mix64(r->state += 0x9E3779B97F4A7C15ull); }

/* A uniform double in the open interval (0, 1), 53 random bits. */
static inline double rng_uniform(dbf_rng *r) { return ((double)(rng_next(r) >> 11) + 0.5) * 0x1p-53; }

/* Seed positions per sampling group: the whole job over about DBF_GROUPS groups, within
 * [DBF_GROUP_MIN, DBF_GROUP_MAX] positions (at least one mask per group; a group drops what is
 * left of its last batch of gaps, so larger groups waste fewer draws). Depends on the
 * geometry and the number of masks only, never on the thread count. */
#define DBF_GROUPS 256
#define DBF_GROUP_MIN 1024
#define DBF_GROUP_MAX 32768

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

/* log(u) for u in [2^-54, 1) within 2 units in the last place (checked against libm over 2e7
 * draws), as arithmetic that also runs 4 lanes wide (log_unit4): u = 2^e m with m in
 * [sqrt(1/2), sqrt(2)), log m = 2 atanh(s) = 2 (s + s^3 / 3 + s^5 / 5 + ...) with
 * s = (m - 1) / (m + 1), |s| < 0.172; the terms after s^21 / 21 weigh below 1e-18 of the sum.
 * An error of an ulp moves a gap below only when log(U) / log(1 - gamma) lies within ~1e-12
 * of an integer. */
static inline double log_unit(double u) {
    uint64_t bits;
    memcpy(&bits, &u, sizeof bits);
    int64_t e = (int64_t)(bits >> 52) - 1023; /* u is positive and normal */
    bits = (bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;
    double m;
    memcpy(&m, &bits, sizeof m);
    const int64_t halve = m >= 1.4142135623730951;
    m = halve ? 0.5 * m : m;
    e += halve;
    const double f = m - 1.0, s = f / (2.0 + f), z = s * s; /* f is exact */
    double q = 1.0 / 21.0;
    q = q * z + 1.0 / 19.0, q = q * z + 1.0 / 17.0, q = q * z + 1.0 / 15.0, q = q * z + 1.0 / 13.0;
    q = q * z + 1.0 / 11.0, q = q * z + 1.0 / 9.0, q = q * z + 1.0 / 7.0, q = q * z + 1.0 / 5.0, q = q * z + 1.0 / 3.0;
    const double two_s = 2.0 * s;
    return (double)e * 0.6931471805599453 + (two_s + two_s * (z * q));
}

/* Gaps are drawn this many at a time, so their logs run side by side (4 lanes wide with
 * AVX2, 4 vectors in flight). */
#define DBF_BATCH 16

#if defined(__AVX2__)
#include <immintrin.h>
#if defined(__FMA__)
#define MADD4(a, b, c) _mm256_fmadd_pd(a, b, c)
#else
#define MADD4(a, b, c) _mm256_add_pd(_mm256_mul_pd(a, b), c)
#endif
/* log_unit on 4 lanes (the same series, summed in another order: results may differ from the
 * scalar version's in the last place). */
static inline __m256d log_unit4(__m256d u) {
    const __m256i bits = _mm256_castpd_si256(u);
    const __m256i mantissa = _mm256_and_si256(bits, _mm256_set1_epi64x(0x000FFFFFFFFFFFFFll));
    __m256d m = _mm256_castsi256_pd(_mm256_or_si256(mantissa, _mm256_set1_epi64x(0x3FF0000000000000ll)));
    /* The biased exponent b (below 2^11) as a double: the bits of 2^52 + b, minus 2^52. */
    const __m256i biased = _mm256_or_si256(_mm256_srli_epi64(bits, 52), _mm256_set1_epi64x(0x4330000000000000ll));
    __m256d e = _mm256_sub_pd(_mm256_castsi256_pd(biased), _mm256_set1_pd(0x1p52 + 1023.0));
    const __m256d halve = _mm256_cmp_pd(m, _mm256_set1_pd(1.4142135623730951), _CMP_GE_OQ);
    m = _mm256_blendv_pd(m, _mm256_mul_pd(_mm256_set1_pd(0.5), m), halve);
    e = _mm256_add_pd(e, _mm256_and_pd(halve, _mm256_set1_pd(1.0)));
    const __m256d f = _mm256_sub_pd(m, _mm256_set1_pd(1.0));
    const __m256d s = _mm256_div_pd(f, _mm256_add_pd(_mm256_set1_pd(2.0), f)), z = _mm256_mul_pd(s, s);
    /* q = sum of z^j / (2j + 3), j = 0..9, by Estrin's scheme: short dependency chains. */
    const __m256d z2 = _mm256_mul_pd(z, z), z4 = _mm256_mul_pd(z2, z2), z8 = _mm256_mul_pd(z4, z4);
    const __m256d p0 = MADD4(z, _mm256_set1_pd(1.0 / 5.0), _mm256_set1_pd(1.0 / 3.0));
    const __m256d p1 = MADD4(z, _mm256_set1_pd(1.0 / 9.0), _mm256_set1_pd(1.0 / 7.0));
    const __m256d p2 = MADD4(z, _mm256_set1_pd(1.0 / 13.0), _mm256_set1_pd(1.0 / 11.0));
    const __m256d p3 = MADD4(z, _mm256_set1_pd(1.0 / 17.0), _mm256_set1_pd(1.0 / 15.0));
    const __m256d p4 = MADD4(z, _mm256_set1_pd(1.0 / 21.0), _mm256_set1_pd(1.0 / 19.0));
    const __m256d q = MADD4(z8, p4, MADD4(z4, MADD4(z2, p3, p2), MADD4(z2, p1, p0)));
    const __m256d two_s = _mm256_mul_pd(_mm256_set1_pd(2.0), s);
    const __m256d log_m = _mm256_add_pd(two_s, _mm256_mul_pd(two_s, _mm256_mul_pd(z, q)));
    return _mm256_add_pd(_mm256_mul_pd(e, _mm256_set1_pd(0.6931471805599453)), log_m);
}
#endif

#if defined(__AVX2__)
/* The low 64 bits of a * b, 4 lanes. */
static inline __m256i mul_low64(__m256i a, __m256i b) {
    const __m256i cross =
        _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), b), _mm256_mul_epu32(a, _mm256_srli_epi64(b, 32)));
    return _mm256_add_epi64(_mm256_mul_epu32(a, b), _mm256_slli_epi64(cross, 32));
}

/* rng_uniform on 4 lanes, bit for bit: the next 4 draws of a stream at `state`, from the states
 * state + phi, ..., state + 4 phi (phi the Weyl increment). */
static inline __m256d rng_uniform4(uint64_t state) {
    const uint64_t phi = 0x9E3779B97F4A7C15ull;
    __m256i z = _mm256_set_epi64x((long long)(state + 4 * phi), (long long)(state + 3 * phi), (long long)(state + 2 * phi),
                                  (long long)(state + phi));
    z = mul_low64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), _mm256_set1_epi64x((long long)0xBF58476D1CE4E5B9ull));
    z = mul_low64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), _mm256_set1_epi64x((long long)0x94D049BB133111EBull));
    z = _mm256_srli_epi64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 31)), 11); /* 53 bits */
    /* As a double: its high 21 and low 32 bits through 2^52 + b, then joined exactly. */
    const __m256i magic = _mm256_set1_epi64x(0x4330000000000000ll);
    const __m256d two52 = _mm256_set1_pd(0x1p52);
    const __m256d high = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(z, 32), magic)), two52);
    const __m256d low = _mm256_sub_pd(
        _mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(z, _mm256_set1_epi64x(0xFFFFFFFFll)), magic)), two52);
    const __m256d bits = _mm256_add_pd(_mm256_mul_pd(high, _mm256_set1_pd(0x1p32)), low);
    return _mm256_mul_pd(_mm256_add_pd(bits, _mm256_set1_pd(0.5)), _mm256_set1_pd(0x1p-53));
}
#endif

/* DBF_BATCH iid gaps between Bernoulli(gamma) seeds: floor(log(U) / log(1 - gamma)) + 1 is
 * Geometric(gamma), P(gap > j) = (1 - gamma)^j. */
static void draw_gaps(dbf_rng *r, double per_log_miss, double *gaps) {
#if defined(__AVX2__)
    const __m256d scale = _mm256_set1_pd(per_log_miss), one = _mm256_set1_pd(1.0);
    __m256d u[DBF_BATCH / 4]; /* all drawn first: the logs' long chains then run side by side */
    for (int i = 0; i < DBF_BATCH / 4; ++i, r->state += 4 * 0x9E3779B97F4A7C15ull) u[i] = rng_uniform4(r->state);
    for (int i = 0; i < DBF_BATCH / 4; ++i)
        _mm256_storeu_pd(gaps + 4 * i, _mm256_add_pd(_mm256_floor_pd(_mm256_mul_pd(log_unit4(u[i]), scale)), one));
#else
    for (int i = 0; i < DBF_BATCH; ++i) gaps[i] = floor(log_unit(rng_uniform(r)) * per_log_miss) + 1.0;
#endif
}

/* The seeds of one group, in ascending order: iid Bernoulli(gamma) over the group's
 * positions, drawn as geometric gaps. */
typedef struct {
    dbf_rng rng;
    double gamma, per_log_miss;
    double at, total;    /* latest seed, and positions, within the group */
    int64_t first;       /* the group's first position in the flat index */
    double gaps[DBF_BATCH]; /* the next gaps, from gaps[next] on */
    int next;
} seed_walk;

static void walk_start(seed_walk *w, const dbf_sampler *s, int64_t g) {
    const int64_t first_mask = g * s->group, left = s->masks - first_mask;
    w->gamma = s->gamma;
    w->per_log_miss = s->per_log_miss;
    w->first = first_mask * s->per_mask;
    w->at = -1.0;
    w->total = s->gamma > 0.0 ? (double)((left < s->group ? left : s->group) * s->per_mask) : 0.0;
    rng_init(&w->rng, s->seed, (uint64_t)g);
    w->next = DBF_BATCH;
}

/* Writes the group's next seeds as flat indices (mask * per_mask + position in the mask's
 * seed region), at most `room` of them; returns how many. Fewer than `room` means the group
 * is done. Gaps left over in the batch at the group's end are dropped: each group has its own
 * stream. */
static int64_t walk_fill(seed_walk *w, int64_t *out, int64_t room) {
    int64_t n = 0;
    double at = w->at;
    if (w->gamma >= 1.0) {
        while (n < room && at + 1.0 < w->total) out[n++] = w->first + (int64_t)(at += 1.0);
    } else {
        while (n < room) {
            if (w->next == DBF_BATCH) draw_gaps(&w->rng, w->per_log_miss, w->gaps), w->next = 0;
            const double next = at + w->gaps[w->next++];
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

/* Division by a fixed d > 0 without a divide instruction: n / d = floor(n * m / 2^62) with
 * m = floor(2^62 / d) + 1, exact for 0 <= n with n * d < 2^62, because the error
 * n * (m - 2^62 / d) / 2^62 stays below 1 / d. */
typedef struct {
    uint64_t m;
    int64_t d;
} dbf_divisor;

static dbf_divisor make_divisor(int64_t d) { return (dbf_divisor){((uint64_t)1 << 62) / (uint64_t)d + 1, d}; }

static inline int64_t divide(const dbf_divisor *v, int64_t n) {
#ifdef __SIZEOF_INT128__
    return (int64_t)(((unsigned __int128)(uint64_t)n * v->m) >> 62);
#else
    return n / v->d;
#endif
}

typedef struct {
    int64_t height, width, k, top0, left0, cols;
    dbf_divisor by_cols; /* for position_row */
} dbf_geometry;

static dbf_geometry make_geometry(int64_t height, int64_t width, int64_t k, int64_t top0, int64_t left0, int64_t cols) {
    return (dbf_geometry){height, width, k, top0, left0, cols, make_divisor(cols)};
}

/* pos / cols (positions and cols are below 2^31: exact). */
static inline int64_t position_row(const dbf_geometry *g, int64_t pos) { return divide(&g->by_cols, pos); }

typedef struct {
    int64_t r0, r1, c0, c1; /* rows [r0, r1), columns [c0, c1) */
} box;

/* The block with corner at seed position `pos` (positions and cols are below 2^31), clipped
 * to the map. */
static inline box block_box(const dbf_geometry *g, int64_t pos) {
    const int64_t row = position_row(g, pos), top = row + g->top0, left = pos - row * g->cols + g->left0;
    return (box){top < 0 ? 0 : top, top + g->k > g->height ? g->height : top + g->k, left < 0 ? 0 : left,
                 left + g->k > g->width ? g->width : left + g->k};
}

static inline int64_t box_area(box b) { return b.r1 > b.r0 && b.c1 > b.c0 ? (b.r1 - b.r0) * (b.c1 - b.c0) : 0; }

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
    if (n <= 1) return n == 1 ? box_area(block_box(g, pos[0])) : 0;
    int64_t lowest = g->height, highest = 0, covered = 0;
    for (int64_t i = 0; i < n; ++i) {
        const box b = block_box(g, pos[i]);
        lowest = b.r0 < lowest ? b.r0 : lowest;
        highest = b.r1 > highest ? b.r1 : highest;
        if (words == 1) { /* the common case: a row fits one word */
            const uint64_t run = b.c1 - b.c0 == 64 ? ~(uint64_t)0 : (((uint64_t)1 << (b.c1 - b.c0)) - 1) << b.c0;
            for (int64_t row = b.r0; row < b.r1; ++row) bits[row] |= run;
        } else {
            for (int64_t row = b.r0; row < b.r1; ++row) set_bits(bits + row * words, b.c0, b.c1);
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

/* 1 when every block of the geometry lies inside the map (seeds in the valid region): no
 * block is ever clipped. */
static int blocks_inside(const dbf_args *a) {
    return a->top0 >= 0 && a->left0 >= 0 && a->top0 + a->rows - 1 + a->k <= a->height &&
           a->left0 + a->cols - 1 + a->k <= a->width;
}

typedef struct {
    dbf_sampler s;
    dbf_geometry geo;
    int64_t groups, words, rows;
    int wide; /* sample and count lanes wide (wide_groups) */
    double per_per_mask, per_cols; /* 1 / per_mask and 1 / cols, for wide_walk */
} sample_job;

typedef struct {
    int64_t *seeds, n, covered;
    int64_t mask_lo, mask_hi; /* the masks sampled: [mask_lo, mask_hi) */
    int failed;
} sample_part;

/* Room in a thread's seed list for `more` seeds after n: grows *seeds, doubling *room. 0 when
 * the memory cannot be had. */
static int make_room(int64_t **seeds, int64_t *room, int64_t n, int64_t more) {
    if (n + more <= *room) return 1;
    const int64_t grown_room = 2 * *room > n + more ? 2 * *room : n + more;
    int64_t *grown = realloc(*seeds, sizeof(int64_t) * (size_t)grown_room);
    if (!grown) return 0;
    *seeds = grown, *room = grown_room;
    return 1;
}

/* What a thread needs to count a mask again: the mask's positions and a zeroed bitset. */
typedef struct {
    int32_t *in_mask;
    uint64_t *bits;
} recount_scratch;

/* Groups [first, last) one seed at a time: walk_fill, then each mask's blocks counted by
 * covered_units. Appends the seeds to *seeds (n of them, room for *room); returns the units
 * covered, or -1 when memory cannot be had. */
static int64_t scalar_groups(const sample_job *job, int64_t first, int64_t last, int64_t **seeds, int64_t *n, int64_t *room,
                             recount_scratch *scratch) {
    const dbf_sampler *s = &job->s;
    int64_t covered = 0, mask_end = -1, held = 0; /* the current mask ends at flat index mask_end; held seeds in it */
    for (int64_t g = first; g < last; ++g) {
        seed_walk w;
        walk_start(&w, s, g);
        for (;;) {
            if (!make_room(seeds, room, *n, 1)) return -1;
            const int64_t start = *n;
            *n += walk_fill(&w, *seeds + *n, *room - *n);
            for (int64_t i = start; i < *n; ++i) {
                const int64_t seed = (*seeds)[i];
                if (seed >= mask_end) {
                    covered += covered_units(&job->geo, scratch->in_mask, held, scratch->bits, job->words);
                    held = 0;
                    mask_end = (seed / s->per_mask + 1) * s->per_mask;
                }
                scratch->in_mask[held++] = (int32_t)(seed - (mask_end - s->per_mask));
            }
            if (*n < *room) break; /* the group is done */
        }
    }
    return covered + covered_units(&job->geo, scratch->in_mask, held, scratch->bits, job->words);
}

#if defined(__AVX2__)
/* Sampling and counting lanes wide (AVX2), where every block is a k x k square inside the map
 * (seeds in the valid region) and gamma < 1.
 *
 * Seeds: walk_fill's gaps, summed 4 at a time (sums of integers below 2^53 are exact in any
 * order: the seeds are walk_fill's). Each seed is written as its flat index and as the corner
 * of its block in the group's stream of squares, where row r of the group's mask m lies at
 * m (rows + k) + r: blocks of different masks lie more than k rows apart and never meet.
 *
 * Counting: squares with corners (r, c) and (r', c') share (k - |r - r'|)(k - |c - c'|) units
 * when both factors are positive. Each block is compared with the 8 blocks before it in the
 * stream, 8 blocks at a time (window_covered), branch-free: the outcomes are coin flips. A
 * mask covers its n k^2 units minus those overlaps, plus what each three of its blocks share
 * (the few blocks meeting two earlier ones are looked at one by one). Masks where four blocks
 * share a unit, or where the block 8 before one reaches its rows (and so may any before that),
 * are counted again by covered_units. */

#define DBF_FAR (1 << 28) /* a row no block of a stream reaches */

/* For integers 0 <= v < 2^31 held as doubles and integer d >= 1 with per_d = 1 / d (rounded):
 * floor(v / d), and *rest = v - d floor(v / d). (v + 1/2) / d lies at least 1 / (2d) inside
 * (q, q + 1) for q = floor(v / d), and the rounded product misses it by under
 * (v + 1/2) / d * 2^-52 (two roundings), below 1 / (2d) for v < 2^51: its floor is q. */
static inline __m256d floor_divide4(__m256d v, __m256d d, __m256d per_d, __m256d *rest) {
    const __m256d q = _mm256_floor_pd(_mm256_mul_pd(_mm256_add_pd(v, _mm256_set1_pd(0.5)), per_d));
    *rest = _mm256_sub_pd(v, _mm256_mul_pd(q, d));
    return q;
}

/* Running sums of 4 lanes: (a, b, c, d) -> (a, a + b, a + b + c, a + b + c + d). */
static inline __m256d prefix_sums4(__m256d v) {
    v = _mm256_add_pd(v, _mm256_blend_pd(_mm256_permute4x64_pd(v, _MM_SHUFFLE(2, 1, 0, 0)), _mm256_setzero_pd(), 0x1));
    return _mm256_add_pd(v, _mm256_blend_pd(_mm256_permute4x64_pd(v, _MM_SHUFFLE(1, 0, 0, 0)), _mm256_setzero_pd(), 0x3));
}

/* Doubles holding integers in [0, 2^51) as int64. */
static inline __m256i small_doubles_to_int64(__m256d v) {
    const __m256d magic = _mm256_set1_pd(0x1p52);
    return _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(v, magic)), _mm256_castpd_si256(magic));
}

/* The group's next seeds, up to DBF_BATCH of them: flat indices to `flat`, block corners to
 * `top` and `left` (each with room for DBF_BATCH). Returns how many; sets *done when the
 * group is. */
static int64_t wide_walk(const sample_job *job, seed_walk *w, int64_t *flat, int32_t *top, int32_t *left, int *done) {
    const __m256d total = _mm256_set1_pd(w->total), per_mask = _mm256_set1_pd((double)job->s.per_mask);
    const __m256d per_per_mask = _mm256_set1_pd(job->per_per_mask), cols = _mm256_set1_pd((double)job->geo.cols);
    const __m256d per_cols = _mm256_set1_pd(job->per_cols);
    const __m256d stride = _mm256_set1_pd((double)(job->rows + job->geo.k));
    const __m256i first = _mm256_set1_epi64x(w->first);
    draw_gaps(&w->rng, w->per_log_miss, w->gaps);
    __m256d at = _mm256_set1_pd(w->at);
    int64_t n = 0;
    for (int v = 0; v < DBF_BATCH; v += 4) {
        const __m256d at4 = _mm256_add_pd(prefix_sums4(_mm256_loadu_pd(w->gaps + v)), at);
        /* Lanes past the group's end hold what they may: they are not counted. */
        _mm256_storeu_si256((__m256i *)(flat + n), _mm256_add_epi64(small_doubles_to_int64(at4), first));
        if (job->s.per_mask > 1) { /* else nothing is counted from corners (wide_groups) */
            __m256d position, col;
            const __m256d mask = floor_divide4(at4, per_mask, per_per_mask, &position);
            const __m256d row = floor_divide4(position, cols, per_cols, &col);
            _mm_storeu_si128((__m128i *)(top + n), _mm256_cvttpd_epi32(_mm256_add_pd(_mm256_mul_pd(mask, stride), row)));
            _mm_storeu_si128((__m128i *)(left + n), _mm256_cvttpd_epi32(col));
        }
        const int inside = __builtin_popcount(_mm256_movemask_pd(_mm256_cmp_pd(at4, total, _CMP_LT_OQ)));
        n += inside;
        if (inside < 4) {
            w->at = w->total, *done = 1;
            return n;
        }
        at = _mm256_permute4x64_pd(at4, _MM_SHUFFLE(3, 3, 3, 3));
    }
    w->at = _mm256_cvtsd_f64(at);
    return n;
}

/* A wide group's scratch: block corners with 8 sentinels before the first and room for 8
 * after the last, each block's tallied overlap and which of the 8 blocks before it it meets,
 * and the masks to count again (after a -1, with room for one more than the group's masks). */
typedef struct {
    int32_t *top, *left, *overlap, *meets;
    int64_t *flagged;
    int64_t room;
} wide_scratch;

static int wide_scratch_room(wide_scratch *w, int64_t room) {
    if (room <= w->room) return 1;
    int32_t *top = realloc(w->top, sizeof(int32_t) * (size_t)(room + 16));
    if (top) w->top = top;
    int32_t *left = realloc(w->left, sizeof(int32_t) * (size_t)(room + 16));
    if (left) w->left = left;
    int32_t *overlap = realloc(w->overlap, sizeof(int32_t) * (size_t)(room + 8));
    if (overlap) w->overlap = overlap;
    int32_t *meets = realloc(w->meets, sizeof(int32_t) * (size_t)(room + 8));
    if (meets) w->meets = meets;
    if (!top || !left || !overlap || !meets) return 0;
    w->room = room;
    for (int j = 0; j < 8; ++j) w->top[j] = -DBF_FAR, w->left[j] = 0;
    return 1;
}

/* The units that block b shares with each pair of earlier blocks it meets, where those meet
 * too: three squares that meet pairwise share a (k - row spread) x (k - column spread)
 * rectangle. meets[j] holds bit d - 1 when block j meets block j - d (d <= 8). Returns -1
 * when block b and three earlier blocks meet pairwise, so that four share a unit. */
static inline int64_t shared_by_three(const int32_t *top, const int32_t *left, const int32_t *meets, int64_t b, int64_t k) {
    int64_t shared = 0;
    for (int32_t nearer = meets[b]; nearer; nearer &= nearer - 1) {
        const int d1 = __builtin_ctz((uint32_t)nearer) + 1;
        /* bit j: block b - (d1 + j + 1) meets both b and b - d1 */
        const int32_t both = (meets[b] >> d1) & meets[b - d1];
        for (int32_t rest = both; rest; rest &= rest - 1) {
            const int d2 = d1 + __builtin_ctz((uint32_t)rest) + 1;
            if ((both >> (d2 - d1)) & meets[b - d2]) return -1; /* a block before b - d2 meets all three */
            const int32_t c0 = left[b], c1 = left[b - d1], c2 = left[b - d2];
            const int32_t lo = c0 < c1 ? (c0 < c2 ? c0 : c2) : (c1 < c2 ? c1 : c2);
            const int32_t hi = c0 > c1 ? (c0 > c2 ? c0 : c2) : (c1 > c2 ? c1 : c2);
            shared += (k - (top[b] - top[b - d2])) * (k - (hi - lo)); /* tops ascend along the stream */
        }
    }
    return shared;
}

/* Units covered by a wide group's `count` seeds (see above), from their corners at w->top + 8
 * and w->left + 8. A mask's union is n k^2 minus the units each pair of its blocks shares, plus
 * those each three share, minus those each four share, and so on. Squares that meet pairwise
 * share a unit (they do row-wise and column-wise, and intervals that meet pairwise share a
 * point), so where no block meets two earlier blocks that meet each other the pair terms are
 * all; where three meet pairwise but no four, the triple terms are added (shared_by_three);
 * masks with four blocks meeting pairwise, or a block that more than 8 blocks before it may
 * meet, are counted again with the bitset. */
static int64_t window_covered(const sample_job *job, wide_scratch *w, int64_t count, recount_scratch *scratch) {
    const int64_t k = job->geo.k, stride = job->rows + k;
    int32_t *top = w->top + 8, *left = w->left + 8;
    for (int j = 0; j < 8; ++j) top[count + j] = DBF_FAR + 2 * (int32_t)k * j, left[count + j] = 0; /* meeting nothing */
    const __m256i side = _mm256_set1_epi32((int32_t)k), zero = _mm256_setzero_si256(), one = _mm256_set1_epi32(1);
    int64_t listed = 0;
    w->flagged[0] = -1;
    for (int64_t i = 0; i < count; i += 8) {
        const __m256i r = _mm256_loadu_si256((const __m256i *)(top + i)), c = _mm256_loadu_si256((const __m256i *)(left + i));
        __m256i overlap = zero, meets = zero;
        for (int d = 8; d >= 1; --d) { /* bit d - 1 of meets: block i - d met */
            const __m256i top_d = _mm256_loadu_si256((const __m256i *)(top + i - d));
            const __m256i left_d = _mm256_loadu_si256((const __m256i *)(left + i - d));
            const __m256i rows = _mm256_sub_epi32(side, _mm256_abs_epi32(_mm256_sub_epi32(r, top_d)));
            const __m256i cols = _mm256_sub_epi32(side, _mm256_abs_epi32(_mm256_sub_epi32(c, left_d)));
            const __m256i meet = _mm256_and_si256(_mm256_cmpgt_epi32(rows, zero), _mm256_cmpgt_epi32(cols, zero));
            overlap = _mm256_add_epi32(overlap, _mm256_and_si256(meet, _mm256_mullo_epi32(rows, cols)));
            meets = _mm256_sub_epi32(_mm256_slli_epi32(meets, 1), meet);
        }
        const __m256i reach = _mm256_cmpgt_epi32(_mm256_loadu_si256((const __m256i *)(top + i - 8)), _mm256_sub_epi32(r, side));
        int flags = _mm256_movemask_ps(_mm256_castsi256_ps(reach));
        /* Blocks meeting two or more earlier ones: about 2 % at the ResNet stage shapes. */
        int several = 0xFF & ~_mm256_movemask_ps(_mm256_castsi256_ps(
                                 _mm256_cmpeq_epi32(_mm256_and_si256(meets, _mm256_sub_epi32(meets, one)), zero)));
        _mm256_storeu_si256((__m256i *)(w->overlap + i), overlap);
        _mm256_storeu_si256((__m256i *)(w->meets + i), meets);
        for (several &= ~flags; several; several &= several - 1) {
            const int lane = __builtin_ctz((unsigned)several);
            const int64_t shared = shared_by_three(top, left, w->meets, i + lane, k);
            if (shared < 0) flags |= 1 << lane;
            else w->overlap[i + lane] -= (int32_t)shared;
        }
        while (flags) { /* 0.4 % of masks at 56 x 56 (block 7, p 0.1), fewer on smaller maps */
            const int64_t mask = top[i + __builtin_ctz(flags)] / stride;
            flags &= flags - 1;
            w->flagged[listed + 1] = mask;
            listed += mask != w->flagged[listed];
        }
    }
    int64_t covered = count * k * k; /* less the tallied overlaps, summed apart: no sum carried through the loop above */
    for (int64_t j = 0; j < count; ++j) covered -= w->overlap[j];
    /* Masks to count again: their tallied overlaps back, their union instead. */
    for (int64_t f = 1, a = 0; f <= listed; ++f) {
        const int64_t start = w->flagged[f] * stride;
        while (top[a] < start) ++a;
        int64_t b = a, tallied = 0;
        for (; b < count && top[b] < start + stride; ++b)
            tallied += w->overlap[b], scratch->in_mask[b - a] = (int32_t)((top[b] - start) * job->geo.cols + left[b]);
        covered += tallied - (b - a) * k * k + covered_units(&job->geo, scratch->in_mask, b - a, scratch->bits, job->words);
        a = b;
    }
    return covered;
}

/* What scalar_groups does, lanes wide: the same seeds, appended to *seeds, and the same count. */
static int64_t wide_groups(const sample_job *job, int64_t first, int64_t last, int64_t **seeds, int64_t *n, int64_t *room,
                           recount_scratch *scratch) {
    const dbf_sampler *s = &job->s;
    const double expected = (double)(s->group * s->per_mask) * s->gamma;
    wide_scratch w = {NULL, NULL, NULL, NULL, malloc(sizeof(int64_t) * (size_t)(s->group + 2)), 0};
    int64_t covered = w.flagged && wide_scratch_room(&w, (int64_t)(expected + 8.0 * sqrt(expected) + 64.0)) ? 0 : -1;
    for (int64_t g = first; g < last && covered >= 0; ++g) {
        seed_walk walk;
        walk_start(&walk, s, g);
        int64_t count = 0;
        for (int done = 0; !done;) {
            if (!make_room(seeds, room, *n, DBF_BATCH) || !wide_scratch_room(&w, count + DBF_BATCH)) {
                covered = -1;
                break;
            }
            const int64_t got = wide_walk(job, &walk, *seeds + *n, w.top + 8 + count, w.left + 8 + count, &done);
            *n += got, count += got;
        }
        /* One position a mask: each block alone in its mask. */
        if (covered >= 0) covered += s->per_mask == 1 ? count * job->geo.k * job->geo.k : window_covered(job, &w, count, scratch);
    }
    free(w.top), free(w.left), free(w.overlap), free(w.meets), free(w.flagged);
    return covered;
}
#endif

/* The seeds of groups [groups * me / team, groups * (me + 1) / team), and what they cover. */
static void sample_share(const sample_job *job, int me, int team, sample_part *part) {
    const dbf_sampler *s = &job->s;
    const int64_t first = job->groups * me / team, last = job->groups * (me + 1) / team;
    const int64_t mask_lo = first * s->group, mask_hi = last * s->group < s->masks ? last * s->group : s->masks;
    const double expected = (double)((mask_hi - mask_lo) * s->per_mask) * (s->gamma < 1.0 ? s->gamma : 1.0);
    int64_t room = (int64_t)(expected + 8.0 * sqrt(expected) + 64.0), n = 0, covered = -1;
    int64_t *mine = malloc(sizeof(int64_t) * (size_t)room);
    recount_scratch scratch = {malloc(sizeof(int32_t) * (size_t)(s->per_mask > 0 ? s->per_mask : 1)),
                               calloc((size_t)(job->geo.height * job->words), sizeof(uint64_t))};
    if (mine && scratch.in_mask && scratch.bits) {
#if defined(__AVX2__)
        if (job->wide)
            covered = wide_groups(job, first, last, &mine, &n, &room, &scratch);
        else
#endif
            covered = scalar_groups(job, first, last, &mine, &n, &room, &scratch);
    }
    free(scratch.in_mask);
    free(scratch.bits);
    *part = (sample_part){mine, n, covered, mask_lo, mask_hi, covered < 0};
}

static void make_sample_job(sample_job *job, uint64_t seed, int64_t masks, const dbf_args *a) {
    *job = (sample_job){make_sampler(seed, masks, a->rows * a->cols, a->gamma),
                        make_geometry(a->height, a->width, a->k, a->top0, a->left0, a->cols), 0, (a->width + 63) / 64, a->rows, 0,
                        1.0 / (double)(a->rows * a->cols > 0 ? a->rows * a->cols : 1), 1.0 / (double)(a->cols > 0 ? a->cols : 1)};
    job->groups = group_count(&job->s);
#if defined(__AVX2__)
    /* int32 corners: group rows (rows + k) below 2^27; positions of a group below 2^31. */
    const double group_positions = (double)job->s.group * (double)job->s.per_mask;
    job->wide = blocks_inside(a) && a->gamma < 1.0 && a->k < 8192 && group_positions < 0x1p31 &&
                (double)job->s.group * (double)(a->rows + a->k) < 0x1p27;
#endif
}

/* Samples the seeds of `masks` masks and counts the units they drop. Seeds are flat indices
 * mask * rows * cols + position (row-major in the mask's seed region), ascending; they are
 * written when they fit in `capacity`. *dropped receives the exact number of units covered,
 * summed over masks (each mask's blocks counted as a union). Returns the number of seeds;
 * when that exceeds `capacity`, call again with at least that much room (the same arguments
 * give the same seeds). -1 when scratch memory cannot be had. */
int64_t dbf_sample(uint64_t seed, int64_t masks, const dbf_args *a, int64_t *seeds, int64_t capacity,
                   int64_t *dropped, int n_threads) {
    sample_job job;
    make_sample_job(&job, seed, masks, a);
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

/* Half-width types, 16 at a time with AVX2 (bfloat16) or F16C (float16): WIDEN16 turns 16
 * halves into two float vectors (in any order NARROW16 undoes), NARROW16 rounds them back
 * lane-wise as the scalar conversions do. A scalar head brings `dst` to a 32-byte boundary;
 * scalar for the tail. */
#define HALF_WIDTH_LOOPS(NAME, WIDEN16, NARROW16, LOAD1, STORE1)                                    \
    static void scale_##NAME(const void *src, void *dst, int64_t n, float s) {                      \
        const uint16_t *a = (const uint16_t *)src;                                                  \
        uint16_t *b = (uint16_t *)dst;                                                              \
        const __m256 ws = _mm256_set1_ps(s);                                                        \
        int64_t i = 0;                                                                              \
        for (; i < n && ((uintptr_t)(b + i) & 31) != 0; ++i) b[i] = STORE1(LOAD1(a[i]) * s);       \
        for (; i + 16 <= n; i += 16) {                                                              \
            __m256 lo, hi;                                                                          \
            WIDEN16(_mm256_loadu_si256((const __m256i *)(a + i)), &lo, &hi);                        \
            _mm256_store_si256((__m256i *)(b + i), NARROW16(_mm256_mul_ps(lo, ws), _mm256_mul_ps(hi, ws))); \
        }                                                                                           \
        for (; i < n; ++i) b[i] = STORE1(LOAD1(a[i]) * s);                                          \
    }                                                                                               \
    static void keep_##NAME(const void *src, void *dst, int64_t n, float s, const void *keep_bits) { \
        const uint16_t *a = (const uint16_t *)src, *keep = (const uint16_t *)keep_bits;             \
        uint16_t *b = (uint16_t *)dst;                                                              \
        const __m256 ws = _mm256_set1_ps(s);                                                        \
        int64_t i = 0;                                                                              \
        for (; i < n && ((uintptr_t)(b + i) & 31) != 0; ++i) b[i] = STORE1(LOAD1(a[i]) * s) & keep[i]; \
        for (; i + 16 <= n; i += 16) {                                                              \
            __m256 lo, hi;                                                                          \
            WIDEN16(_mm256_loadu_si256((const __m256i *)(a + i)), &lo, &hi);                        \
            const __m256i h = NARROW16(_mm256_mul_ps(lo, ws), _mm256_mul_ps(hi, ws));               \
            _mm256_store_si256((__m256i *)(b + i), _mm256_and_si256(h, _mm256_loadu_si256((const __m256i *)(keep + i)))); \
        }                                                                                           \
        for (; i < n; ++i) b[i] = STORE1(LOAD1(a[i]) * s) & keep[i];                                \
    }

#if defined(__AVX2__)
#include <immintrin.h>
/* bfloat16 is the top half of a float: a 32-bit lane holding two of them gives the even one
 * shifted up and the odd one masked in place, and NARROW16 puts them back the same way. The
 * rounding is float_to_bf16's, bits + 0x7FFF + odd = bits + 0x8000 - (odd ? 0 : 1), with no
 * shifts, and without its NaN test: here every NaN product has its low 16 bits zero (a NaN
 * input, whose low 16 bits are zero, comes out quieted; inf * 0 gives the default NaN
 * 0xFFC00000), so the rounding cannot carry it into an infinity. It stays a NaN, but keeps its
 * sign and payload where float_to_bf16 gives 0x7FC0. */
static inline void bf16x16_to_ps(__m256i h, __m256 *even, __m256 *odd) {
    *even = _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
    *odd = _mm256_castsi256_ps(_mm256_and_si256(h, _mm256_set1_epi32((int)0xFFFF0000u)));
}
static inline __m256i ps_to_bf16_rounded(__m256 f) { /* float_to_bf16, lane-wise, in the high 16 bits */
    const __m256i bits = _mm256_castps_si256(f);
    const __m256i even = _mm256_cmpeq_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x10000)), _mm256_setzero_si256());
    return _mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x8000)), even);
}
static inline __m256i ps_to_bf16x16(__m256 even, __m256 odd) {
    return _mm256_or_si256(_mm256_srli_epi32(ps_to_bf16_rounded(even), 16),
                           _mm256_and_si256(ps_to_bf16_rounded(odd), _mm256_set1_epi32((int)0xFFFF0000u)));
}
HALF_WIDTH_LOOPS(bf16, bf16x16_to_ps, ps_to_bf16x16, bf16_to_float, float_to_bf16)
#else
ELEMENT_LOOPS(bf16, uint16_t, float, bf16_to_float, float_to_bf16)
#endif

/* float16 as uint16 bits; F16C converts 8 at a time where the CPU has it (its conversions
 * store straight to memory, so 8 a step beats 16). */
#if defined(__F16C__)
#include <immintrin.h>
#define DBF_HAS_FLOAT16 1
typedef uint16_t f16;
static inline float f16_to_float(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t float_to_f16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
static void scale_f16(const void *src, void *dst, int64_t n, float s) {
    const uint16_t *a = (const uint16_t *)src;
    uint16_t *b = (uint16_t *)dst;
    const __m256 ws = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))), ws);
        _mm_storeu_si128((__m128i *)(b + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; ++i) b[i] = float_to_f16(f16_to_float(a[i]) * s);
}
static void keep_f16(const void *src, void *dst, int64_t n, float s, const void *keep_bits) {
    const uint16_t *a = (const uint16_t *)src, *keep = (const uint16_t *)keep_bits;
    uint16_t *b = (uint16_t *)dst;
    const __m256 ws = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))), ws);
        const __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(b + i), _mm_and_si128(h, _mm_loadu_si128((const __m128i *)(keep + i))));
    }
    for (; i < n; ++i) b[i] = float_to_f16(f16_to_float(a[i]) * s) & keep[i];
}
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

/* Asks Linux to back [p, p + bytes) with transparent huge pages where whole 2 MiB-aligned
 * pages fit (MADV_HUGEPAGE; effective when the system's THP mode is "madvise" or "always").
 * For a fresh output, memory the allocator has just mapped and nothing has touched yet, the
 * apply pass then faults in one zeroed 2 MiB page where it would fault 512 4 KiB ones: at
 * ResNet stage 1 and 2 sizes the faults are most of an out-of-place call. Memory already in
 * use is left as it is (only its later faults change). Advice, not a write: the contents and
 * the output are unchanged. Returns the bytes advised: 0 when no whole huge page fits, the
 * platform has no such advice, or the kernel refused it. */
#define DBF_HUGE_PAGE ((uintptr_t)2 << 20) /* the PMD size with 4 KiB base pages (x86-64, arm64) */

int64_t dbf_advise_huge_pages(void *p, int64_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t start = ((uintptr_t)p + DBF_HUGE_PAGE - 1) & ~(DBF_HUGE_PAGE - 1);
    const uintptr_t end = ((uintptr_t)p + (uintptr_t)(bytes > 0 ? bytes : 0)) & ~(DBF_HUGE_PAGE - 1);
    if (end > start && madvise((void *)start, end - start, MADV_HUGEPAGE) == 0) return (int64_t)(end - start);
#else
    (void)p, (void)bytes;
#endif
    return 0;
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

/* Zeros `rows` runs of n bytes, `stride` bytes apart (a block's rows). Short runs are two
 * overlapping fixed-size stores each, the size chosen once for all rows, not a call to memset. */
static inline void zero_rows(char *p, size_t n, size_t stride, int64_t rows) {
    static const char zeros[16] = {0};
    if (n == stride) { /* whole rows: one run */
        memset(p, 0, n * (size_t)rows);
    } else if (n > 32) {
        for (int64_t r = 0; r < rows; ++r, p += stride) memset(p, 0, n);
    } else if (n >= 16) {
        for (int64_t r = 0; r < rows; ++r, p += stride) memcpy(p, zeros, 16), memcpy(p + n - 16, zeros, 16);
    } else if (n >= 8) {
        for (int64_t r = 0; r < rows; ++r, p += stride) memcpy(p, zeros, 8), memcpy(p + n - 8, zeros, 8);
    } else if (n >= 4) {
        for (int64_t r = 0; r < rows; ++r, p += stride) memcpy(p, zeros, 4), memcpy(p + n - 4, zeros, 4);
    } else if (n >= 2) {
        for (int64_t r = 0; r < rows; ++r, p += stride) memcpy(p, zeros, 2), memcpy(p + n - 2, zeros, 2);
    } else if (n == 1) {
        for (int64_t r = 0; r < rows; ++r, p += stride) *p = 0;
    }
}

/* Writes zeros over one block of a map (+0.0 is all zero bits in every supported dtype);
 * rows spanning the whole width are one run. */
static inline void zero_block(char *map, const dbf_geometry *g, int64_t position, size_t item) {
    const box b = block_box(g, position);
    if (b.c0 == 0 && b.c1 == g->width) {
        memset(map + (size_t)(b.r0 * g->width) * item, 0, (size_t)((b.r1 - b.r0) * g->width) * item);
        return;
    }
    zero_rows(map + (size_t)(b.r0 * g->width + b.c0) * item, (size_t)(b.c1 - b.c0) * item, (size_t)g->width * item,
              b.r1 - b.r0);
}

/* Maps are processed in spans of about this many bytes: a map's blocks are zeroed while it is
 * still in cache. */
#define DBF_SPAN_BYTES 131072
/* ... and within a span, maps are scaled this many bytes at a time (at least one map) before
 * their blocks are zeroed, ... */
#define DBF_HOT_BYTES 16384
/* ... or this many for 2-byte types with one mask per map, whose seeds are twice as dense per
 * byte: their blocks are zeroed while the chunk's output is still in L1 (A/B on Plan.drop,
 * float16 and bfloat16, 28x28 and 14x14 maps: -0.05 to -0.07 of the floor; fp32 lost 0.09 to
 * 0.14 with chunks this small at 28x28). */
#define DBF_HOT_HALF_BYTES 4096

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
    int64_t n_seeds, per_mask, maps, maps_per_mask, area, span, hot, hot_blocks; /* hot: whole maps; hot_blocks: blocks */
    int inside;     /* every block lies inside the map (as with seeds in the valid region) */
    int whole_maps; /* ... and is the whole map (one seed position a mask, k = H = W) */
    size_t map_bytes;
    float scale;
    dbf_divisor by_per_mask; /* for seed_mask, where it is exact */
} apply_job;

/* The mask of a seed: seed / per_mask, without a divide instruction where that is exact (flat
 * seeds below masks * per_mask, times per_mask, below 2^62). */
static inline int64_t seed_mask(const apply_job *job, int64_t seed) {
    return job->by_per_mask.m ? divide(&job->by_per_mask, seed) : seed / job->per_mask;
}

/* Builds the keep bits of one mask from its `count` seeds; returns 1 when the mask drops the
 * whole map. */
static int build_keep(const apply_job *job, const int64_t *seeds, int64_t count, int64_t mask_start, unsigned char *keep) {
    memset(keep, 0xFF, job->map_bytes);
    for (int64_t t = 0; t < count; ++t) zero_block((char *)keep, &job->g, seeds[t] - mask_start, job->loops.item);
    unsigned char any = 0;
    for (size_t b = 0; b < job->map_bytes; ++b) any |= keep[b];
    return any == 0;
}

/* Where ascending seeds are: flat seed indices [start, end) belong to map `map`. */
typedef struct {
    int64_t map, start, end;
} map_cursor;

/* Zeros the block of `seed` in its map in `dst` (which starts at map `first`). */
static inline void zero_seed(const apply_job *job, char *dst, int64_t first, int64_t seed, map_cursor *c) {
    const size_t item = job->loops.item;
    if (seed >= c->end) c->map = seed_mask(job, seed), c->start = c->map * job->per_mask, c->end = c->start + job->per_mask;
    char *map = dst + (size_t)(c->map - first) * job->map_bytes;
    const int64_t pos = seed - c->start;
    if (job->inside) { /* no block is clipped: k rows of k units from the corner */
        const dbf_geometry *g = &job->g;
        const int64_t unit = pos + position_row(g, pos) * (g->width - g->cols) + g->top0 * g->width + g->left0;
        zero_rows(map + (size_t)unit * item, (size_t)g->k * item, (size_t)g->width * item, g->k);
    } else {
        zero_block(map, &job->g, pos, item);
    }
}

/* How many copies of a map's keep bits apply_maps builds for a shared mask: one call covers
 * several small maps. */
static int64_t keep_copies(const apply_job *job) {
    const int64_t copies = (int64_t)(DBF_KEEP_BYTES / job->map_bytes);
    return copies < 1 ? 1 : copies > job->maps_per_mask ? job->maps_per_mask : copies;
}

/* apply_maps' scratch: keep bits for shared masks (maps_per_mask > 1), else none. Sets
 * *failed when the memory cannot be had. Allocated before any output is written, so that a
 * failure writes nothing. */
static unsigned char *keep_scratch(const apply_job *job, int *failed) {
    if (job->maps_per_mask == 1) return NULL;
    unsigned char *keep = malloc(job->map_bytes * (size_t)keep_copies(job));
    if (!keep) *failed = 1;
    return keep;
}

/* Maps [at, at + count) of a span whose first map is at src (read) and dst (written), scaled. */
static inline void scale_maps(const apply_job *job, const char *src, char *dst, int64_t at, int64_t count) {
    if (count > 0)
        job->loops.scale(src + (size_t)at * job->map_bytes, dst + (size_t)at * job->map_bytes, count * job->area, job->scale);
}

/* Maps [map_lo, map_hi) of apply_job, a span at a time; `keep` from keep_scratch. */
static void apply_maps(const apply_job *job, int64_t map_lo, int64_t map_hi, unsigned char *keep) {
    const element_loops *loops = &job->loops;
    const size_t item = loops->item, map_bytes = job->map_bytes;
    const int64_t per_mask = job->per_mask, mpm = job->maps_per_mask, area = job->area, copies = keep_copies(job);
    int64_t built = -1;
    int dropped_whole = 0;
    for (int64_t first = map_lo; first < map_hi; first += job->span) {
        const int64_t last = first + job->span < map_hi ? first + job->span : map_hi;
        const int64_t first_mask = first / mpm, last_mask = (last - 1) / mpm;
        int64_t i = lower_bound(job->seeds, 0, job->n_seeds, first_mask * per_mask);
        const int64_t stop = lower_bound(job->seeds, i, job->n_seeds, (last_mask + 1) * per_mask);
        const char *src = (const char *)job->x + (size_t)first * map_bytes;
        char *dst = (char *)job->out + (size_t)first * map_bytes;
        if (job->whole_maps && mpm == 1 && item <= 2) {
            /* Each block is its whole map, one map a mask, 2-byte types: the runs between
             * seeded maps are short (their length a coin flip each), and a scaling call per
             * run costs more in mispredicted loop ends than reading x for the seeded maps
             * does. So maps are scaled DBF_HOT_BYTES at a time, then the seeded ones zeroed
             * while in cache. (The seed of map m is m: one position a mask.) */
            for (int64_t m = first; m < last; m += job->hot) {
                const int64_t end = m + job->hot < last ? m + job->hot : last;
                scale_maps(job, src, dst, m - first, end - m);
                for (; i < stop && job->seeds[i] < end; ++i) memset(dst + (size_t)(job->seeds[i] - first) * map_bytes, 0, map_bytes);
            }
            continue;
        }
        if (job->whole_maps) {
            /* Each block is its whole map: the maps between seeded masks are scaled in one go,
             * those of a seeded mask written as zeros, x unread (4- and 8-byte types, or a
             * mask shared by a sample's maps, where seeded runs are long). */
            int64_t m = first; /* maps [first, m) are written */
            for (; i < stop; ++i) { /* one position a mask: the flat seed is the mask */
                const int64_t from = job->seeds[i] * mpm > m ? job->seeds[i] * mpm : m;
                const int64_t to = (job->seeds[i] + 1) * mpm < last ? (job->seeds[i] + 1) * mpm : last;
                scale_maps(job, src, dst, m - first, from - m);
                memset(dst + (size_t)(from - first) * map_bytes, 0, (size_t)(to - from) * map_bytes);
                m = to;
            }
            scale_maps(job, src, dst, m - first, last - m);
            continue;
        }
        if (mpm == 1) {
            /* One mask per map. Maps are scaled hot_blocks at a time; then their blocks are
             * zeroed while in cache. */
            map_cursor cursor = {0, 0, 0};
            for (int64_t m = first; m < last; m += job->hot_blocks) {
                const int64_t end = m + job->hot_blocks < last ? m + job->hot_blocks : last;
                scale_maps(job, src, dst, m - first, end - m);
                for (; i < stop && job->seeds[i] < end * per_mask; ++i) zero_seed(job, dst, first, job->seeds[i], &cursor);
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
}

/* The apply job for `maps` maps of `dtype`; -1 for an unsupported dtype or geometry. */
static int make_apply_job(apply_job *job, int dtype, const void *x, void *out, int64_t maps, int64_t maps_per_mask,
                          const int64_t *seeds, int64_t n_seeds, const dbf_args *a, float scale) {
    *job = (apply_job){.g = make_geometry(a->height, a->width, a->k, a->top0, a->left0, a->cols), .x = x, .out = out,
                       .seeds = seeds, .n_seeds = n_seeds, .per_mask = a->rows * a->cols, .maps = maps,
                       .maps_per_mask = maps_per_mask, .area = a->height * a->width, .scale = scale};
    if (!loops_for(dtype, &job->loops) || maps_per_mask < 1 || job->area < 1 || job->per_mask < 1) return -1;
    job->map_bytes = (size_t)job->area * job->loops.item;
    const double masks = (double)(maps / maps_per_mask);
    if (masks * (double)job->per_mask * (double)job->per_mask < 0x1p62) job->by_per_mask = make_divisor(job->per_mask);
    job->inside = blocks_inside(a);
    job->whole_maps = job->inside && job->per_mask == 1 && a->k == a->height && a->k == a->width;
    /* Spans hold a multiple of `step` maps, so they start on 64-byte boundaries when x, out
     * and the first map do. */
    int64_t step = 64, common = (int64_t)job->map_bytes;
    while (common % 2 == 0 && step > 1) common /= 2, step /= 2;
    job->span = (int64_t)(DBF_SPAN_BYTES / job->map_bytes) / step * step;
    job->span = job->span < step ? step : job->span;
    job->hot = (int64_t)(DBF_HOT_BYTES / job->map_bytes);
    job->hot = job->hot < 1 ? 1 : job->hot;
    job->hot_blocks = (int64_t)((job->loops.item <= 2 ? DBF_HOT_HALF_BYTES : DBF_HOT_BYTES) / job->map_bytes);
    job->hot_blocks = job->hot_blocks < 1 ? 1 : job->hot_blocks;
    return 0;
}

/* Enough work to share among threads: more than 16,384 units. */
#define DBF_PARALLEL_UNITS 16384

/* Thread `me` of `team`'s even share of the job's spans, as maps [*first, *last). */
static void span_share(const apply_job *job, int me, int team, int64_t *first, int64_t *last) {
    const int64_t spans = (job->maps + job->span - 1) / job->span;
    *first = spans * me / team * job->span;
    *last = spans * (me + 1) / team * job->span;
    *last = *last < job->maps ? *last : job->maps;
}

/* out = x * scale with every block zeroed, for `maps` contiguous H x W maps; map m takes the
 * blocks of mask m / maps_per_mask (1, or C for a mask shared by a sample's channels).
 * `seeds` are the n_seeds flat seeds from dbf_sample with the same geometry. `out` may be `x`
 * (in place). Dropped units are exact zeros, whatever x holds there and however large the
 * scale. Returns 0, or -1 for an unsupported dtype or no scratch memory (nothing is written
 * then: scratch memory is had before the first write). */
int dbf_apply(int dtype, const void *x, void *out, int64_t maps, int64_t maps_per_mask, const int64_t *seeds,
              int64_t n_seeds, const dbf_args *a, float scale, int n_threads) {
    apply_job job;
    if (make_apply_job(&job, dtype, x, out, maps, maps_per_mask, seeds, n_seeds, a, scale) != 0) return -1;
    const int team = maps * job.area > DBF_PARALLEL_UNITS && n_threads > 1 ? n_threads : 1;
    (void)team; /* without OpenMP */
    int failed = 0;
#pragma omp parallel num_threads(team)
    {
        const int me = thread_index(), size = team_size();
        int short_of_memory = 0;
        unsigned char *keep = keep_scratch(&job, &short_of_memory);
        if (short_of_memory) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        if (!failed) { /* written before the barrier only */
            int64_t first, last;
            span_share(&job, me, size, &first, &last);
            apply_maps(&job, first, last, keep);
        }
        free(keep);
    }
    return failed ? -1 : 0;
}

/* The scale for `dropped` of `units` units, from the caller (dropblock_bench.spec's rule). */
typedef double (*dbf_scale_fn)(int64_t dropped, int64_t units);

/* dbf_sample and dbf_apply in one parallel region, keeping no seeds: each thread samples its
 * run of groups, and the master thread (the caller's) asks scale_of for the scale once every
 * count is in. With at least DBF_OWN_GROUPS groups a thread, each thread then applies the maps
 * of the masks it sampled, from the seeds it holds; with fewer (a small job, or a mask shared
 * by a sample's channels) that split would leave threads idle, so the master joins the seeds
 * and the maps are split evenly, as dbf_apply does. Same seeds, count and output as
 * dbf_sample then dbf_apply. *scale receives the scale. Returns 0, -1 for an unsupported dtype
 * or no scratch memory, -2 when scale_of gives no finite scale >= 0; in both failures nothing
 * is written (scratch memory is had before the first barrier). */
#define DBF_OWN_GROUPS 16

int dbf_drop(int dtype, const void *x, void *out, int64_t maps_per_mask, uint64_t seed, int64_t masks,
             const dbf_args *a, dbf_scale_fn scale_of, float *scale, int n_threads) {
    sample_job job;
    make_sample_job(&job, seed, masks, a);
    const int64_t maps = masks * maps_per_mask;
    apply_job apply;
    if (make_apply_job(&apply, dtype, x, out, maps, maps_per_mask, NULL, 0, a, 0.0f) != 0) return -1;
    sample_part parts[DBF_MAX_THREADS];
    int team = maps * apply.area > DBF_PARALLEL_UNITS && n_threads > 1 ? n_threads : 1;
    team = team > DBF_MAX_THREADS ? DBF_MAX_THREADS : team;
    int status = 0, own = 1;
    int64_t *joined = NULL;
#pragma omp parallel num_threads(team)
    {
        const int me = thread_index(), size = team_size();
        sample_share(&job, me, size, &parts[me]);
        unsigned char *keep = keep_scratch(&apply, &parts[me].failed);
#pragma omp barrier
#pragma omp master
        {
            int64_t covered = 0, total = 0;
            for (int t = 0; t < size; ++t) covered += parts[t].covered, total += parts[t].n, status |= parts[t].failed ? -1 : 0;
            own = job.groups >= (int64_t)DBF_OWN_GROUPS * size;
            if (status == 0 && !own) {
                joined = malloc(sizeof(int64_t) * (size_t)(total > 0 ? total : 1));
                if (!joined) status = -1;
                for (int t = 0; t < size && joined; ++t) { /* in thread order: ascending */
                    memcpy(joined + apply.n_seeds, parts[t].seeds, sizeof(int64_t) * (size_t)parts[t].n);
                    apply.n_seeds += parts[t].n;
                }
                apply.seeds = joined;
            }
            if (status == 0) {
                const double s = scale_of(covered * maps_per_mask, maps * apply.area);
                status = s >= 0.0 && s <= FLT_MAX ? 0 : -2;
                if (status == 0) *scale = (float)s;
            }
        }
#pragma omp barrier
        if (status == 0) { /* written by the master before the barrier, read-only after it */
            apply_job mine = apply;
            mine.scale = *scale;
            int64_t first, last;
            if (own) { /* the maps of the masks this thread sampled */
                mine.seeds = parts[me].seeds, mine.n_seeds = parts[me].n;
                first = parts[me].mask_lo * maps_per_mask, last = parts[me].mask_hi * maps_per_mask;
            } else { /* an even share of spans, as dbf_apply */
                span_share(&apply, me, size, &first, &last);
            }
            apply_maps(&mine, first, last, keep);
        }
        free(keep);
        free(parts[me].seeds);
    }
    free(joined);
    return status;
}

/* DropBlock3d's seeds, as dbf_apply's 2-D ones. Corners are iid Bernoulli(gamma) over each of
 * `maps` corner volumes of (depth - k + 1) x (height - k + 1) x (width - k + 1) positions,
 * drawn as dbf_sample draws (groups of whole volumes, one stream a group, so the result does
 * not depend on the thread count). A corner's k x k x k cube is a k x k square in each of the
 * k planes it spans: the output holds, plane by plane (plane = map * depth + z, ascending),
 * the squares' flat seeds plane * per_plane + top * (width - k + 1) + left, per_plane =
 * (height - k + 1) * (width - k + 1). *dropped receives the exact number of units in the
 * cubes' union (each plane's squares counted as a union, summed). Returns the number of plane
 * seeds, written when they fit in `capacity` (call again with more room otherwise: the same
 * arguments give the same seeds), or -1 when scratch memory cannot be had. */
int64_t dbf_cubes(uint64_t seed, int64_t maps, int64_t depth, int64_t height, int64_t width, int64_t k, double gamma,
                  int64_t *seeds, int64_t capacity, int64_t *dropped, int n_threads) {
    const int64_t corner_depths = depth - k + 1, rows = height - k + 1, cols = width - k + 1;
    const int64_t per_plane = rows * cols, per_map = corner_depths * per_plane, words = (width + 63) / 64;
    const dbf_sampler sampler = make_sampler(seed, maps, per_map, gamma);
    const dbf_geometry g = make_geometry(height, width, k, 0, 0, cols);
    const int64_t groups = group_count(&sampler);
    int team = groups > 1 && n_threads > 1 ? n_threads : 1;
    team = team > DBF_MAX_THREADS ? DBF_MAX_THREADS : team;
    int64_t *part_seeds[DBF_MAX_THREADS] = {0}, part_n[DBF_MAX_THREADS] = {0}, part_covered[DBF_MAX_THREADS] = {0};
    int part_failed[DBF_MAX_THREADS] = {0};
    (void)team; /* without OpenMP */
#pragma omp parallel num_threads(team)
    {
        const int me = thread_index(), size = team_size();
        int64_t *out = NULL, room = 0, n = 0, covered = 0, corner_room = 0;
        int64_t *corners = NULL, *depth_start = malloc(sizeof(int64_t) * (size_t)(corner_depths + 1));
        int32_t *pos = NULL;
        int64_t pos_room = 0;
        uint64_t *bits = calloc((size_t)(height * words), sizeof(uint64_t));
        int failed = !depth_start || !bits;
        for (int64_t gi = groups * me / size; gi < groups * (me + 1) / size && !failed; ++gi) {
            seed_walk walk;
            walk_start(&walk, &sampler, gi);
            int64_t count = 0;
            for (;;) { /* the group's corners, ascending */
                if (!make_room(&corners, &corner_room, count, 4096)) { failed = 1; break; }
                const int64_t got = walk_fill(&walk, corners + count, 4096);
                count += got;
                if (got < 4096) break;
            }
            const int64_t first_map = gi * sampler.group;
            const int64_t last_map = first_map + sampler.group < maps ? first_map + sampler.group : maps;
            int64_t at = 0;
            for (int64_t m = first_map; m < last_map && !failed; ++m) {
                const int64_t end_of_map = (m + 1) * per_map;
                int64_t stop = at;
                while (stop < count && corners[stop] < end_of_map) ++stop;
                /* depth_start[d]: the first corner of depth d (corners ascend by depth, then position) */
                int64_t c = at;
                for (int64_t d = 0; d <= corner_depths; ++d) {
                    while (c < stop && corners[c] - m * per_map < d * per_plane) ++c;
                    depth_start[d] = c;
                }
                for (int64_t z = 0; z < depth && !failed; ++z) {
                    const int64_t d0 = z - k + 1 > 0 ? z - k + 1 : 0, d1 = z < corner_depths - 1 ? z : corner_depths - 1;
                    const int64_t from = depth_start[d0], to = d1 >= d0 ? depth_start[d1 + 1] : from;
                    if (to <= from) continue;
                    if (!make_room(&out, &room, n, to - from)) { failed = 1; break; }
                    if (to - from > pos_room) {
                        int32_t *grown = realloc(pos, sizeof(int32_t) * (size_t)(to - from));
                        if (!grown) { failed = 1; break; }
                        pos = grown, pos_room = to - from;
                    }
                    const int64_t plane = m * depth + z;
                    for (int64_t i = from; i < to; ++i) {
                        const int64_t square = (corners[i] - m * per_map) % per_plane;
                        pos[i - from] = (int32_t)square;
                        out[n++] = plane * per_plane + square;
                    }
                    covered += covered_units(&g, pos, to - from, bits, words);
                }
                at = stop;
            }
        }
        free(corners);
        free(depth_start);
        free(pos);
        free(bits);
        part_seeds[me] = out, part_n[me] = n, part_covered[me] = covered, part_failed[me] = failed;
#pragma omp single
        team = size;
    }
    int64_t total = 0, covered = 0;
    int failed = 0;
    for (int t = 0; t < team; ++t) {
        if (!part_failed[t] && total + part_n[t] <= capacity && part_n[t] > 0)
            memcpy(seeds + total, part_seeds[t], sizeof(int64_t) * (size_t)part_n[t]);
        total += part_n[t], covered += part_covered[t], failed |= part_failed[t];
        free(part_seeds[t]);
    }
    *dropped = covered;
    return failed ? -1 : total;
}
