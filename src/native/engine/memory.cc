// Memory for large tensors, owned by the engine instead of V8's garbage
// collector.
//
// A training step of the paper CapsNet allocates about a gigabyte of
// tensors of 4 to 74 MB each. As ordinary ArrayBuffers they would be freed
// only when V8 next collects garbage, so dead tensors would pile up and the
// resident size would depend on GC timing. Instead the backend allocates
// them here and releases each one the moment tfjs disposes its tensor: the
// buffer is detached first (every JS view of it then has length 0, so
// nothing can reach the freed memory) and then freed. A buffer whose
// memory may still be visible from JS (read out with dataSync, or viewed by
// another tensor) is never released explicitly; its finalizer frees it when
// V8 collects it, as for any ArrayBuffer.
//
// Tensor blocks and the kernels' scratch blocks (ScratchFloats, memory.h)
// from 1 MB are kept for reuse when freed (up to a cap) and handed out again
// for the same size. glibc serves large blocks with fresh mmaps (32 MB is
// the most its heap takes) and trims its heap when much of it is free, and
// the page faults of touching new memory cost more than the elementwise
// kernels that fill it; a training step allocates the same sizes every
// time, so after the first step these allocations are free. Tensors were
// kept only above 32 MB at first, which served the paper CapsNet (40-70 MB
// tensors); Efficient-CapsNet's are 4-12 MB, and glibc faulted them in
// afresh: 444,000 page faults in 18 training steps against 107,000 with
// the 1 MB threshold, and 35 ms of a 520 ms step (one thread).
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "entry.h"
#include "memory.h"

namespace capsnet {
namespace {

// One allocation. The finalizer gets this, not the data pointer, as its
// hint: after an explicit release the address may be handed out again, and
// a late finalizer must not free the new owner's memory.
struct Block {
  void* data;    // 64-byte aligned start handed to JS
  void* origin;  // what malloc returned
  size_t bytes;
  bool accounted;  // counted in V8's external memory (see allocBuffer)
};

// Kernel scratch too: a call's buffers come in the same few sizes every
// step, and glibc returns freed blocks above its heap's (growing) mmap
// threshold to the system, so a 24 MB scratch buffer was faulted in afresh
// on every call (a third of the small preset's convolution time).
constexpr size_t kReuseMinBytes = size_t{1} << 20;
// The kept blocks are capped at a quarter of the memory the process may use
// (the machine's, or a container's smaller limit), between 1.5 and 8 GB. A CNN-baseline training step frees about 1.5 GB of such
// blocks at 28x28 (its 100352 x 328 dense layer's weights, gradient and
// Adam moments are 131 MB each; with half that kept, a step spent about a
// tenth of its time in page faults), and over 3 GB on the affine
// experiment's 40x40 images (269 MB each): there a 1.5 GB cap made a step
// 3.77-3.93 s against 3.35-3.63 s with a quarter of a 23.5 GB machine's
// memory (3 GB: 3.40-3.52 s).
constexpr size_t kReuseCapMinBytes = size_t{1536} << 20;
constexpr size_t kReuseCapMaxBytes = size_t{8} << 30;

// Bytes of memory the process may use: the machine's, or the memory limit
// of its control group where that is smaller (a container's, as mounted in
// the container: cgroup v2 or v1; "max" or a missing file means none).
// 0 when unknown.
size_t usableMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), pageBytes = sysconf(_SC_PAGESIZE);
  uint64_t bytes = pages > 0 && pageBytes > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(pageBytes) : 0;
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    FILE* f = std::fopen(path, "r");
    if (!f) continue;
    unsigned long long limit = 0;
    const bool read = std::fscanf(f, "%llu", &limit) == 1;
    std::fclose(f);
    if (read && limit > 0 && (bytes == 0 || limit < bytes)) bytes = limit;
  }
  return static_cast<size_t>(bytes);
}

size_t reuseCapBytes() {
  static const size_t cap = std::clamp(usableMemoryBytes() / 4, kReuseCapMinBytes, kReuseCapMaxBytes);
  return cap;
}

struct Memory {
  void* origin;  // what malloc returned
  void* data;    // 64-byte aligned start
  uint64_t keptAt = 0;  // when it was kept (a counter), for eviction
};

std::mutex blocksMutex;
std::unordered_map<void*, Block*> liveBlocks;
int64_t liveBytes = 0;
std::multimap<size_t, Memory> reusable;  // freed large blocks, by size
size_t reusableBytes = 0;
uint64_t keptCount = 0;

