/*
 * One filesystem operation, run either synchronously on the JS thread or on
 * the libuv thread pool (napi_async_work) settling a promise.
 *
 * An exported function parses its arguments into an lf_op, then hands it to
 * lf_op_run().  exec() runs the syscall and must only touch the op (no
 * napi_* calls: it may run off the JS thread); it reports failure via
 * op->err.  result() builds the JS return value on the JS thread.
 */
#ifndef LAYERFS_OP_H
#define LAYERFS_OP_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct lf_op lf_op;

/* Runs the syscall(s); sets op->err (an errno value) on failure. */
typedef void (*lf_exec_fn)(lf_op *op);
/* Builds the JS result; returns NULL with an exception pending on failure. */
typedef napi_value (*lf_result_fn)(napi_env env, lf_op *op);

struct lf_op {
  const char *syscall; /* static; name reported in errors ("lgetxattr") */
  lf_exec_fn exec;
  lf_result_fn result; /* NULL: the result is `undefined` */
  int err;             /* errno from exec(), 0 on success */

  /* Inputs (whichever the operation needs). Strings are owned. */
  char *path;          /* also reported as error.path */
  char *dest;          /* reported as error.dest (renames) */
  char *name;          /* xattr name */
  int fd;              /* -1 when the operation is path based */
  uint32_t flags;
  uint32_t mode;
  uint64_t dev;
  struct timespec times[2];
  void *in;            /* input bytes (xattr value) */
  size_t in_len;
  bool in_owned;       /* `in` is malloc'd by us (else borrowed from JS) */

  /* Output bytes produced by exec(), owned (freed with the op). */
  char *out;
  size_t out_len;

  /* Async plumbing. */
  napi_async_work work;
  napi_deferred deferred;
};

/* Allocate a zeroed op (fd = -1). Throws and returns NULL on ENOMEM. */
lf_op *lf_op_new(napi_env env, const char *syscall, lf_exec_fn exec,
                 lf_result_fn result);

/* Free an op and everything it owns. NULL is allowed. */
void lf_op_free(lf_op *op);

/* For `lf_op *op LF_AUTO_OP = lf_op_new(...)`: freed on early returns. */
static inline void lf_op_cleanup(lf_op **op) { lf_op_free(*op); }
#define LF_AUTO_OP __attribute__((cleanup(lf_op_cleanup)))

/* Transfer ownership out of an LF_AUTO_OP variable. */
static inline lf_op *lf_op_steal(lf_op **op) {
  lf_op *taken = *op;
  *op = NULL;
  return taken;
}

/*
 * Run the op and take ownership of it.
 *   sync:  run now; return the result, or NULL with the errno error thrown.
 *   async: copy borrowed input, queue on the thread pool, return a promise
 *          resolved with the result or rejected with the errno error.
 */
napi_value lf_op_run(napi_env env, lf_op *op, bool sync);

/* Callback data marking the "...Sync" variant of an exported function. */
extern int lf_sync_marker;
#define LF_IS_SYNC(data) ((data) == (void *)&lf_sync_marker)

/*
 * Export `cb` twice: as `name` (promise) and as `nameSync`; cb tells them
 * apart with LF_IS_SYNC(data).  Returns false with an exception pending.
 */
bool lf_export_op(napi_env env, napi_value exports, const char *name, napi_callback cb);

/* Export a plain function. */
bool lf_export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb);

/* Set an integer constant on `target`. */
bool lf_export_const(napi_env env, napi_value target, const char *name, int64_t value);

#endif /* LAYERFS_OP_H */
