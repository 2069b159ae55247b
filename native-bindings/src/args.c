/* Argument validation: wrong types become TypeErrors, never crashes. */
#include "args.h"

#include "errors.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* JavaScript's Number.MAX_SAFE_INTEGER. */
#define LF_MAX_SAFE_INTEGER 9007199254740991.0

static const char *type_name(napi_valuetype type) {
  switch (type) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_object: return "object";
    case napi_function: return "function";
    case napi_external: return "external";
    case napi_bigint: return "bigint";
  }
  return "unknown";
}

static bool type_of(napi_env env, napi_value value, napi_valuetype *type) {
  LF_CALL_BOOL(env, napi_typeof(env, value, type));
  return true;
}

static bool throw_type(napi_env env, const char *what, const char *expected,
                       napi_valuetype got) {
  lf_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                      "The \"%s\" argument must be %s. Received type %s",
                      what, expected, type_name(got));
  return false;
}

bool lf_get_args(napi_env env, napi_callback_info info, size_t max,
                 napi_value *argv, void **data) {
  size_t argc = max;
  LF_CALL_BOOL(env, napi_get_cb_info(env, info, &argc, argv, NULL, data));
  return true;
}

bool lf_arg_string(napi_env env, napi_value value, const char *what, char **out) {
  napi_valuetype type;
  if (!type_of(env, value, &type)) return false;
  if (type != napi_string) return throw_type(env, what, "of type string", type);

  size_t len = 0;
  LF_CALL_BOOL(env, napi_get_value_string_utf8(env, value, NULL, 0, &len));
  char *str = malloc(len + 1);
  if (str == NULL) {
    napi_throw_error(env, "ENOMEM", "layerfs_native: out of memory");
    return false;
  }
  size_t copied = 0;
  napi_status status = napi_get_value_string_utf8(env, value, str, len + 1, &copied);
  if (status != napi_ok) {
    free(str);
    lf_throw_napi_status(env, status);
    return false;
  }
  /* The kernel would silently truncate at the first NUL: refuse instead. */
  if (strlen(str) != copied) {
    free(str);
    lf_throw_type_error(env, "ERR_INVALID_ARG_VALUE",
                        "The argument '%s' must be a string without null bytes", what);
    return false;
  }
  *out = str;
  return true;
}

/* An integral number in [min, max]. */
static bool arg_integer(napi_env env, napi_value value, const char *what,
                        double min, double max, double *out) {
  napi_valuetype type;
  if (!type_of(env, value, &type)) return false;
  if (type != napi_number) return throw_type(env, what, "of type number", type);
  double d;
  LF_CALL_BOOL(env, napi_get_value_double(env, value, &d));
  /* Range first so the int64 conversion below is well defined (|d| <= 2^53). */
  if (!isfinite(d) || d < min || d > max || (double)(int64_t)d != d) {
    lf_throw_range_error(env, "ERR_OUT_OF_RANGE",
                         "The value of \"%s\" is out of range. It must be an integer >= %.0f && <= %.0f. Received %.15g",
                         what, min, max, d);
    return false;
  }
  *out = d;
  return true;
}

bool lf_arg_fd(napi_env env, napi_value value, const char *what, int *out) {
  double d;
  if (!arg_integer(env, value, what, 0, 2147483647.0, &d)) return false;
  *out = (int)d;
  return true;
}

bool lf_arg_uint32(napi_env env, napi_value value, const char *what,
                   bool optional, uint32_t dflt, uint32_t *out) {
  if (optional) {
    napi_valuetype type;
    if (!type_of(env, value, &type)) return false;
    if (type == napi_undefined) {
      *out = dflt;
      return true;
    }
  }
  double d;
  if (!arg_integer(env, value, what, 0, 4294967295.0, &d)) return false;
  *out = (uint32_t)d;
  return true;
}

bool lf_arg_bytes(napi_env env, napi_value value, const char *what,
                  void **data, size_t *len) {
  bool is_typedarray = false, is_dataview = false;
  LF_CALL_BOOL(env, napi_is_typedarray(env, value, &is_typedarray));
  if (is_typedarray) {
    napi_typedarray_type ta_type;
    size_t length = 0;
    void *ptr = NULL;
    LF_CALL_BOOL(env, napi_get_typedarray_info(env, value, &ta_type, &length, &ptr, NULL, NULL));
    size_t elem = 1;
    switch (ta_type) {
      case napi_int8_array: case napi_uint8_array: case napi_uint8_clamped_array: elem = 1; break;
      case napi_int16_array: case napi_uint16_array: elem = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: elem = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: elem = 8; break;
    }
    *data = ptr;
    *len = length * elem;
    return true;
  }
  LF_CALL_BOOL(env, napi_is_dataview(env, value, &is_dataview));
  if (is_dataview) {
    LF_CALL_BOOL(env, napi_get_dataview_info(env, value, len, data, NULL, NULL));
    return true;
  }
  napi_valuetype type;
  if (!type_of(env, value, &type)) return false;
  return throw_type(env, what, "an instance of Buffer, TypedArray, or DataView", type);
}

bool lf_arg_dev(napi_env env, napi_value value, const char *what, uint64_t *out) {
  napi_valuetype type;
  if (!type_of(env, value, &type)) return false;
  if (type == napi_bigint) {
    bool lossless = false;
    uint64_t v = 0;
    LF_CALL_BOOL(env, napi_get_value_bigint_uint64(env, value, &v, &lossless));
    if (!lossless) {
      lf_throw_range_error(env, "ERR_OUT_OF_RANGE",
                           "The value of \"%s\" is out of range. It must be >= 0n && < 2n ** 64n", what);
      return false;
    }
    *out = v;
    return true;
  }
  if (type != napi_number) return throw_type(env, what, "of type number or bigint", type);
  double d;
  if (!arg_integer(env, value, what, 0, LF_MAX_SAFE_INTEGER, &d)) return false;
  *out = (uint64_t)d;
  return true;
}

bool lf_arg_timespec(napi_env env, napi_value value, const char *what,
                     struct timespec *out) {
  napi_valuetype type;
  if (!type_of(env, value, &type)) return false;
  if (type != napi_object) {
    return throw_type(env, what, "an object like { sec: number, nsec: number }", type);
  }

  char name[96];
  napi_value nsec_value, sec_value;
  LF_CALL_BOOL(env, napi_get_named_property(env, value, "nsec", &nsec_value));
  snprintf(name, sizeof name, "%s.nsec", what);
  double nsec;
  if (!arg_integer(env, nsec_value, name, 0, (double)UTIME_NOW, &nsec)) return false;
  if ((long)nsec == UTIME_NOW || (long)nsec == UTIME_OMIT) {
    /* The kernel ignores tv_sec for these; so do we (sec may be absent). */
    out->tv_sec = 0;
    out->tv_nsec = (long)nsec;
    return true;
  }
  if (nsec > 999999999.0) {
    lf_throw_range_error(env, "ERR_OUT_OF_RANGE",
                         "The value of \"%s\" is out of range. It must be an integer >= 0 && <= 999999999, "
                         "or UTIME_NOW / UTIME_OMIT. Received %.0f", name, nsec);
    return false;
  }

  LF_CALL_BOOL(env, napi_get_named_property(env, value, "sec", &sec_value));
  snprintf(name, sizeof name, "%s.sec", what);
  double sec;
  if (!arg_integer(env, sec_value, name, -LF_MAX_SAFE_INTEGER, LF_MAX_SAFE_INTEGER, &sec)) return false;
  out->tv_sec = (time_t)sec;
  out->tv_nsec = (long)nsec;
  return true;
}
