/*
 * Extended attributes: l*xattr (never follow symlinks) and f*xattr (on fds).
 *
 * Node has no xattr API at all.  Values are binary (Buffers); names are
 * strings.  Reads use a size-query / allocate / read loop that retries when
 * the attribute grows between the two calls (ERANGE).
 */
#include "exports.h"

#include "args.h"
#include "errors.h"
#include "op.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/xattr.h>

/* How many times a read is retried when the value keeps changing size. */
#define LF_XATTR_MAX_ATTEMPTS 8

/* ---- syscalls (thread pool side) ---------------------------------------- */

static ssize_t get_raw(lf_op *op, char *buf, size_t size) {
  return op->fd >= 0 ? fgetxattr(op->fd, op->name, buf, size)
                     : lgetxattr(op->path, op->name, buf, size);
}

static ssize_t list_raw(lf_op *op, char *buf, size_t size) {
  return op->fd >= 0 ? flistxattr(op->fd, buf, size)
                     : llistxattr(op->path, buf, size);
}

/*
 * Query the size, allocate, read.  If the value grew in between the read
 * fails with ERANGE and we start over with a fresh size query.
 */
static void read_sized(lf_op *op, ssize_t (*raw)(lf_op *, char *, size_t)) {
  for (int attempt = 0; attempt < LF_XATTR_MAX_ATTEMPTS; attempt++) {
    ssize_t size = raw(op, NULL, 0);
    if (size < 0) {
      op->err = errno;
      return;
    }
    if (size == 0) { /* empty value / no names: nothing to read */
      op->out_len = 0;
      return;
    }
    char *buf = malloc((size_t)size);
    if (buf == NULL) {
      op->err = ENOMEM;
      return;
    }
    ssize_t got = raw(op, buf, (size_t)size);
    if (got >= 0) {
      op->out = buf;
      op->out_len = (size_t)got;
      return;
    }
    int err = errno;
    free(buf);
    if (err != ERANGE) {
      op->err = err;
      return;
    }
  }
  op->err = ERANGE; /* still racing after all attempts: report it */
}

static void exec_get(lf_op *op) { read_sized(op, get_raw); }

static void exec_list(lf_op *op) { read_sized(op, list_raw); }

static void exec_set(lf_op *op) {
  int rc = op->fd >= 0
               ? fsetxattr(op->fd, op->name, op->in, op->in_len, (int)op->flags)
               : lsetxattr(op->path, op->name, op->in, op->in_len, (int)op->flags);
  if (rc != 0) op->err = errno;
}

static void exec_remove(lf_op *op) {
  int rc = op->fd >= 0 ? fremovexattr(op->fd, op->name)
                       : lremovexattr(op->path, op->name);
  if (rc != 0) op->err = errno;
}

/* ---- results (JS thread) ------------------------------------------------- */

static napi_value result_buffer(napi_env env, lf_op *op) {
  napi_value buffer;
  if (op->out_len == 0) {
    LF_CALL(env, napi_create_buffer(env, 0, NULL, &buffer));
  } else {
    LF_CALL(env, napi_create_buffer_copy(env, op->out_len, op->out, NULL, &buffer));
  }
  return buffer;
}

/* The kernel returns "name1\0name2\0...": split into an array of strings. */
static napi_value result_names(napi_env env, lf_op *op) {
  napi_value array;
  LF_CALL(env, napi_create_array(env, &array));
  uint32_t index = 0;
  size_t pos = 0;
  while (pos < op->out_len) {
    const char *start = op->out + pos;
    const char *nul = memchr(start, '\0', op->out_len - pos);
    size_t len = nul != NULL ? (size_t)(nul - start) : op->out_len - pos;
    if (len > 0) {
      napi_value name;
      LF_CALL(env, napi_create_string_utf8(env, start, len, &name));
      LF_CALL(env, napi_set_element(env, array, index++, name));
    }
    pos += len + 1;
  }
  return array;
}

/* ---- exported functions -------------------------------------------------- */

/* First argument: a path (l* variants) or an fd (f* variants). */
static bool arg_target(napi_env env, napi_value value, bool by_fd, lf_op *op) {
  if (by_fd) return lf_arg_fd(env, value, "fd", &op->fd);
  return lf_arg_string(env, value, "path", &op->path);
}

