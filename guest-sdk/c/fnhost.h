/*
 * fnhost.h: write fnhost guests in C. One header, no libc, for clang --target=wasm32.
 *
 * It implements the guest side of docs/ABI.md (ABI version 1):
 *
 *   - the `fnhost_alloc` export, over a bump allocator (a 256 KiB zeroed static block, then
 *     pages from memory.grow), as the Rust SDK does: an instance lives for one call, so nothing
 *     is ever freed;
 *   - params in: `fnhost_params_parse` splits the params (a JSON array, by position, or a JSON
 *     object, by name) over the function's parameter names, and `fnhost_param_*` decode one
 *     parameter as a number, an integer, a boolean, a string or an array of them. Each failure
 *     leaves the status-2 (invalid params) output in `p.reject`, ready to return;
 *   - results out: `fnhost_return_*` for a single value, or `fnhost_out` to write any JSON;
 *     `fnhost_error*` for a status-1 guest error, with a code and data when wanted;
 *   - logging through the `fnhost.log` import: `fnhost_log(FNHOST_INFO, "...")`;
 *   - the metadata: `FNHOST_FUNCTION(json)` places a function's record in the
 *     `fnhost.functions` custom section.
 *
 * Numbers are exact: doubles are parsed correctly rounded (Clinger's fast path, then the
 * decimal conversion of the Rust SDK's guest-sdk/sdk/src/glue/float.rs, without its 128-bit
 * middle path: a 17-digit double costs some thousands of instructions more than in Rust) and
 * written as the shortest text that parses back to the same bits.
 *
 * Include it in exactly one .c file (it defines the exports and memcpy/memset), and build with
 *
 *   clang --target=wasm32 -Os -ffreestanding -nostdlib -Wl,--no-entry -o guest.wasm guest.c
 *
 * functions/cmath/ is a complete example; docs/GUESTS.md, "Guests in other languages", says
 * more.
 */
#ifndef FNHOST_H
#define FNHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------------------------ */
/* The ABI                                                                                    */
/* ------------------------------------------------------------------------------------------ */

#define FNHOST_ABI_VERSION 1

/* Status bytes (docs/ABI.md, "A call"). */
#define FNHOST_STATUS_OK 0
#define FNHOST_STATUS_ERROR 1
#define FNHOST_STATUS_INVALID_PARAMS 2

/* Log levels of the `fnhost.log` import. */
#define FNHOST_ERROR 0
#define FNHOST_WARN 1
#define FNHOST_INFO 2
#define FNHOST_DEBUG 3
#define FNHOST_TRACE 4

/* Exports a C function under `name`. */
#define FNHOST_EXPORT(name) __attribute__((export_name(name)))

/*
 * The metadata record of one function, as a string literal (or adjacent literals):
 * {"abi":1,"name":...,...} (docs/ABI.md, "Metadata"). The record goes into the
 * `fnhost.functions` custom section; records of several functions are concatenated.
 *
 * It is emitted with file-scope assembly. The documented-looking route, a global with
 * __attribute__((section(".custom_section.fnhost.functions"))), does not work with clang 14
 * or clang 19 and their wasm-ld: the global becomes an ordinary data segment (or is dropped
 * as unused), so the module has no metadata and the host refuses it. An assembler section
 * named `.custom_section.<name>` does become the custom section <name>, and wasm-ld keeps and
 * concatenates such sections from every object file.
 *
 * The literal is handed to the assembler's `.ascii` as written (stringified), so C escapes
 * mean the same there: `\"` is a quote, `\\n` the two characters of JSON's newline escape.
 */
#define FNHOST_STRINGIFY(x) #x
#define FNHOST_FUNCTION(json)                                                                  \
    __asm__(".section .custom_section.fnhost.functions,\"\",@\n"                             \
            ".ascii " FNHOST_STRINGIFY(json) "\n"                                              \
            ".text\n")

/* `fnhost.log`: writes `len` bytes at `ptr` to the host's log at `level`. */
__attribute__((import_module("fnhost"), import_name("log"))) void
fnhost_log_raw(int32_t level, const char *ptr, int32_t len);

/* ------------------------------------------------------------------------------------------ */
/* Freestanding basics: clang may call memcpy and memset for struct copies and zeroing.       */
/* ------------------------------------------------------------------------------------------ */

void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n) {
    unsigned char *d = dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}

static inline size_t fnhost_strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

static inline bool fnhost_eq(const char *a, size_t a_len, const char *b) {
    size_t b_len = fnhost_strlen(b);
    if (a_len != b_len) return false;
    for (size_t i = 0; i < a_len; i++)
        if (a[i] != b[i]) return false;
    return true;
}

/* Logs a NUL-terminated message at `level` (FNHOST_ERROR ... FNHOST_TRACE). */
static inline void fnhost_log(int level, const char *message) {
    fnhost_log_raw(level, message, (int32_t)fnhost_strlen(message));
}

/* ------------------------------------------------------------------------------------------ */
/* Memory                                                                                     */
/* ------------------------------------------------------------------------------------------ */

#ifndef FNHOST_ARENA_BYTES
#define FNHOST_ARENA_BYTES (256 * 1024)
#endif

