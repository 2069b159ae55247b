/*
 * Nanosecond timestamps: lutimens (utimensat + AT_SYMLINK_NOFOLLOW) and
 * futimens, with UTIME_NOW / UTIME_OMIT.
 *
 * Node's lutimes/futimes take seconds as doubles, which cannot carry full
 * nanosecond precision for current dates and cannot express "leave this
 * one unchanged" (UTIME_OMIT).
 */
#include "exports.h"

#include "args.h"
#include "errors.h"
#include "op.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

static void exec_utimens(lf_op *op) {
  int rc = op->fd >= 0 ? futimens(op->fd, op->times)
                       : utimensat(AT_FDCWD, op->path, op->times, AT_SYMLINK_NOFOLLOW);
  if (rc != 0) op->err = errno;
}

/* (path | fd, atime, mtime) -> undefined */
static napi_value utimens_impl(napi_env env, napi_callback_info info, bool by_fd) {
  napi_value argv[3];
  void *data = NULL;
  if (!lf_get_args(env, info, 3, argv, &data)) return NULL;
  lf_op *op LF_AUTO_OP = lf_op_new(env, by_fd ? "futimens" : "lutimens", exec_utimens, NULL);
  if (op == NULL) return NULL;
  if (by_fd) {
    if (!lf_arg_fd(env, argv[0], "fd", &op->fd)) return NULL;
  } else {
    if (!lf_arg_string(env, argv[0], "path", &op->path)) return NULL;
  }
  if (!lf_arg_timespec(env, argv[1], "atime", &op->times[0])) return NULL;
  if (!lf_arg_timespec(env, argv[2], "mtime", &op->times[1])) return NULL;
  return lf_op_run(env, lf_op_steal(&op), LF_IS_SYNC(data));
}

static napi_value js_lutimens(napi_env env, napi_callback_info info) { return utimens_impl(env, info, false); }
static napi_value js_futimens(napi_env env, napi_callback_info info) { return utimens_impl(env, info, true); }

bool lf_init_times(napi_env env, napi_value exports, napi_value constants) {
  return lf_export_op(env, exports, "lutimens", js_lutimens) &&
         lf_export_op(env, exports, "futimens", js_futimens) &&
         lf_export_const(env, constants, "UTIME_NOW", UTIME_NOW) &&
         lf_export_const(env, constants, "UTIME_OMIT", UTIME_OMIT);
}
