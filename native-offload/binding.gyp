{
  "targets": [
    {
      "target_name": "l7mp_offload",
      "sources": ["addon/offload.cc", "addon/steer.cc", "addon/util.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "gen"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2"],
      "libraries": ["-lbpf"]
    }
  ]
}
