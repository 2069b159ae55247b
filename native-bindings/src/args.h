/*
 * Argument validation for the exported functions.
 *
 * Each lf_arg_* returns true on success.  On failure it throws a Node-style
 * TypeError/RangeError (code ERR_INVALID_ARG_TYPE / ERR_INVALID_ARG_VALUE /
 * ERR_OUT_OF_RANGE) and returns false; the caller returns NULL.
 * `what` is the argument name used in messages, e.g. "path".
 */
#ifndef LAYERFS_ARGS_H
#define LAYERFS_ARGS_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* free() helper for __attribute__((cleanup)): `char *s LF_AUTOFREE = ...`. */
static inline void lf_free_ptr(void *p) { free(*(void **)p); }
#define LF_AUTOFREE __attribute__((cleanup(lf_free_ptr)))

/* Fetch up to `max` arguments (missing ones are `undefined`) and the callback data. */
bool lf_get_args(napi_env env, napi_callback_info info, size_t max,
                 napi_value *argv, void **data);

/* A string without embedded NUL bytes, copied to a malloc'd C string (*out). */
bool lf_arg_string(napi_env env, napi_value value, const char *what, char **out);

/* A file descriptor: integer number in [0, INT32_MAX]. */
bool lf_arg_fd(napi_env env, napi_value value, const char *what, int *out);

/* An integer number in [0, UINT32_MAX]; `undefined` gives `dflt` if optional. */
bool lf_arg_uint32(napi_env env, napi_value value, const char *what,
                   bool optional, uint32_t dflt, uint32_t *out);

/* Bytes of any ArrayBufferView (Buffer, Uint8Array, DataView, ...), borrowed. */
bool lf_arg_bytes(napi_env env, napi_value value, const char *what,
                  void **data, size_t *len);

/* A device number: non-negative safe-integer number or a bigint < 2^64. */
bool lf_arg_dev(napi_env env, napi_value value, const char *what, uint64_t *out);

/* A `{ sec, nsec }` object; nsec may be UTIME_NOW / UTIME_OMIT (sec ignored then). */
bool lf_arg_timespec(napi_env env, napi_value value, const char *what,
                     struct timespec *out);

#endif /* LAYERFS_ARGS_H */
