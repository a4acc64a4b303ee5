/*
 * cmath: an fnhost guest written in C, with guest-sdk/c/fnhost.h and nothing else.
 *
 * Four functions show what the header gives: numbers in and out (divide), an array in and a
 * guest error with a code and data (mean), an array out and an optional parameter (scale), and
 * strings and booleans (greet). Every function takes its params by position or by name, as
 * the Rust SDK's do. Build: ./build.sh (clang and lld, installed when missing).
 */
#include "../../guest-sdk/c/fnhost.h"

/* divide(x, y): x / y; dividing by zero is a guest error, and a warning in the host's log. */
FNHOST_FUNCTION(
    "{\"abi\":1,\"name\":\"divide\",\"doc\":\"Divides x by y.\\n\\nDividing by zero is an "
    "error, not a trap.\",\"params\":[{\"name\":\"x\",\"schema\":{\"type\":\"number\"},"
    "\"required\":true},{\"name\":\"y\",\"schema\":{\"type\":\"number\"},\"required\":true}],"
    "\"result\":{\"type\":\"number\"},\"raw\":false}");

FNHOST_EXPORT("fnhost_call_divide") int64_t divide(int32_t ptr, int32_t len) {
    static const char *const names[] = {"x", "y"};
    fnhost_params p;
    double x, y;
    if (!fnhost_params_parse(&p, ptr, len, names, 2) || !fnhost_param_f64(&p, 0, &x) ||
        !fnhost_param_f64(&p, 1, &y))
        return p.reject;
    if (y == 0) {
        fnhost_log(FNHOST_WARN, "cmath.divide: division by zero refused");
        return fnhost_error("division by zero");
    }
    return fnhost_return_f64(x / y);
}

/* mean(values): the arithmetic mean; no values is an error with a code and data. */
FNHOST_FUNCTION(
    "{\"abi\":1,\"name\":\"mean\",\"doc\":\"The arithmetic mean of at most 64 numbers.\","
    "\"params\":[{\"name\":\"values\",\"schema\":{\"type\":\"array\",\"items\":"
    "{\"type\":\"number\"}},\"required\":true}],\"result\":{\"type\":\"number\"},"
    "\"raw\":false}");

FNHOST_EXPORT("fnhost_call_mean") int64_t mean(int32_t ptr, int32_t len) {
    static const char *const names[] = {"values"};
    fnhost_params p;
    double values[64];
    int count;
    if (!fnhost_params_parse(&p, ptr, len, names, 1) ||
        !fnhost_param_f64_array(&p, 0, values, 64, &count))
        return p.reject;
    if (count == 0)
        return fnhost_error_full("the mean of no values is undefined", true, 4001,
                                 "{\"count\":0}");
    double sum = 0;
    for (int k = 0; k < count; k++) sum += values[k];
    return fnhost_return_f64(sum / count);
}

/* scale(values, factor?): each value times factor (1 when left out). */
FNHOST_FUNCTION(
    "{\"abi\":1,\"name\":\"scale\",\"doc\":\"Multiplies each of at most 64 numbers by factor "
    "(1 when left out).\",\"params\":[{\"name\":\"values\",\"schema\":{\"type\":\"array\","
    "\"items\":{\"type\":\"number\"}},\"required\":true},{\"name\":\"factor\",\"schema\":"
    "{\"type\":\"number\"},\"required\":false}],\"result\":{\"type\":\"array\",\"items\":"
    "{\"type\":\"number\"}},\"raw\":false}");

FNHOST_EXPORT("fnhost_call_scale") int64_t scale(int32_t ptr, int32_t len) {
    static const char *const names[] = {"values", "factor"};
    fnhost_params p;
    double values[64], factor = 1;
    int count;
    if (!fnhost_params_parse(&p, ptr, len, names, 2) ||
        !fnhost_param_f64_array(&p, 0, values, 64, &count) ||
        (fnhost_param_given(&p, 1) && !fnhost_param_f64(&p, 1, &factor)))
        return p.reject;
    fnhost_out o = fnhost_out_begin(FNHOST_STATUS_OK);
    fnhost_put_raw(&o, "[");
    for (int k = 0; k < count; k++) {
        if (k) fnhost_put_raw(&o, ",");
        fnhost_put_f64(&o, values[k] * factor);
    }
    fnhost_put_raw(&o, "]");
    return fnhost_out_end(&o);
}

/* greet(name, shout?): a greeting, in capitals when shout is true. */
FNHOST_FUNCTION(
    "{\"abi\":1,\"name\":\"greet\",\"doc\":\"Greets someone; in capitals when shout is true.\","
    "\"params\":[{\"name\":\"name\",\"schema\":{\"type\":\"string\"},\"required\":true},"
    "{\"name\":\"shout\",\"schema\":{\"type\":\"boolean\"},\"required\":false}],"
    "\"result\":{\"type\":\"string\"},\"raw\":false}");

FNHOST_EXPORT("fnhost_call_greet") int64_t greet(int32_t ptr, int32_t len) {
    static const char *const names[] = {"name", "shout"};
    fnhost_params p;
    char *name;
    size_t name_len;
    bool shout = false;
    if (!fnhost_params_parse(&p, ptr, len, names, 2) ||
        !fnhost_param_str(&p, 0, &name, &name_len) ||
        (fnhost_param_given(&p, 1) && !fnhost_param_bool(&p, 1, &shout)))
        return p.reject;
    fnhost_log(FNHOST_INFO, "cmath.greet called");
    fnhost_out o = fnhost_out_begin(FNHOST_STATUS_OK);
    const char *hello = shout ? "HELLO, " : "Hello, ";
    size_t hello_len = 7;
    char *text = fnhost_malloc(hello_len + name_len + 1);
    if (!text) __builtin_trap();
    memcpy(text, hello, hello_len);
    for (size_t k = 0; k < name_len; k++) {
        char c = name[k];
        text[hello_len + k] = shout && c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
    }
    text[hello_len + name_len] = shout ? '!' : '.';
    fnhost_put_str(&o, text, hello_len + name_len + 1);
    return fnhost_out_end(&o);
}
