/*
 * dup2(2): point one file descriptor at what another refers to.
 *
 * The mount daemon is started before the command that starts it knows where
 * the daemon's log goes (that overlap is what makes a mount quick); once it
 * knows, the daemon points its own stderr at the log, so that everything
 * written there -- including what Node or V8 print on a fatal error -- lands
 * in the log.  Node has no way to replace fd 2.
 */
#include "exports.h"

#include "args.h"
#include "errors.h"
#include "op.h"

#include <errno.h>
#include <unistd.h>

static void exec_dup2(lf_op *op) {
  int rc;
  do {
    rc = dup2(op->fd, (int)op->flags);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) op->err = errno;
}

/* (oldfd, newfd) -> undefined */
static napi_value js_dup2(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  void *data = NULL;
  if (!lf_get_args(env, info, 2, argv, &data)) return NULL;
  lf_op *op LF_AUTO_OP = lf_op_new(env, "dup2", exec_dup2, NULL);
  if (op == NULL) return NULL;
  if (!lf_arg_fd(env, argv[0], "oldfd", &op->fd)) return NULL;
  if (!lf_arg_uint32(env, argv[1], "newfd", false, 0, &op->flags)) return NULL;
  return lf_op_run(env, lf_op_steal(&op), LF_IS_SYNC(data));
}

bool lf_init_fd(napi_env env, napi_value exports, napi_value constants) {
  (void)constants;
  return lf_export_op(env, exports, "dup2", js_dup2);
}