// Memory for a block of `bytes`: a kept block of that size, or a new one.
Memory obtain(size_t bytes) {
  if (bytes >= kReuseMinBytes) {
    std::lock_guard<std::mutex> g(blocksMutex);
    auto it = reusable.find(bytes);
    if (it != reusable.end()) {
      Memory m = it->second;
      reusable.erase(it);
      reusableBytes -= bytes;
      return m;
    }
  }
  void* origin = std::malloc(bytes + 64);
  if (!origin) throw std::bad_alloc();
  void* data = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(origin) + 63) & ~uintptr_t{63});
  return {origin, data};
}

// Memory from obtain() that is no longer used: kept for reuse if it is
// large, freed otherwise. When the kept blocks would pass the cap, the
// longest-kept ones are freed first: the sizes a workload asks for now are
// the ones its next step asks for again, while blocks of a model trained
// earlier in the process (a benchmark runs several) would otherwise fill the
// cap for good. Called with blocksMutex held.
// The blocks it evicts go into `evicted`, for the caller to free after
// releasing the lock (freeing large blocks unmaps them, which is slow).
bool keepLocked(Memory m, size_t bytes, std::vector<void*>& evicted) {
  const size_t cap = reuseCapBytes();
  if (bytes < kReuseMinBytes || bytes > cap) return false;
  while (reusableBytes + bytes > cap) {
    auto oldest = reusable.begin();  // a few hundred blocks at most, and eviction is rare: a scan will do
    for (auto it = reusable.begin(); it != reusable.end(); ++it)
      if (it->second.keptAt < oldest->second.keptAt) oldest = it;
    evicted.push_back(oldest->second.origin);
    reusableBytes -= oldest->first;
    reusable.erase(oldest);
  }
  m.keptAt = ++keptCount;
  reusable.emplace(bytes, m);
  reusableBytes += bytes;
  return true;
}

void freeBlock(Block* block) {
  bool keep = false;
  std::vector<void*> evicted;
  {
    std::lock_guard<std::mutex> g(blocksMutex);
    liveBlocks.erase(block->data);
    liveBytes -= static_cast<int64_t>(block->bytes);
    keep = keepLocked(Memory{block->origin, block->data}, block->bytes, evicted);
  }
  for (void* p : evicted) std::free(p);
  if (!keep) std::free(block->origin);
  block->data = nullptr;
}

void finalize(napi_env /*env*/, void* /*data*/, void* hint) {
  Block* block = static_cast<Block*>(hint);
  if (block->data) freeBlock(block);
  delete block;
}

// allocBuffer({ bytes }) -> ArrayBuffer, uninitialized, 64-byte aligned (so
// that kernels can use aligned streaming stores). The alignment comes from
// over-allocating with plain malloc, not from aligned_alloc: glibc serves an
// aligned request from a slightly larger block, so a freed block would never
// fit the next request of the same size and the heap would grow by one
// block per allocation.
CAPSNET_ENTRY(allocBuffer, "bytes") {
  int64_t bytes = a.integer("bytes", 1, int64_t{1} << 40);
  Memory m = obtain(static_cast<size_t>(bytes));
  void* origin = m.origin;
  void* data = m.data;
  Block* block = new Block{data, origin, static_cast<size_t>(bytes), false};
  napi_value buffer;
  if (napi_create_external_arraybuffer(a.env(), data, static_cast<size_t>(bytes), finalize, block, &buffer) != napi_ok) {
    std::free(origin);
    delete block;
    fail("allocBuffer: could not create an ArrayBuffer");
  }
  {
    std::lock_guard<std::mutex> g(blocksMutex);
    liveBlocks[data] = block;
    liveBytes += bytes;
  }
  // V8 counts every ArrayBuffer's bytes as external memory until the buffer
  // is collected or detached, and starts a full collection whenever that
  // count grows by 64 MB: with live tensors of hundreds of MB that meant
  // several useless collections per training step. These buffers are freed
  // explicitly, so their bytes are taken off the count here, and put back
  // when a buffer is left to the collector (accountBuffer) or detached.
  int64_t adjusted = 0;
  napi_adjust_external_memory(a.env(), -bytes, &adjusted);
  a.result = buffer;
}

