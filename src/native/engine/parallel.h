// The engine's thread pool. Every parallel loop of the addon, BLAS calls
// included, runs on it: OpenBLAS itself is set to one thread, and the engine
// splits GEMMs across the pool. One scheduler for all work avoids OpenBLAS's
// idle workers spinning against ours, and lets a thread build its own im2col
// block and multiply it while the block is still in cache.
#pragma once

#include <cstdint>
#include <functional>

namespace capsnet {

// Threads taking part in parallel loops, the calling thread included.
int threadCount();
// Set the thread count (at least 1); grows the pool when needed.
void setThreadCount(int n);

// Run fn(task, worker) for every task in [0, tasks), spread over the pool;
// worker is in [0, min(threadCount(), maxWorkers)) (maxWorkers <= 0: no
// limit) and unique among concurrently running calls, so it can index
// per-thread scratch buffers sized by maxWorkers. Blocks until all tasks
// are done. Called from inside a task (or from a second JS thread while the
// pool is busy), it runs the tasks serially on the calling thread as worker
// 0 of its own; scratch must therefore belong to the call, not be global.
void parallelTasks(int64_t tasks, const std::function<void(int64_t task, int worker)>& fn, int maxWorkers = 0);

// Split [0, n) into contiguous ranges of at least `grain` items (a few per
// thread, the split depending only on n, grain and the thread count) and
// run fn(begin, end) on each.
void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

// True while the current thread runs inside parallelTasks.
bool inParallelRegion();

}  // namespace capsnet