/* (target, name) -> Buffer */
static napi_value getxattr_impl(napi_env env, napi_callback_info info, bool by_fd) {
  napi_value argv[2];
  void *data = NULL;
  if (!lf_get_args(env, info, 2, argv, &data)) return NULL;
  lf_op *op LF_AUTO_OP = lf_op_new(env, by_fd ? "fgetxattr" : "lgetxattr", exec_get, result_buffer);
  if (op == NULL) return NULL;
  if (!arg_target(env, argv[0], by_fd, op)) return NULL;
  if (!lf_arg_string(env, argv[1], "name", &op->name)) return NULL;
  return lf_op_run(env, lf_op_steal(&op), LF_IS_SYNC(data));
}

/* (target, name, value, flags = 0) -> undefined */
static napi_value setxattr_impl(napi_env env, napi_callback_info info, bool by_fd) {
  napi_value argv[4];
  void *data = NULL;
  if (!lf_get_args(env, info, 4, argv, &data)) return NULL;
  lf_op *op LF_AUTO_OP = lf_op_new(env, by_fd ? "fsetxattr" : "lsetxattr", exec_set, NULL);
  if (op == NULL) return NULL;
  if (!arg_target(env, argv[0], by_fd, op)) return NULL;
  if (!lf_arg_string(env, argv[1], "name", &op->name)) return NULL;
  if (!lf_arg_bytes(env, argv[2], "value", &op->in, &op->in_len)) return NULL;
  if (!lf_arg_uint32(env, argv[3], "flags", true, 0, &op->flags)) return NULL;
  return lf_op_run(env, lf_op_steal(&op), LF_IS_SYNC(data));
}

/* (target) -> string[] */
static napi_value listxattr_impl(napi_env env, napi_callback_info info, bool by_fd) {
  napi_value argv[1];
  void *data = NULL;
  if (!lf_get_args(env, info, 1, argv, &data)) return NULL;
  lf_op *op LF_AUTO_OP = lf_op_new(env, by_fd ? "flistxattr" : "llistxattr", exec_list, result_names);
  if (op == NULL) return NULL;
  if (!arg_target(env, argv[0], by_fd, op)) return NULL;
  return lf_op_run(env, lf_op_steal(&op), LF_IS_SYNC(data));
}

/* (target, name) -> undefined */
static napi_value removexattr_impl(napi_env env, napi_callback_info info, bool by_fd) {
  napi_value argv[2];
  void *data = NULL;
  if (!lf_get_args(env, info, 2, argv, &data)) return NULL;
  lf_op *op LF_AUTO_OP = lf_op_new(env, by_fd ? "fremovexattr" : "lremovexattr", exec_remove, NULL);
  if (op == NULL) return NULL;
  if (!arg_target(env, argv[0], by_fd, op)) return NULL;
  if (!lf_arg_string(env, argv[1], "name", &op->name)) return NULL;
  return lf_op_run(env, lf_op_steal(&op), LF_IS_SYNC(data));
}

static napi_value js_lgetxattr(napi_env env, napi_callback_info info) { return getxattr_impl(env, info, false); }
static napi_value js_fgetxattr(napi_env env, napi_callback_info info) { return getxattr_impl(env, info, true); }
static napi_value js_lsetxattr(napi_env env, napi_callback_info info) { return setxattr_impl(env, info, false); }
static napi_value js_fsetxattr(napi_env env, napi_callback_info info) { return setxattr_impl(env, info, true); }
static napi_value js_llistxattr(napi_env env, napi_callback_info info) { return listxattr_impl(env, info, false); }
static napi_value js_flistxattr(napi_env env, napi_callback_info info) { return listxattr_impl(env, info, true); }
static napi_value js_lremovexattr(napi_env env, napi_callback_info info) { return removexattr_impl(env, info, false); }
static napi_value js_fremovexattr(napi_env env, napi_callback_info info) { return removexattr_impl(env, info, true); }

bool lf_init_xattr(napi_env env, napi_value exports, napi_value constants) {
  return lf_export_op(env, exports, "lgetxattr", js_lgetxattr) &&
         lf_export_op(env, exports, "fgetxattr", js_fgetxattr) &&
         lf_export_op(env, exports, "lsetxattr", js_lsetxattr) &&
         lf_export_op(env, exports, "fsetxattr", js_fsetxattr) &&
         lf_export_op(env, exports, "llistxattr", js_llistxattr) &&
         lf_export_op(env, exports, "flistxattr", js_flistxattr) &&
         lf_export_op(env, exports, "lremovexattr", js_lremovexattr) &&
         lf_export_op(env, exports, "fremovexattr", js_fremovexattr) &&
         lf_export_const(env, constants, "XATTR_CREATE", XATTR_CREATE) &&
         lf_export_const(env, constants, "XATTR_REPLACE", XATTR_REPLACE);
}
