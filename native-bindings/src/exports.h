/*
 * Per-concern registration: each adds its functions to `exports` and its
 * numeric constants to `constants`.  Return false with an exception pending.
 */
#ifndef LAYERFS_EXPORTS_H
#define LAYERFS_EXPORTS_H

#include <node_api.h>
#include <stdbool.h>

bool lf_init_xattr(napi_env env, napi_value exports, napi_value constants);  /* xattr.c */
bool lf_init_mknod(napi_env env, napi_value exports, napi_value constants);  /* mknod.c */
bool lf_init_lock(napi_env env, napi_value exports, napi_value constants);   /* lock.c */
bool lf_init_rename(napi_env env, napi_value exports, napi_value constants); /* rename.c */
bool lf_init_times(napi_env env, napi_value exports, napi_value constants);  /* times.c */
bool lf_init_fd(napi_env env, napi_value exports, napi_value constants);     /* fd.c */

#endif /* LAYERFS_EXPORTS_H */
