/*
 * mknod(2) with a device number, plus glibc's makedev/major/minor.
 *
 * Node cannot create device nodes or FIFOs at all.  The dev_t helpers are
 * computed here with the libc macros so the encoding is exactly what the
 * kernel / stat() use.  mknod never follows a symlink at the final
 * component (an existing link gives EEXIST).  The mode is subject to umask.
 */
#include "exports.h"

#include "args.h"
#include "errors.h"
#include "op.h"

#include <errno.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>

#define LF_MAX_SAFE_INTEGER 9007199254740991ULL

static void exec_mknod(lf_op *op) {
  if (mknod(op->path, (mode_t)op->mode, (dev_t)op->dev) != 0) op->err = errno;
}

/* (path, mode, dev) -> undefined */
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  void *data = NULL;
  if (!lf_get_args(env, info, 3, argv, &data)) return NULL;
  lf_op *op LF_AUTO_OP = lf_op_new(env, "mknod", exec_mknod, NULL);
  if (op == NULL) return NULL;
  if (!lf_arg_string(env, argv[0], "path", &op->path)) return NULL;
  if (!lf_arg_uint32(env, argv[1], "mode", false, 0, &op->mode)) return NULL;
  if (!lf_arg_dev(env, argv[2], "dev", &op->dev)) return NULL;
  return lf_op_run(env, lf_op_steal(&op), LF_IS_SYNC(data));
}

/* (major, minor) -> number */
static napi_value js_makedev(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!lf_get_args(env, info, 2, argv, NULL)) return NULL;
  uint32_t maj, min;
  if (!lf_arg_uint32(env, argv[0], "major", false, 0, &maj)) return NULL;
  if (!lf_arg_uint32(env, argv[1], "minor", false, 0, &min)) return NULL;
  uint64_t dev = (uint64_t)makedev(maj, min);
  if (dev > LF_MAX_SAFE_INTEGER) {
    /* Only for majors >= 2^21; Linux itself supports 12-bit majors. */
    lf_throw_range_error(env, "ERR_OUT_OF_RANGE",
                         "makedev(%u, %u) does not fit in a JavaScript number", maj, min);
    return NULL;
  }
  napi_value result;
  LF_CALL(env, napi_create_int64(env, (int64_t)dev, &result));
  return result;
}

/* (dev: number | bigint) -> number; want_major picks major() over minor(). */
static napi_value dev_part(napi_env env, napi_callback_info info, bool want_major) {
  napi_value argv[1];
  if (!lf_get_args(env, info, 1, argv, NULL)) return NULL;
  uint64_t dev;
  if (!lf_arg_dev(env, argv[0], "dev", &dev)) return NULL;
  uint32_t part = want_major ? (uint32_t)major((dev_t)dev) : (uint32_t)minor((dev_t)dev);
  napi_value result;
  LF_CALL(env, napi_create_uint32(env, part, &result));
  return result;
}

static napi_value js_major(napi_env env, napi_callback_info info) { return dev_part(env, info, true); }
static napi_value js_minor(napi_env env, napi_callback_info info) { return dev_part(env, info, false); }

bool lf_init_mknod(napi_env env, napi_value exports, napi_value constants) {
  (void)constants; /* S_IF* already live in fs.constants */
  return lf_export_op(env, exports, "mknod", js_mknod) &&
         lf_export_fn(env, exports, "makedev", js_makedev) &&
         lf_export_fn(env, exports, "major", js_major) &&
         lf_export_fn(env, exports, "minor", js_minor);
}
