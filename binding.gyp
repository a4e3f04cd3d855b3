{
  "targets": [
    {
      "target_name": "capsnet_native",
      "sources": [
        "src/native/boundary/addon.cc",
        "src/native/engine/parallel.cc",
        "src/native/engine/gemm/blas.cc",
        "src/native/engine/gemm/gemm.cc",
        "src/native/engine/gemm/gemmAvx2.cc",
        "src/native/engine/gemm/gemmAvx512.cc",
        "src/native/engine/elementwise.cc",
        "src/native/engine/reduce.cc",
        "src/native/engine/layout.cc",
        "src/native/engine/matmul.cc",
        "src/native/engine/conv.cc",
        "src/native/engine/spectral.cc",
        "src/native/engine/squash.cc",
        "src/native/engine/biasRelu.cc",
        "src/native/engine/predictionVectors.cc",
        "src/native/engine/matrixVotes.cc",
        "src/native/engine/dynamicRouting.cc",
        "src/native/engine/adamUpdate.cc",
        "src/native/engine/emRouting.cc",
        "src/native/engine/memory.cc"
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
