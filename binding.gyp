{
  "targets": [
    {
      "target_name": "capsnet_native",
      "sources": [
        "src/native/addon.cc",
        "src/native/parallel.cc",
        "src/native/blas.cc",
        "src/native/gemm.cc",
        "src/native/gemmAvx2.cc",
        "src/native/gemmAvx512.cc",
        "src/native/elementwise.cc",
        "src/native/reduce.cc",
        "src/native/layout.cc",
        "src/native/matmul.cc",
        "src/native/conv.cc",
        "src/native/spectral.cc",
        "src/native/squash.cc",
        "src/native/biasRelu.cc",
        "src/native/predictionVectors.cc",
        "src/native/matrixVotes.cc",
        "src/native/dynamicRouting.cc",
        "src/native/adamUpdate.cc",
        "src/native/emRouting.cc",
        "src/native/memory.cc"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fno-math-errno", "-fno-trapping-math", "<!@(node scripts/native-config.mjs cflags)"],
      "ldflags": ["-pthread"],
      "libraries": ["<!@(node scripts/native-config.mjs libs)"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "GCC_OPTIMIZATION_LEVEL": "3",
        "OTHER_CPLUSPLUSFLAGS": ["-fno-math-errno", "-fno-trapping-math", "<!@(node scripts/native-config.mjs cflags)"]
      }
    }
  ]
}
