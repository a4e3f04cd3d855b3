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
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <unordered_map>

#include "common.h"

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

std::mutex blocksMutex;
std::unordered_map<void*, Block*> liveBlocks;
int64_t liveBytes = 0;

void freeBlock(Block* block) {
  {
    std::lock_guard<std::mutex> g(blocksMutex);
    liveBlocks.erase(block->data);
    liveBytes -= static_cast<int64_t>(block->bytes);
  }
  std::free(block->origin);
  block->data = nullptr;
}

void finalize(napi_env /*env*/, void* /*data*/, void* hint) {
  Block* block = static_cast<Block*>(hint);
  if (block->data) freeBlock(block);
  delete block;
}

// allocBuffer(bytes) -> ArrayBuffer, uninitialized, 64-byte aligned (so
// that kernels can use aligned streaming stores). The alignment comes from
// over-allocating with plain malloc, not from aligned_alloc: glibc serves an
// aligned request from a slightly larger block, so a freed block would never
// fit the next request of the same size and the heap would grow by one
// block per allocation.
void allocBuffer(Args& a) {
  int64_t bytes = a.integer(0, "bytes", 1, int64_t{1} << 40);
  void* origin = std::malloc(static_cast<size_t>(bytes) + 64);
  if (!origin) throw std::bad_alloc();
  void* data = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(origin) + 63) & ~uintptr_t{63});
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

// releaseBuffer(arrayBuffer) -> boolean: detach and free a buffer from
// allocBuffer. False (and nothing done) for any other or an already
// released buffer.
void releaseBuffer(Args& a) {
  napi_env env = a.env();
  napi_value v = a.raw(0);
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

// accountBuffer(arrayBuffer): a buffer from allocBuffer will be left to the
// garbage collector; count its bytes as V8 does for ordinary buffers, so that
// memory held only by garbage still prompts a collection.
void accountBuffer(Args& a) {
  napi_env env = a.env();
  void* data = nullptr;
  size_t length = 0;
  bool isBuffer = false;
  napi_is_arraybuffer(env, a.raw(0), &isBuffer);
  if (!isBuffer) fail("accountBuffer: expected an ArrayBuffer");
  if (napi_get_arraybuffer_info(env, a.raw(0), &data, &length) != napi_ok) fail("accountBuffer: unreadable ArrayBuffer");
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

// memoryStats() -> { buffers, bytes }: engine-owned buffers still allocated.
void memoryStats(Args& a) {
  napi_env env = a.env();
  size_t count;
  int64_t bytes;
  {
    std::lock_guard<std::mutex> g(blocksMutex);
    count = liveBlocks.size();
    bytes = liveBytes;
  }
  napi_value obj, n, b;
  napi_create_object(env, &obj);
  napi_create_double(env, static_cast<double>(count), &n);
  napi_create_double(env, static_cast<double>(bytes), &b);
  napi_set_named_property(env, obj, "buffers", n);
  napi_set_named_property(env, obj, "bytes", b);
  a.result = obj;
}

}  // namespace

void addMemoryExports(std::vector<Export>& out) {
  out.push_back({"allocBuffer", entry<allocBuffer>});
  out.push_back({"releaseBuffer", entry<releaseBuffer>});
  out.push_back({"accountBuffer", entry<accountBuffer>});
  out.push_back({"memoryStats", entry<memoryStats>});
}

}  // namespace capsnet
