{
  "targets": [
    {
      "target_name": "capsnet_native",
      "sources": [
        "<!@(node scripts/native-config.mjs sources)"
      ],
      "include_dirs": [
        "src/native/boundary",
        "src/native/engine",
        "src/native/engine/gemm"
      ],
      "cflags!": [
        "-fno-exceptions"
      ],
      "cflags_cc!": [
        "-fno-exceptions"
      ],
      "cflags_cc": [
        "-std=c++17",
        "-fno-math-errno",
        "-fno-trapping-math",
        "<!@(node scripts/native-config.mjs cflags)"
      ],
      "ldflags": [
        "-pthread"
      ],
      "libraries": [
        "<!@(node scripts/native-config.mjs libs)"
      ],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "GCC_OPTIMIZATION_LEVEL": "3",
        "OTHER_CPLUSPLUSFLAGS": [
          "-fno-math-errno",
          "-fno-trapping-math",
          "<!@(node scripts/native-config.mjs cflags)"
        ]
      }
    }
  ]
}
