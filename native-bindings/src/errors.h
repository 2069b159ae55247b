/*
 * Error helpers: Node-fs-shaped errno errors and Node-style argument errors.
 *
 * Every helper that "throws" leaves a pending JS exception; callers then
 * return NULL from their napi_callback.
 */
#ifndef LAYERFS_ERRORS_H
#define LAYERFS_ERRORS_H

#include <node_api.h>

/*
 * Build an Error like Node's fs errors:
 *   message "ENOENT: no such file or directory, lgetxattr '/x'"
 *   (with " -> '<dest>'" appended when dest is given),
 *   properties errno (negative), code, syscall, path?, dest?.
 * path and dest may be NULL.  Returns NULL (exception pending) on failure.
 */
napi_value lf_errno_error(napi_env env, int err, const char *syscall,
                          const char *path, const char *dest);

/* Same as lf_errno_error() but throws the error. */
void lf_throw_errno(napi_env env, int err, const char *syscall,
                    const char *path, const char *dest);

/* TypeError / RangeError with a Node-style `code` (ERR_INVALID_ARG_TYPE ...). */
void lf_throw_type_error(napi_env env, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void lf_throw_range_error(napi_env env, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Make sure an exception is pending after a failed napi_* call: if the call
 * did not already throw, throw a generic Error describing the status.
 */
void lf_throw_napi_status(napi_env env, napi_status status);

/* Evaluate a napi_* call; on failure ensure an exception and return NULL. */
#define LF_CALL(env, call)                                                     \
  do {                                                                         \
    napi_status lf_status_ = (call);                                           \
    if (lf_status_ != napi_ok) {                                               \
      lf_throw_napi_status((env), lf_status_);                                 \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

/* Same, for functions returning bool (false = exception pending). */
#define LF_CALL_BOOL(env, call)                                                \
  do {                                                                         \
    napi_status lf_status_ = (call);                                           \
    if (lf_status_ != napi_ok) {                                               \
      lf_throw_napi_status((env), lf_status_);                                 \
      return false;                                                            \
    }                                                                          \
  } while (0)

#endif /* LAYERFS_ERRORS_H */