/* Zeroed, so it is in .bss: part of the initial memory, no bytes in the module. */
static unsigned char fnhost_arena[FNHOST_ARENA_BYTES] __attribute__((aligned(16)));
static size_t fnhost_arena_used;
/* Pages from memory.grow past the arena: the free run. */
static uintptr_t fnhost_pages_next, fnhost_pages_end;

/* `size` bytes, 8-aligned, never freed (the instance is dropped after the call); NULL when
 * memory cannot grow. */
static inline void *fnhost_malloc(size_t size) {
    if (size > 0x7fffffff) return NULL;
    size = (size + 7) & ~(size_t)7;
    if (size <= FNHOST_ARENA_BYTES - fnhost_arena_used) {
        void *p = fnhost_arena + fnhost_arena_used;
        fnhost_arena_used += size;
        return p;
    }
    if (fnhost_pages_end - fnhost_pages_next < size) {
        size_t pages = (size + 65535) / 65536;
        size_t old = __builtin_wasm_memory_grow(0, pages);
        if (old == (size_t)-1) return NULL;
        uintptr_t base = (uintptr_t)old * 65536;
        if (base != fnhost_pages_end) fnhost_pages_next = base;
        fnhost_pages_end = base + pages * 65536;
    }
    void *p = (void *)fnhost_pages_next;
    fnhost_pages_next += size;
    return p;
}

