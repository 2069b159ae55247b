/*
 * layerfs_native: syscalls Node's fs module does not expose (xattrs,
 * mknod with device numbers, renameat2, nanosecond lutimens, flock, dup2).
 * This file only wires the per-concern modules together.
 */
#include <node_api.h>

#include "errors.h"
#include "exports.h"

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value constants;
  LF_CALL(env, napi_create_object(env, &constants));
  if (!lf_init_xattr(env, exports, constants) ||
      !lf_init_mknod(env, exports, constants) ||
      !lf_init_rename(env, exports, constants) ||
      !lf_init_times(env, exports, constants) ||
      !lf_init_lock(env, exports, constants) ||
      !lf_init_fd(env, exports, constants)) {
    return NULL;
  }
  LF_CALL(env, napi_object_freeze(env, constants));
  LF_CALL(env, napi_set_named_property(env, exports, "constants", constants));
  return exports;
}
