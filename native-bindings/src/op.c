/* Sync / async (thread pool + promise) execution of lf_op operations. */
#include "op.h"

#include "errors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lf_sync_marker;

lf_op *lf_op_new(napi_env env, const char *syscall, lf_exec_fn exec,
                 lf_result_fn result) {
  lf_op *op = calloc(1, sizeof *op);
  if (op == NULL) {
    napi_throw_error(env, "ENOMEM", "layerfs_native: out of memory");
    return NULL;
  }
  op->syscall = syscall;
  op->exec = exec;
  op->result = result;
  op->fd = -1;
  return op;
}

void lf_op_free(lf_op *op) {
  if (op == NULL) return;
  free(op->path);
  free(op->dest);
  free(op->name);
  if (op->in_owned) free(op->in);
  free(op->out);
  free(op);
}

/* The value an op settles with: its result, or the errno error. */
static napi_value settle_value(napi_env env, lf_op *op, bool *ok) {
  if (op->err != 0) {
    *ok = false;
    return lf_errno_error(env, op->err, op->syscall, op->path, op->dest);
  }
  *ok = true;
  if (op->result != NULL) return op->result(env, op);
  napi_value undefined;
  LF_CALL(env, napi_get_undefined(env, &undefined));
  return undefined;
}

/*
 * Turn whatever exception is pending into a value to reject with.  Used when
 * building the result itself failed (e.g. out of memory).
 */
static napi_value take_exception(napi_env env) {
  napi_value exception = NULL;
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending &&
      napi_get_and_clear_last_exception(env, &exception) == napi_ok) {
    return exception;
  }
  napi_value msg = NULL, error = NULL;
  if (napi_create_string_utf8(env, "layerfs_native: failed to build result",
                              NAPI_AUTO_LENGTH, &msg) == napi_ok &&
      napi_create_error(env, NULL, msg, &error) == napi_ok) {
    return error;
  }
  return NULL;
}

static void on_execute(napi_env env, void *data) {
  (void)env; /* thread pool: no napi_* calls allowed here */
  lf_op *op = data;
  op->exec(op);
}

static void on_complete(napi_env env, napi_status status, void *data) {
  lf_op *op = data;
  if (status != napi_ok && op->err == 0) {
    op->err = ECANCELED; /* never cancelled by us, but stay well defined */
  }
  bool ok = false;
  napi_value value = settle_value(env, op, &ok);
  if (value == NULL) {
    ok = false;
    value = take_exception(env);
  }
  if (value != NULL) {
    if (ok) {
      napi_resolve_deferred(env, op->deferred, value);
    } else {
      napi_reject_deferred(env, op->deferred, value);
    }
  }
  napi_delete_async_work(env, op->work);
  lf_op_free(op);
}

static napi_value run_sync(napi_env env, lf_op *op) {
  op->exec(op);
  bool ok = false;
  napi_value value = settle_value(env, op, &ok);
  if (value != NULL && !ok) {
    napi_throw(env, value);
    value = NULL;
  }
  lf_op_free(op);
  return value;
}

napi_value lf_op_run(napi_env env, lf_op *op, bool sync) {
  if (sync) return run_sync(env, op);

  /* JS may mutate or collect a borrowed buffer while we run: copy it. */
  if (op->in != NULL && !op->in_owned) {
    void *copy = NULL;
    if (op->in_len > 0) {
      copy = malloc(op->in_len);
      if (copy == NULL) {
        lf_op_free(op);
        napi_throw_error(env, "ENOMEM", "layerfs_native: out of memory");
        return NULL;
      }
      memcpy(copy, op->in, op->in_len);
    }
    op->in = copy;
    op->in_owned = true;
  }

  napi_value promise, resource_name;
  napi_status status = napi_create_promise(env, &op->deferred, &promise);
  if (status != napi_ok) {
    lf_op_free(op);
    lf_throw_napi_status(env, status);
    return NULL;
  }
  /* From here on the deferred must be settled, so failures reject it. */
  status = napi_create_string_utf8(env, op->syscall, NAPI_AUTO_LENGTH, &resource_name);
  if (status == napi_ok) {
    status = napi_create_async_work(env, NULL, resource_name, on_execute,
                                    on_complete, op, &op->work);
  }
  if (status == napi_ok) {
    status = napi_queue_async_work(env, op->work);
    if (status != napi_ok) {
      napi_delete_async_work(env, op->work);
    }
  }
  if (status != napi_ok) {
    lf_throw_napi_status(env, status);
    napi_value error = take_exception(env);
    if (error != NULL) napi_reject_deferred(env, op->deferred, error);
    lf_op_free(op);
  }
  return promise;
}

bool lf_export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  LF_CALL_BOOL(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn));
  LF_CALL_BOOL(env, napi_set_named_property(env, exports, name, fn));
  return true;
}

bool lf_export_op(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  if (!lf_export_fn(env, exports, name, cb)) return false;
  char sync_name[64];
  snprintf(sync_name, sizeof sync_name, "%sSync", name);
  napi_value fn;
  LF_CALL_BOOL(env, napi_create_function(env, sync_name, NAPI_AUTO_LENGTH, cb,
                                         &lf_sync_marker, &fn));
  LF_CALL_BOOL(env, napi_set_named_property(env, exports, sync_name, fn));
  return true;
}

bool lf_export_const(napi_env env, napi_value target, const char *name, int64_t value) {
  napi_value v;
  LF_CALL_BOOL(env, napi_create_int64(env, value, &v));
  LF_CALL_BOOL(env, napi_set_named_property(env, target, name, v));
  return true;
}
