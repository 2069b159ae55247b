{
  "targets": [
    {
      "target_name": "layerfs_native",
      "sources": [
        "src/module.c",
        "src/errors.c",
        "src/args.c",
        "src/op.c",
        "src/xattr.c",
        "src/mknod.c",
        "src/lock.c",
        "src/rename.c",
        "src/times.c",
        "src/fd.c"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "_GNU_SOURCE",
        "_FILE_OFFSET_BITS=64"
      ],
      "cflags": [
        "-Wall",
        "-Wextra",
        "-Wunused-parameter",
        "-Wshadow",
        "-Wstrict-prototypes",
        "-Wformat=2",
        "-fvisibility=hidden"
      ],
      "cflags_c": [
        "-std=gnu11"
      ]
    }
  ]
}
