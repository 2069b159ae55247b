/* Node-fs-shaped error objects built from errno values. */
#include "errors.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Symbolic errno name ("ENOENT").  glibc >= 2.32 has strerrorname_np(); keep
 * a small table of the codes this addon can realistically produce for other
 * libcs.
 */
static const char *errno_name(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = strerrorname_np(err);
  return name != NULL ? name : "UNKNOWN";
#else
  switch (err) {
#define LF_E(e) case e: return #e;
    LF_E(EPERM) LF_E(ENOENT) LF_E(EIO) LF_E(EBADF) LF_E(ENOMEM) LF_E(EACCES)
    LF_E(EFAULT) LF_E(EBUSY) LF_E(EEXIST) LF_E(EXDEV) LF_E(ENODEV)
    LF_E(ENOTDIR) LF_E(EISDIR) LF_E(EINVAL) LF_E(ENOSPC) LF_E(EROFS)
    LF_E(EMLINK) LF_E(ERANGE) LF_E(ENAMETOOLONG) LF_E(ENOSYS)
    LF_E(ENOTEMPTY) LF_E(ELOOP) LF_E(ENODATA) LF_E(EOPNOTSUPP) LF_E(EDQUOT)
    LF_E(E2BIG) LF_E(ECANCELED)
#undef LF_E
    default: return "UNKNOWN";
  }
#endif
}

/*
 * Human description in libuv's style (lower-case first letter), e.g.
 * "no such file or directory".  Only called on the JS thread, but use the
 * reentrant variant anyway.
 */
static void errno_description(int err, char *buf, size_t size) {
  const char *msg = strerror_r(err, buf, size); /* GNU variant */
  if (msg != buf) {
    snprintf(buf, size, "%s", msg);
  }
  if (buf[0] != '\0') {
    buf[0] = (char)tolower((unsigned char)buf[0]);
  }
}

static bool set_string_prop(napi_env env, napi_value obj, const char *key,
                            const char *value) {
  napi_value v;
  LF_CALL_BOOL(env, napi_create_string_utf8(env, value, NAPI_AUTO_LENGTH, &v));
  LF_CALL_BOOL(env, napi_set_named_property(env, obj, key, v));
  return true;
}

napi_value lf_errno_error(napi_env env, int err, const char *syscall,
                          const char *path, const char *dest) {
  const char *code = errno_name(err);
  char desc[256];
  errno_description(err, desc, sizeof desc);

  /* "<CODE>: <desc>, <syscall>[ '<path>'][ -> '<dest>']" */
  char *message = NULL;
  int len;
  if (path != NULL && dest != NULL) {
    len = asprintf(&message, "%s: %s, %s '%s' -> '%s'", code, desc, syscall, path, dest);
  } else if (path != NULL) {
    len = asprintf(&message, "%s: %s, %s '%s'", code, desc, syscall, path);
  } else {
    len = asprintf(&message, "%s: %s, %s", code, desc, syscall);
  }
  if (len < 0) { /* message is undefined on failure: nothing to free */
    napi_throw_error(env, "ENOMEM", "layerfs_native: out of memory");
    return NULL;
  }

  napi_value msg_value, code_value, error, errno_value;
  napi_status status = napi_create_string_utf8(env, message, (size_t)len, &msg_value);
  free(message);
  if (status != napi_ok) {
    lf_throw_napi_status(env, status);
    return NULL;
  }
  LF_CALL(env, napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value));
  LF_CALL(env, napi_create_error(env, code_value, msg_value, &error));
  /* Node reports errno as a negative number (libuv convention). */
  LF_CALL(env, napi_create_int32(env, -err, &errno_value));
  LF_CALL(env, napi_set_named_property(env, error, "errno", errno_value));
  if (!set_string_prop(env, error, "syscall", syscall)) return NULL;
  if (path != NULL && !set_string_prop(env, error, "path", path)) return NULL;
  if (dest != NULL && !set_string_prop(env, error, "dest", dest)) return NULL;
  return error;
}

void lf_throw_errno(napi_env env, int err, const char *syscall,
                    const char *path, const char *dest) {
  napi_value error = lf_errno_error(env, err, syscall, path, dest);
  if (error != NULL) {
    napi_throw(env, error);
  }
}

void lf_throw_type_error(napi_env env, const char *code, const char *fmt, ...) {
  char message[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  napi_throw_type_error(env, code, message);
}

void lf_throw_range_error(napi_env env, const char *code, const char *fmt, ...) {
  char message[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  napi_throw_range_error(env, code, message);
}

void lf_throw_napi_status(napi_env env, napi_status status) {
  /* Read the error info first: any further napi_* call overwrites it. */
  char message[256];
  const napi_extended_error_info *info = NULL;
  const char *detail = NULL;
  if (napi_get_last_error_info(env, &info) == napi_ok && info != NULL) {
    detail = info->error_message;
  }
  snprintf(message, sizeof message, "layerfs_native: Node-API call failed (status %d%s%s)",
           (int)status, detail != NULL ? ": " : "", detail != NULL ? detail : "");

  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    return; /* the failing call already threw (e.g. a getter): keep that */
  }
  napi_throw_error(env, NULL, message);
}