// releaseBuffer({ buffer }) -> boolean: detach and free a buffer from
// allocBuffer. False (and nothing done) for any other or an already
// released buffer.
CAPSNET_ENTRY(releaseBuffer, "buffer") {
  napi_env env = a.env();
  napi_value v = a.value("buffer");
  bool isBuffer = false;
  napi_is_arraybuffer(env, v, &isBuffer);
  if (!isBuffer) fail("releaseBuffer: expected an ArrayBuffer");
  void* data = nullptr;
  size_t length = 0;
  if (napi_get_arraybuffer_info(env, v, &data, &length) != napi_ok) fail("releaseBuffer: unreadable ArrayBuffer");
  Block* block = nullptr;
  if (data) {
    std::lock_guard<std::mutex> g(blocksMutex);
    auto it = liveBlocks.find(data);
    if (it != liveBlocks.end() && it->second->bytes == length) block = it->second;
  }
  bool released = false;
  if (block) {
    // Detaching takes the bytes off V8's count again.
    int64_t adjusted = 0;
    if (!block->accounted) napi_adjust_external_memory(env, static_cast<int64_t>(block->bytes), &adjusted);
    // Detach before freeing: from here on every view of the buffer is empty.
    if (napi_detach_arraybuffer(env, v) != napi_ok) fail("releaseBuffer: the buffer cannot be detached");
    freeBlock(block);
    released = true;
  }
  napi_get_boolean(env, released, &a.result);
}

// accountBuffer({ buffer }): a buffer from allocBuffer will be left to the
// garbage collector; count its bytes as V8 does for ordinary buffers, so that
// memory held only by garbage still prompts a collection.
CAPSNET_ENTRY(accountBuffer, "buffer") {
  napi_env env = a.env();
  napi_value v = a.value("buffer");
  void* data = nullptr;
  size_t length = 0;
  bool isBuffer = false;
  napi_is_arraybuffer(env, v, &isBuffer);
  if (!isBuffer) fail("accountBuffer: expected an ArrayBuffer");
  if (napi_get_arraybuffer_info(env, v, &data, &length) != napi_ok) fail("accountBuffer: unreadable ArrayBuffer");
  Block* block = nullptr;
  if (data) {
    std::lock_guard<std::mutex> g(blocksMutex);
    auto it = liveBlocks.find(data);
    if (it != liveBlocks.end() && it->second->bytes == length && !it->second->accounted) {
      block = it->second;
      block->accounted = true;
    }
  }
  int64_t adjusted = 0;
  if (block) napi_adjust_external_memory(env, static_cast<int64_t>(block->bytes), &adjusted);
}

// memoryStats() -> { buffers, bytes, kept, keptCap }: engine-owned buffers
// still allocated, their bytes, the bytes of freed large blocks kept for
// reuse, and the most bytes kept.
CAPSNET_ENTRY(memoryStats) {
  napi_env env = a.env();
  size_t count;
  int64_t bytes;
  size_t kept;
  {
    std::lock_guard<std::mutex> g(blocksMutex);
    count = liveBlocks.size();
    bytes = liveBytes;
    kept = reusableBytes;
  }
  napi_value obj, n, b, k, c;
  napi_create_object(env, &obj);
  napi_create_double(env, static_cast<double>(count), &n);
  napi_create_double(env, static_cast<double>(bytes), &b);
  napi_create_double(env, static_cast<double>(kept), &k);
  napi_set_named_property(env, obj, "buffers", n);
  napi_set_named_property(env, obj, "bytes", b);
  napi_set_named_property(env, obj, "kept", k);
  napi_create_double(env, static_cast<double>(reuseCapBytes()), &c);
  napi_set_named_property(env, obj, "keptCap", c);
  a.result = obj;
}

}  // namespace


ScratchFloats::ScratchFloats(int64_t n) : bytes_(sizeof(float) * static_cast<size_t>(n > 0 ? n : 1)) {
  Memory m = obtain(bytes_);
  origin_ = m.origin;
  data_ = static_cast<float*>(m.data);
}

ScratchFloats::~ScratchFloats() {
  bool keep = false;
  std::vector<void*> evicted;
  if (bytes_ >= kReuseMinBytes) {
    std::lock_guard<std::mutex> g(blocksMutex);
    keep = keepLocked(Memory{origin_, data_}, bytes_, evicted);
  }
  for (void* p : evicted) std::free(p);
  if (!keep) std::free(origin_);
}

}  // namespace capsnet