/* The ABI's allocation export: where the host writes a call's params. */
FNHOST_EXPORT("fnhost_alloc") int32_t fnhost_alloc(int32_t len) {
    if (len < 0) return 0;
    return (int32_t)(uintptr_t)fnhost_malloc(len ? (size_t)len : 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Output                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* An output being written: a status byte, then JSON. */
typedef struct {
    char *buf;
    uint32_t len, cap;
} fnhost_out;

static inline void fnhost_out_reserve(fnhost_out *o, uint32_t more) {
    if (o->len + more <= o->cap) return;
    uint32_t cap = o->cap * 2 > o->len + more ? o->cap * 2 : o->len + more + 64;
    char *buf = fnhost_malloc(cap);
    if (!buf) __builtin_trap(); /* out of memory: the host reports the memory limit */
    memcpy(buf, o->buf, o->len);
    o->buf = buf;
    o->cap = cap;
}

/* Appends `len` bytes as they are. */
static inline void fnhost_put(fnhost_out *o, const char *s, size_t len) {
    fnhost_out_reserve(o, (uint32_t)len);
    memcpy(o->buf + o->len, s, len);
    o->len += (uint32_t)len;
}

/* Appends a NUL-terminated string as it is (JSON punctuation: "[", ",", "{\"a\":" ...). */
static inline void fnhost_put_raw(fnhost_out *o, const char *s) { fnhost_put(o, s, fnhost_strlen(s)); }

/* Starts an output with its status byte. */
static inline fnhost_out fnhost_out_begin(uint8_t status) {
    fnhost_out o = {0, 0, 0};
    fnhost_put(&o, (const char *)&status, 1);
    return o;
}

/* What a `fnhost_call_*` export returns: where the output is, packed as the ABI says. */
static inline int64_t fnhost_out_end(fnhost_out *o) {
    return (int64_t)(((uint64_t)(uintptr_t)o->buf << 32) | o->len);
}

/* Appends `s` (`len` bytes of UTF-8) as a JSON string, quoted and escaped. */
static inline void fnhost_put_str(fnhost_out *o, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    fnhost_put(o, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6] = {'\\', 0, '0', '0', 0, 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            if (c >= 0x20) {
                fnhost_put(o, (const char *)&s[i], 1);
                continue;
            }
            esc[1] = 'u';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        fnhost_put(o, esc, n);
    }
    fnhost_put(o, "\"", 1);
}

static inline void fnhost_put_u64(fnhost_out *o, uint64_t n) {
    char digits[20];
    int i = 20;
    do {
        digits[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    fnhost_put(o, digits + i, (size_t)(20 - i));
}

static inline void fnhost_put_i64(fnhost_out *o, int64_t n) {
    if (n < 0) fnhost_put(o, "-", 1);
    fnhost_put_u64(o, n < 0 ? 0 - (uint64_t)n : (uint64_t)n);
}

static inline void fnhost_put_bool(fnhost_out *o, bool b) { fnhost_put_raw(o, b ? "true" : "false"); }

static inline void fnhost_put_f64(fnhost_out *o, double x); /* below, with the number conversions */

/* ------------------------------------------------------------------------------------------ */
/* Exact decimal <-> double (a port of guest-sdk/sdk/src/glue/float.rs)                       */
/* ------------------------------------------------------------------------------------------ */

#define FNHOST_MAX_DIGITS 768
#define FNHOST_DECIMAL_POINT_RANGE 2047

/* 0.d1d2d3... x 10^decimal_point, digits as values 0..9. */
typedef struct {
    int num_digits;
    /* Digits kept: FNHOST_MAX_DIGITS for exact work, fewer for a quick first estimate. */
    int max_digits;
    int decimal_point;
    bool truncated;
    uint8_t digits[FNHOST_MAX_DIGITS];
} fnhost_decimal;

static inline void fnhost_decimal_trim(fnhost_decimal *d) {
    while (d->num_digits && d->digits[d->num_digits - 1] == 0) d->num_digits--;
}

/* The digits of a JSON number without its sign. */
static inline void fnhost_decimal_parse(fnhost_decimal *d, const char *s, size_t len) {
    d->max_digits = FNHOST_MAX_DIGITS;
    d->num_digits = 0;
    d->decimal_point = 0;
    d->truncated = false;
    size_t i = 0;
    bool seen_point = false;
    int fraction_digits = 0;
    for (; i < len; i++) {
        char b = s[i];
        if (b >= '0' && b <= '9') {
            if (seen_point) fraction_digits++;
            if (d->num_digits || b != '0') {
                if (d->num_digits < FNHOST_MAX_DIGITS)
                    d->digits[d->num_digits] = (uint8_t)(b - '0');
                else if (b != '0')
                    d->truncated = true;
                d->num_digits++;
            } else if (seen_point) {
                d->decimal_point--;
                fraction_digits--;
            }
        } else if (b == '.') {
            seen_point = true;
        } else {
            break;
        }
    }
    d->decimal_point += d->num_digits - fraction_digits;
    if (d->num_digits > FNHOST_MAX_DIGITS) d->num_digits = FNHOST_MAX_DIGITS;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool negative = i < len && s[i] == '-';
        if (i < len && (s[i] == '-' || s[i] == '+')) i++;
        int e = 0;
        for (; i < len; i++)
            if (e < 0x10000) e = 10 * e + (s[i] - '0');
        d->decimal_point += negative ? -e : e;
    }
    fnhost_decimal_trim(d);
}

static inline uint64_t fnhost_decimal_round(const fnhost_decimal *d) {
    if (d->num_digits == 0 || d->decimal_point < 0) return 0;
    if (d->decimal_point > 18) return UINT64_MAX;
    int dp = d->decimal_point;
    uint64_t n = 0;
    for (int i = 0; i < dp; i++) {
        n *= 10;
        if (i < d->num_digits) n += d->digits[i];
    }
    bool round_up = false;
    if (dp < d->num_digits) {
        round_up = d->digits[dp] >= 5;
        if (d->digits[dp] == 5 && dp + 1 == d->num_digits)
            round_up = d->truncated || (dp != 0 && (d->digits[dp - 1] & 1));
    }
    return n + round_up;
}

/* Multiplies by 2^shift (shift <= 60). */
static inline void fnhost_decimal_left_shift(fnhost_decimal *d, int shift) {
    if (d->num_digits == 0) return;
    static uint8_t out[FNHOST_MAX_DIGITS + 20];
    int len = 0, read = d->num_digits;
    uint64_t n = 0;
    while (read || n) {
        if (read) n += (uint64_t)d->digits[--read] << shift;
        out[len++] = (uint8_t)(n % 10);
        n /= 10;
    }
    int new_digits = len - d->num_digits;
    int keep = len < d->max_digits ? len : d->max_digits;
    for (int k = 0; k < len - keep; k++)
        if (out[k]) d->truncated = true;
    for (int k = 0; k < keep; k++) d->digits[k] = out[len - 1 - k];
    d->num_digits = keep;
    d->decimal_point += new_digits;
    fnhost_decimal_trim(d);
}

/* Divides by 2^shift (shift <= 60). */
static inline void fnhost_decimal_right_shift(fnhost_decimal *d, int shift) {
    int read = 0, write = 0;
    uint64_t n = 0;
    while ((n >> shift) == 0) {
        if (read < d->num_digits) {
            n = 10 * n + d->digits[read++];
        } else if (n == 0) {
            return;
        } else {
            while ((n >> shift) == 0) {
                n *= 10;
                read++;
            }
            break;
        }
    }
    d->decimal_point -= read - 1;
    if (d->decimal_point < -FNHOST_DECIMAL_POINT_RANGE) {
        d->num_digits = 0;
        d->decimal_point = 0;
        d->truncated = false;
        return;
    }
    uint64_t mask = ((uint64_t)1 << shift) - 1;
    while (read < d->num_digits) {
        uint8_t digit = (uint8_t)(n >> shift);
        n = 10 * (n & mask) + d->digits[read++];
        d->digits[write++] = digit;
    }
    while (n) {
        uint8_t digit = (uint8_t)(n >> shift);
        n = 10 * (n & mask);
        if (write < d->max_digits)
            d->digits[write++] = digit;
        else if (digit)
            d->truncated = true;
    }
    d->num_digits = write;
    fnhost_decimal_trim(d);
}

/* The double nearest to the (non-negative) decimal, ties to even. Consumes `d`. */
static inline double fnhost_decimal_to_f64(fnhost_decimal *d) {
    static const uint8_t powers[19] = {0, 3, 6, 9, 13, 16, 19, 23, 26, 29,
                                       33, 36, 39, 43, 46, 49, 53, 56, 59};
#define FNHOST_SHIFT(n) ((n) < 19 ? powers[(n)] : 60)
    union {
        uint64_t bits;
        double value;
    } inf = {0x7ff0000000000000ull}, out;
    if (d->num_digits == 0 || d->decimal_point < -324) return 0.0;
    if (d->decimal_point >= 310) return inf.value;
    int exp2 = 0;
    while (d->decimal_point > 0) {
        int shift = FNHOST_SHIFT(d->decimal_point);
        fnhost_decimal_right_shift(d, shift);
        if (d->decimal_point < -FNHOST_DECIMAL_POINT_RANGE) return 0.0;
        exp2 += shift;
    }
    while (d->decimal_point <= 0) {
        int shift;
        if (d->decimal_point == 0) {
            if (d->digits[0] >= 5) break;
            shift = d->digits[0] < 2 ? 2 : 1;
        } else {
            shift = FNHOST_SHIFT(-d->decimal_point);
        }
        fnhost_decimal_left_shift(d, shift);
        if (d->decimal_point > FNHOST_DECIMAL_POINT_RANGE) return inf.value;
        exp2 -= shift;
    }
#undef FNHOST_SHIFT
    exp2 -= 1;
    while (-1023 + 1 > exp2) {
        int n = -1023 + 1 - exp2;
        if (n > 60) n = 60;
        fnhost_decimal_right_shift(d, n);
        exp2 += n;
    }
    if (exp2 + 1023 >= 0x7ff) return inf.value;
    fnhost_decimal_left_shift(d, 53);
    uint64_t mantissa = fnhost_decimal_round(d);
    if (mantissa >= (uint64_t)1 << 53) {
        fnhost_decimal_right_shift(d, 1);
        exp2 += 1;
        mantissa = fnhost_decimal_round(d);
        if (exp2 + 1023 >= 0x7ff) return inf.value;
    }
    int power2 = exp2 + 1023;
    if (mantissa < (uint64_t)1 << 52) power2 -= 1;
    mantissa &= ((uint64_t)1 << 52) - 1;
    out.bits = mantissa | ((uint64_t)power2 << 52);
    return out.value;
}

/* The double nearest to a JSON number's text, ties to even (infinite past the range). */
static inline double fnhost_parse_f64(const char *s, size_t len) {
    static const double pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    bool negative = len && s[0] == '-';
    if (negative) {
        s++;
        len--;
    }
    /* Clinger's fast path: a mantissa of at most 2^53 and an exact power of ten. */
    uint64_t mantissa = 0;
    int64_t exp10 = 0;
    bool fast = true, fraction = false;
    size_t i = 0;
    for (; i < len && fast; i++) {
        char b = s[i];
        if (b >= '0' && b <= '9') {
            if (mantissa > (UINT64_MAX - 9) / 10) fast = false;
            mantissa = mantissa * 10 + (uint64_t)(b - '0');
            if (fraction) exp10--;
        } else if (b == '.') {
            fraction = true;
        } else {
            break;
        }
    }
    if (fast && i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool neg_exp = i < len && s[i] == '-';
        if (i < len && (s[i] == '-' || s[i] == '+')) i++;
        int64_t e = 0;
        for (; i < len; i++) {
            e = e * 10 + (s[i] - '0');
            if (e > 1000) fast = false;
        }
        exp10 += neg_exp ? -e : e;
    }
    double value;
    if (fast && mantissa <= (uint64_t)1 << 53 && exp10 >= -22 && exp10 <= 22) {
        value = exp10 < 0 ? (double)mantissa / pow10[-exp10] : (double)mantissa * pow10[exp10];
    } else {
        static fnhost_decimal d;
        fnhost_decimal_parse(&d, s, len);
        value = fnhost_decimal_to_f64(&d);
    }
    return negative ? -value : value;
}

/* Rounds `d` to `p` significant digits, half to even (the dropped digits decide). */
static inline void fnhost_decimal_round_to(fnhost_decimal *d, int p) {
    if (d->num_digits <= p) return;
    uint8_t next = d->digits[p];
    bool rest = d->truncated;
    for (int k = p + 1; k < d->num_digits && !rest; k++) rest = d->digits[k] != 0;
    bool up = next > 5 || (next == 5 && (rest || (p > 0 && (d->digits[p - 1] & 1))));
    d->num_digits = p;
    d->truncated = false;
    if (up) {
        int k = p - 1;
        while (k >= 0 && d->digits[k] == 9) d->digits[k--] = 0;
        if (k < 0) {
            d->digits[0] = 1;
            d->num_digits = 1;
            d->decimal_point++;
        } else {
            d->digits[k]++;
        }
    }
    fnhost_decimal_trim(d);
}

/* m x 2^e2 as a decimal of at most `max_digits` significant digits (truncated, and marked so,
 * past that). */
static inline void fnhost_decimal_of(fnhost_decimal *d, uint64_t m, int e2, int max_digits) {
    char digits[20];
    int n = 0;
    for (uint64_t v = m; v; v /= 10) digits[n++] = (char)(v % 10);
    for (int k = 0; k < n; k++) d->digits[k] = (uint8_t)digits[n - 1 - k];
    d->num_digits = n;
    d->max_digits = max_digits;
    d->decimal_point = n;
    d->truncated = false;
    fnhost_decimal_trim(d);
    for (int e = e2; e > 0; e -= 60) fnhost_decimal_left_shift(d, e > 60 ? 60 : e);
    for (int e = -e2; e > 0; e -= 60) fnhost_decimal_right_shift(d, e > 60 ? 60 : e);
}

/* Whether `value` rounded to `p` significant digits reads back as the double with `bits`. */
static inline bool fnhost_rounds_back(const fnhost_decimal *value, int p, uint64_t bits) {
    static const double pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    static fnhost_decimal check;
    check = *value;
    fnhost_decimal_round_to(&check, p);
    union {
        double value;
        uint64_t bits;
    } back;
    /* Clinger's fast path when it applies, else the exact conversion. */
    uint64_t mantissa = 0;
    for (int k = 0; k < check.num_digits; k++) mantissa = mantissa * 10 + check.digits[k];
    int exp10 = check.decimal_point - check.num_digits;
    if (mantissa <= (uint64_t)1 << 53 && exp10 >= -22 && exp10 <= 22) {
        back.value = exp10 < 0 ? (double)mantissa / pow10[-exp10] : (double)mantissa * pow10[exp10];
    } else {
        check.max_digits = FNHOST_MAX_DIGITS;
        back.value = fnhost_decimal_to_f64(&check);
    }
    return back.bits == bits;
}

/* Writes a double as the shortest decimal that parses back to it, as serde_json does: `1.0`
 * for a whole number, exponent form below 1e-6 and from 1e21 (non-finite: null). */
static inline void fnhost_put_f64(fnhost_out *o, double x) {
    union {
        double value;
        uint64_t bits;
    } u = {x};
    uint64_t exponent = (u.bits >> 52) & 0x7ff;
    if (exponent == 0x7ff) {
        fnhost_put_raw(o, "null");
        return;
    }
    if (u.bits >> 63) fnhost_put(o, "-", 1);
    uint64_t m = u.bits & (((uint64_t)1 << 52) - 1);
    if (exponent == 0 && m == 0) {
        fnhost_put(o, "0.0", 3);
        return;
    }
    int e2 = exponent ? (int)exponent - 1075 : -1074;
    if (exponent) m |= (uint64_t)1 << 52;
    /* The value m x 2^e2 as a decimal, first to 40 significant digits (cheap: the exact
     * expansion of a tiny double has over 700), then exactly if that was not enough. */
    static fnhost_decimal value, candidate;
    union {
        double value;
        uint64_t bits;
    } abs = {x};
    abs.bits &= ~((uint64_t)1 << 63);
    int p = 0;
    for (int max_digits = 40; !p; max_digits = FNHOST_MAX_DIGITS) {
        fnhost_decimal_of(&value, m, e2, max_digits);
        /* The fewest significant digits that read back as x (17 always do, from the exact
         * value); reading back is monotonic in p, so a binary search. */
        int lo = 1, hi = 17;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (fnhost_rounds_back(&value, mid, abs.bits)) hi = mid;
            else lo = mid + 1;
        }
        if (fnhost_rounds_back(&value, lo, abs.bits)) p = lo;
    }
    candidate = value;
    fnhost_decimal_round_to(&candidate, p);
    /* 0.d1d2... x 10^dp: positional for 1e-6 <= |x| < 1e21, else exponent form. */
    int dp = candidate.decimal_point, nd = candidate.num_digits;
    char text[40];
    int t = 0;
    if (dp > 21 || dp < -5) {
        text[t++] = (char)('0' + candidate.digits[0]);
        if (nd > 1) {
            text[t++] = '.';
            for (int k = 1; k < nd; k++) text[t++] = (char)('0' + candidate.digits[k]);
        }
        text[t++] = 'e';
        int e10 = dp - 1;
        if (e10 < 0) {
            text[t++] = '-';
            e10 = -e10;
        }
        char ed[4];
        int ne = 0;
        do {
            ed[ne++] = (char)('0' + e10 % 10);
            e10 /= 10;
        } while (e10);
        while (ne) text[t++] = ed[--ne];
    } else if (dp <= 0) {
        text[t++] = '0';
        text[t++] = '.';
        for (int k = 0; k < -dp; k++) text[t++] = '0';
        for (int k = 0; k < nd; k++) text[t++] = (char)('0' + candidate.digits[k]);
    } else {
        for (int k = 0; k < dp; k++) text[t++] = (char)('0' + (k < nd ? candidate.digits[k] : 0));
        /* A whole number keeps a fraction, as serde_json writes it, so clients read a float. */
        text[t++] = '.';
        if (nd > dp)
            for (int k = dp; k < nd; k++) text[t++] = (char)('0' + candidate.digits[k]);
        else
            text[t++] = '0';
    }
    fnhost_put(o, text, (size_t)t);
}

/* ------------------------------------------------------------------------------------------ */
/* Reading JSON values                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* The text of one JSON value inside the params (no surrounding whitespace). */
typedef struct {
    const char *ptr;
    uint32_t len;
} fnhost_json;

static inline bool fnhost_is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static inline size_t fnhost_skip_ws(const char *s, size_t len, size_t i) {
    while (i < len && fnhost_is_ws(s[i])) i++;
    return i;
}

/* Just past the closing quote of the string whose contents start at i; 0 when unclosed. */
static inline size_t fnhost_string_end(const char *s, size_t len, size_t i) {
    while (i < len) {
        if (s[i] == '\\')
            i += 2;
        else if (s[i] == '"')
            return i + 1;
        else
            i++;
    }
    return 0;
}

/* Where the value starting at i ends: the first top-level `,`, `]` or `}`; 0 when unclosed. */
static inline size_t fnhost_value_end(const char *s, size_t len, size_t i) {
    int depth = 0;
    while (i < len) {
        char c = s[i];
        if (c == '"') {
            i = fnhost_string_end(s, len, i + 1);
            if (!i) return 0;
            continue;
        }
        if (c == '[' || c == '{') depth++;
        else if ((c == ']' || c == '}') && depth > 0) depth--;
        else if (depth == 0 && (c == ']' || c == '}' || c == ',')) return i;
        i++;
    }
    return 0;
}

/* Whether the value is a number by JSON's grammar. */
static inline bool fnhost_json_is_number(fnhost_json v) {
    const char *s = v.ptr;
    size_t len = v.len, i = 0, start;
    if (i < len && s[i] == '-') i++;
    if (i < len && s[i] == '0') {
        i++;
    } else {
        start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') i++;
        if (i == start) return false;
    }
    if (i < len && s[i] == '.') {
        start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9') i++;
        if (i == start) return false;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-')) i++;
        start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') i++;
        if (i == start) return false;
    }
    return i == len;
}

static inline bool fnhost_json_is_null(fnhost_json v) { return fnhost_eq(v.ptr, v.len, "null"); }

/* A number as a double; false when the value is not a number (or is out of range). */
static inline bool fnhost_json_f64(fnhost_json v, double *out) {
    if (!fnhost_json_is_number(v)) return false;
    double x = fnhost_parse_f64(v.ptr, v.len);
    if (x - x != 0) return false; /* infinite: past the range of a double */
    *out = x;
    return true;
}

/* An integer (no fraction, no exponent) that fits int64_t; false otherwise. */
static inline bool fnhost_json_i64(fnhost_json v, int64_t *out) {
    if (!fnhost_json_is_number(v)) return false;
    bool negative = v.ptr[0] == '-';
    uint64_t magnitude = 0;
    for (size_t i = negative; i < v.len; i++) {
        char c = v.ptr[i];
        if (c < '0' || c > '9') return false;
        if (magnitude > (UINT64_MAX - 9) / 10) return false;
        magnitude = magnitude * 10 + (uint64_t)(c - '0');
    }
    if (magnitude > (uint64_t)INT64_MAX + negative) return false;
    *out = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
    return true;
}

static inline bool fnhost_json_bool(fnhost_json v, bool *out) {
    if (fnhost_eq(v.ptr, v.len, "true")) *out = true;
    else if (fnhost_eq(v.ptr, v.len, "false")) *out = false;
    else return false;
    return true;
}

static inline int fnhost_hex4(const char *s) {
    int n = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
        if (d < 0) return -1;
        n = n * 16 + d;
    }
    return n;
}

/* A string, unescaped into fresh memory, NUL-terminated (`*len` excludes the NUL); false when
 * the value is not a valid JSON string. */
static inline bool fnhost_json_str(fnhost_json v, char **out, size_t *len) {
    if (v.len < 2 || v.ptr[0] != '"' || v.ptr[v.len - 1] != '"') return false;
    const char *s = v.ptr + 1;
    size_t n = v.len - 2;
    char *buf = fnhost_malloc(n + 1);
    if (!buf) __builtin_trap();
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"') return false;
        if (c != '\\') {
            buf[w++] = (char)c;
            i++;
            continue;
        }
        if (i + 1 >= n) return false;
        char e = s[i + 1];
        i += 2;
        switch (e) {
        case '"': buf[w++] = '"'; continue;
        case '\\': buf[w++] = '\\'; continue;
        case '/': buf[w++] = '/'; continue;
        case 'b': buf[w++] = '\b'; continue;
        case 'f': buf[w++] = '\f'; continue;
        case 'n': buf[w++] = '\n'; continue;
        case 'r': buf[w++] = '\r'; continue;
        case 't': buf[w++] = '\t'; continue;
        case 'u': break;
        default: return false;
        }
        if (i + 4 > n) return false;
        int32_t code = fnhost_hex4(s + i);
        i += 4;
        if (code < 0 || (code >= 0xDC00 && code <= 0xDFFF)) return false;
        if (code >= 0xD800 && code <= 0xDBFF) {
            if (i + 6 > n || s[i] != '\\' || s[i + 1] != 'u') return false;
            int32_t low = fnhost_hex4(s + i + 2);
            if (low < 0xDC00 || low > 0xDFFF) return false;
            i += 6;
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
        }
        /* UTF-8; at most 4 bytes, never more than the 6 of the escape it replaces. */
        if (code < 0x80) {
            buf[w++] = (char)code;
        } else if (code < 0x800) {
            buf[w++] = (char)(0xC0 | (code >> 6));
            buf[w++] = (char)(0x80 | (code & 0x3F));
        } else if (code < 0x10000) {
            buf[w++] = (char)(0xE0 | (code >> 12));
            buf[w++] = (char)(0x80 | ((code >> 6) & 0x3F));
            buf[w++] = (char)(0x80 | (code & 0x3F));
        } else {
            buf[w++] = (char)(0xF0 | (code >> 18));
            buf[w++] = (char)(0x80 | ((code >> 12) & 0x3F));
            buf[w++] = (char)(0x80 | ((code >> 6) & 0x3F));
            buf[w++] = (char)(0x80 | (code & 0x3F));
        }
    }
    buf[w] = 0;
    *out = buf;
    *len = w;
    return true;
}

