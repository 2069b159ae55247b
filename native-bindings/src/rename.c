/*
 * renameat2(2): atomic no-replace, exchange and whiteout renames.
 *
 * Node's fs.rename is plain rename(2).  Called through syscall() so it also
 * works with libcs lacking the wrapper.  Never follows symlinks (rename
 * acts on directory entries).  Errors carry both path and dest.
 */
#include "exports.h"

#include "args.h"
#include "errors.h"
#include "op.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

/* From <linux/fs.h>; glibc >= 2.28 also defines them in <stdio.h>. */
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef RENAME_WHITEOUT
#define RENAME_WHITEOUT (1 << 2)
#endif

static void exec_renameat2(lf_op *op) {
#ifdef SYS_renameat2
  if (syscall(SYS_renameat2, AT_FDCWD, op->path, AT_FDCWD, op->dest, op->flags) != 0) {
    op->err = errno;
  }
#else
  op->err = ENOSYS;
#endif
}

/* (from, to, flags = 0) -> undefined */
static napi_value js_renameat2(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  void *data = NULL;
  if (!lf_get_args(env, info, 3, argv, &data)) return NULL;
  lf_op *op LF_AUTO_OP = lf_op_new(env, "renameat2", exec_renameat2, NULL);
  if (op == NULL) return NULL;
  if (!lf_arg_string(env, argv[0], "from", &op->path)) return NULL;
  if (!lf_arg_string(env, argv[1], "to", &op->dest)) return NULL;
  if (!lf_arg_uint32(env, argv[2], "flags", true, 0, &op->flags)) return NULL;
  return lf_op_run(env, lf_op_steal(&op), LF_IS_SYNC(data));
}

bool lf_init_rename(napi_env env, napi_value exports, napi_value constants) {
  return lf_export_op(env, exports, "renameat2", js_renameat2) &&
         lf_export_const(env, constants, "RENAME_NOREPLACE", RENAME_NOREPLACE) &&
         lf_export_const(env, constants, "RENAME_EXCHANGE", RENAME_EXCHANGE) &&
         lf_export_const(env, constants, "RENAME_WHITEOUT", RENAME_WHITEOUT);
}
