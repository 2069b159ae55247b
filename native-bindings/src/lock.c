/*
 * flock(2) on a file descriptor.
 *
 * The layer cache coordinates processes with advisory locks on lock files:
 * the kernel drops a flock when its holder dies, so a crashed process never
 * leaves a lock behind that others must guess is stale.  A blocking
 * LOCK_EX/LOCK_SH waits on a thread-pool thread, never on the JS thread.
 */
#include "exports.h"

#include "args.h"
#include "errors.h"
#include "op.h"

#include <errno.h>
#include <sys/file.h>

static void exec_flock(lf_op *op) {
  int rc;
  do {
    rc = flock(op->fd, (int)op->flags);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) op->err = errno;
}

/* (fd, operation) -> undefined; EAGAIN (EWOULDBLOCK) with LOCK_NB when held elsewhere. */
static napi_value js_flock(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  void *data = NULL;
  if (!lf_get_args(env, info, 2, argv, &data)) return NULL;
  lf_op *op LF_AUTO_OP = lf_op_new(env, "flock", exec_flock, NULL);
  if (op == NULL) return NULL;
  if (!lf_arg_fd(env, argv[0], "fd", &op->fd)) return NULL;
  if (!lf_arg_uint32(env, argv[1], "operation", false, 0, &op->flags)) return NULL;
  return lf_op_run(env, lf_op_steal(&op), LF_IS_SYNC(data));
}

bool lf_init_lock(napi_env env, napi_value exports, napi_value constants) {
  return lf_export_op(env, exports, "flock", js_flock) &&
         lf_export_const(env, constants, "LOCK_SH", LOCK_SH) &&
         lf_export_const(env, constants, "LOCK_EX", LOCK_EX) &&
         lf_export_const(env, constants, "LOCK_NB", LOCK_NB) &&
         lf_export_const(env, constants, "LOCK_UN", LOCK_UN);
}