/* The elements of an array, at most `max`, into `items`; their count, or -1 when the value is
 * not an array (or has more than `max` elements). */
static inline int fnhost_json_array(fnhost_json v, fnhost_json *items, int max) {
    const char *s = v.ptr;
    size_t len = v.len;
    if (len < 2 || s[0] != '[') return -1;
    size_t i = fnhost_skip_ws(s, len, 1);
    int count = 0;
    if (i < len && s[i] == ']') return i + 1 == len ? 0 : -1;
    for (;;) {
        size_t end = fnhost_value_end(s, len, i);
        if (!end) return -1;
        size_t stop = end;
        while (stop > i && fnhost_is_ws(s[stop - 1])) stop--;
        if (stop == i || count == max) return -1;
        items[count].ptr = s + i;
        items[count].len = (uint32_t)(stop - i);
        count++;
        if (s[end] == ']') return end + 1 == len ? count : -1;
        if (s[end] != ',') return -1;
        i = fnhost_skip_ws(s, len, end + 1);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Params                                                                                     */
/* ------------------------------------------------------------------------------------------ */

#ifndef FNHOST_MAX_PARAMS
#define FNHOST_MAX_PARAMS 16
#endif

/* A call's params matched to the function's parameter names. */
typedef struct {
    const char *const *names;
    int count;
    /* Each parameter's value; len 0 when it was not given. */
    fnhost_json values[FNHOST_MAX_PARAMS];
    /* After a failed fnhost_params_parse or fnhost_param_*: the status-2 output to return. */
    int64_t reject;
} fnhost_params;

/* Sets p->reject to a status-2 output: "<prefix><name><suffix>", naming `param` (may be NULL). */
static inline bool fnhost_reject(fnhost_params *p, const char *prefix, const char *name, size_t name_len,
                          const char *suffix, bool name_param) {
    fnhost_out o = fnhost_out_begin(FNHOST_STATUS_INVALID_PARAMS);
    size_t total = fnhost_strlen(prefix) + name_len + fnhost_strlen(suffix);
    char *message = fnhost_malloc(total + 1);
    if (!message) __builtin_trap();
    size_t w = 0;
    for (const char *c = prefix; *c; c++) message[w++] = *c;
    for (size_t k = 0; k < name_len; k++) message[w++] = name[k];
    for (const char *c = suffix; *c; c++) message[w++] = *c;
    fnhost_put_raw(&o, "{\"message\":");
    fnhost_put_str(&o, message, w);
    if (name_param) {
        fnhost_put_raw(&o, ",\"param\":");
        fnhost_put_str(&o, name, name_len);
    }
    fnhost_put_raw(&o, "}");
    p->reject = fnhost_out_end(&o);
    return false;
}

/* Splits the params the host passed (`ptr`, `len`, as the export received them) over `names`.
 * False, with p->reject set, when they do not fit: not an array or an object, more than
 * `count` positional values, an unknown or repeated name. */
static inline bool fnhost_params_parse(fnhost_params *p, int32_t ptr, int32_t len,
                                const char *const *names, int count) {
    const char *s = (const char *)(uintptr_t)ptr;
    size_t n = len > 0 ? (size_t)len : 0;
    p->names = names;
    p->count = count;
    p->reject = 0;
    for (int k = 0; k < FNHOST_MAX_PARAMS; k++) p->values[k].len = 0;
    if (count > FNHOST_MAX_PARAMS) __builtin_trap();
    size_t i = fnhost_skip_ws(s, n, 0);
    while (n > i && fnhost_is_ws(s[n - 1])) n--;
    if (i == n) return true; /* no params */
    fnhost_json whole = {s + i, (uint32_t)(n - i)};
    if (s[i] == '[') {
        fnhost_json items[FNHOST_MAX_PARAMS + 1];
        int given = fnhost_json_array(whole, items, FNHOST_MAX_PARAMS + 1);
        if (given < 0)
            return fnhost_reject(p, "params are not valid JSON (or have too many values)", "", 0,
                                 "", false);
        if (given > count) return fnhost_reject(p, "too many parameters", "", 0, "", false);
        for (int k = 0; k < given; k++) p->values[k] = items[k];
        return true;
    }
    if (s[i] != '{') return fnhost_reject(p, "params must be an array or an object", "", 0, "", false);
    i = fnhost_skip_ws(s, n, i + 1);
    if (i < n && s[i] == '}')
        return i + 1 == n || fnhost_reject(p, "params are not valid JSON", "", 0, "", false);
    for (;;) {
        if (i >= n || s[i] != '"') break;
        size_t key_end = fnhost_string_end(s, n, i + 1);
        if (!key_end) break;
        /* Keys are compared as written: a name with escapes is not one of ours. */
        const char *key = s + i + 1;
        size_t key_len = key_end - i - 2;
        i = fnhost_skip_ws(s, n, key_end);
        if (i >= n || s[i] != ':') break;
        i = fnhost_skip_ws(s, n, i + 1);
        size_t end = fnhost_value_end(s, n, i);
        if (!end) break;
        size_t stop = end;
        while (stop > i && fnhost_is_ws(s[stop - 1])) stop--;
        if (stop == i) break;
        int index = -1;
        for (int k = 0; k < count; k++)
            if (fnhost_eq(key, key_len, names[k])) index = k;
        if (index < 0) return fnhost_reject(p, "unknown parameter `", key, key_len, "`", true);
        if (p->values[index].len)
            return fnhost_reject(p, "parameter `", key, key_len, "` given more than once", true);
        p->values[index].ptr = s + i;
        p->values[index].len = (uint32_t)(stop - i);
        if (s[end] == '}') return end + 1 == n ||
                                  fnhost_reject(p, "params are not valid JSON", "", 0, "", false);
        if (s[end] != ',') break;
        i = fnhost_skip_ws(s, n, end + 1);
    }
    return fnhost_reject(p, "params are not valid JSON", "", 0, "", false);
}

/* Whether parameter `index` was given, and not as null (for optional parameters). */
static inline bool fnhost_param_given(const fnhost_params *p, int index) {
    return p->values[index].len && !fnhost_json_is_null(p->values[index]);
}

/* The value of a required parameter; false with p->reject set when it is missing. */
static inline bool fnhost_param(fnhost_params *p, int index, fnhost_json *out) {
    const char *name = p->names[index];
    if (!p->values[index].len)
        return fnhost_reject(p, "missing parameter `", name, fnhost_strlen(name), "`", true);
    *out = p->values[index];
    return true;
}

static inline bool fnhost_wrong_type(fnhost_params *p, int index, const char *expected) {
    const char *name = p->names[index];
    return fnhost_reject(p, "parameter `", name, fnhost_strlen(name), expected, true);
}

/* Required parameters of each type: false, with p->reject set, when missing or of another
 * type. For an optional one, check fnhost_param_given first. */
static inline bool fnhost_param_f64(fnhost_params *p, int index, double *out) {
    fnhost_json v;
    return fnhost_param(p, index, &v) &&
           (fnhost_json_f64(v, out) || fnhost_wrong_type(p, index, "`: expected a number"));
}

static inline bool fnhost_param_i64(fnhost_params *p, int index, int64_t *out) {
    fnhost_json v;
    return fnhost_param(p, index, &v) &&
           (fnhost_json_i64(v, out) ||
            fnhost_wrong_type(p, index, "`: expected an integer that fits 64 bits"));
}

static inline bool fnhost_param_bool(fnhost_params *p, int index, bool *out) {
    fnhost_json v;
    return fnhost_param(p, index, &v) &&
           (fnhost_json_bool(v, out) || fnhost_wrong_type(p, index, "`: expected a boolean"));
}

static inline bool fnhost_param_str(fnhost_params *p, int index, char **out, size_t *len) {
    fnhost_json v;
    return fnhost_param(p, index, &v) &&
           (fnhost_json_str(v, out, len) || fnhost_wrong_type(p, index, "`: expected a string"));
}

/* An array parameter's elements (at most `max`) into `items`, their count into `*count`; read
 * each with fnhost_json_f64/_i64/_bool/_str. */
static inline bool fnhost_param_array(fnhost_params *p, int index, fnhost_json *items, int max,
                               int *count) {
    fnhost_json v;
    if (!fnhost_param(p, index, &v)) return false;
    *count = fnhost_json_array(v, items, max);
    return *count >= 0 || fnhost_wrong_type(p, index, "`: expected an array (of bounded length)");
}

/* An array of numbers, at most `max`, into `out`. */
static inline bool fnhost_param_f64_array(fnhost_params *p, int index, double *out, int max,
                                   int *count) {
    fnhost_json items[64];
    if (max > 64) max = 64;
    if (!fnhost_param_array(p, index, items, max, count)) return false;
    for (int k = 0; k < *count; k++)
        if (!fnhost_json_f64(items[k], &out[k]))
            return fnhost_wrong_type(p, index, "`: expected an array of numbers");
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Returning                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static inline int64_t fnhost_return_f64(double x) {
    fnhost_out o = fnhost_out_begin(FNHOST_STATUS_OK);
    fnhost_put_f64(&o, x);
    return fnhost_out_end(&o);
}

static inline int64_t fnhost_return_i64(int64_t n) {
    fnhost_out o = fnhost_out_begin(FNHOST_STATUS_OK);
    fnhost_put_i64(&o, n);
    return fnhost_out_end(&o);
}

static inline int64_t fnhost_return_bool(bool b) {
    fnhost_out o = fnhost_out_begin(FNHOST_STATUS_OK);
    fnhost_put_bool(&o, b);
    return fnhost_out_end(&o);
}

static inline int64_t fnhost_return_str(const char *s, size_t len) {
    fnhost_out o = fnhost_out_begin(FNHOST_STATUS_OK);
    fnhost_put_str(&o, s, len);
    return fnhost_out_end(&o);
}

/* A guest error (status 1) with this message; `data_json`, when not NULL, is JSON text that
 * becomes the error's data. */
static inline int64_t fnhost_error_full(const char *message, bool has_code, int64_t code,
                                 const char *data_json) {
    fnhost_out o = fnhost_out_begin(FNHOST_STATUS_ERROR);
    fnhost_put_raw(&o, "{\"message\":");
    fnhost_put_str(&o, message, fnhost_strlen(message));
    if (has_code) {
        fnhost_put_raw(&o, ",\"code\":");
        fnhost_put_i64(&o, code);
    }
    if (data_json) {
        fnhost_put_raw(&o, ",\"data\":");
        fnhost_put_raw(&o, data_json);
    }
    fnhost_put_raw(&o, "}");
    return fnhost_out_end(&o);
}

static inline int64_t fnhost_error(const char *message) {
    return fnhost_error_full(message, false, 0, NULL);
}

static inline int64_t fnhost_error_code(const char *message, int64_t code) {
    return fnhost_error_full(message, true, code, NULL);
}

#endif /* FNHOST_H */
