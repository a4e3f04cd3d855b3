#include "parallel.h"

#include "denormals.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CAPSNET_PAUSE() _mm_pause()
#else
#define CAPSNET_PAUSE() std::this_thread::yield()
#endif

namespace capsnet {
namespace {

thread_local bool tlsInParallel = false;

// Workers sleep on a condition variable between jobs. After a job they spin
// for a short while first, since kernels come in quick succession and a
// futex wake-up costs more than the spin; the spin is short because the
// machine may be shared.
constexpr int kSpinIterations = 1000;

class Pool {
 public:
  // Lock-free: tasks may ask while the dispatching thread holds dispatch_.
  int size() const { return wanted_.load(std::memory_order_relaxed); }

  void resize(int n) {
    std::lock_guard<std::mutex> g(dispatch_);
    n = std::max(1, std::min(n, kMaxThreads));
    // Threads are only ever added; workers beyond the wanted count find no
    // free slot and go back to sleep. They are detached so that process exit
    // never waits on them.
    while (started_ < n - 1) {
      started_++;
      std::thread(&Pool::workerLoop, this).detach();
    }
    wanted_.store(n, std::memory_order_relaxed);
  }

  void run(int64_t tasks, const std::function<void(int64_t, int)>& fn, int maxWorkers) {
    if (tasks <= 0) return;
    std::unique_lock<std::mutex> busy(dispatch_, std::try_to_lock);
    int wanted = wanted_.load(std::memory_order_relaxed);
    if (maxWorkers > 0) wanted = std::min(wanted, maxWorkers);
    if (!busy.owns_lock() || tlsInParallel || wanted == 1 || tasks == 1) {
      if (busy.owns_lock()) busy.unlock();
      runSerial(tasks, fn);
      return;
    }
    uint64_t helpers = static_cast<uint64_t>(std::min<int64_t>(wanted - 1, tasks - 1));
    job_ = &fn;
    tasks_ = tasks;
    next_.store(0, std::memory_order_relaxed);
    nextWorker_.store(1, std::memory_order_relaxed);
    error_ = nullptr;
    {
      std::lock_guard<std::mutex> g(mutex_);
      uint64_t gen = (state_.load(std::memory_order_relaxed) >> 32) + 1;
      state_.store((gen << 32) | helpers, std::memory_order_release);
    }
    wake_.notify_all();

    tlsInParallel = true;
    work(0);
    tlsInParallel = false;

    // Withdraw the slots no worker has claimed yet (a helper that is slow to
    // wake has nothing left to do), then wait for the ones that did.
    uint64_t s = state_.load(std::memory_order_acquire);
    while (!state_.compare_exchange_weak(s, s & ~kSlotMask, std::memory_order_acq_rel)) {
    }
    for (int i = 0; i < kSpinIterations && (state_.load(std::memory_order_acquire) & kActiveMask) != 0; i++) CAPSNET_PAUSE();
    if ((state_.load(std::memory_order_acquire) & kActiveMask) != 0) {
      std::unique_lock<std::mutex> g(mutex_);
      done_.wait(g, [&] { return (state_.load(std::memory_order_acquire) & kActiveMask) == 0; });
    }
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  // state_ packs the job generation (high 32 bits), the helpers still
  // working on it (16 bits) and the helper slots not yet claimed (16 bits),
  // so that claiming a slot and counting oneself in is one atomic step.
  static constexpr uint64_t kSlotMask = 0xffff;
  static constexpr uint64_t kActiveUnit = uint64_t{1} << 16;
  static constexpr uint64_t kActiveMask = uint64_t{0xffff} << 16;
  static constexpr int kMaxThreads = 256;

  static void runSerial(int64_t tasks, const std::function<void(int64_t, int)>& fn) {
    bool outer = tlsInParallel;
    tlsInParallel = true;
    try {
      for (int64_t t = 0; t < tasks; t++) fn(t, 0);
    } catch (...) {
      tlsInParallel = outer;
      throw;
    }
    tlsInParallel = outer;
  }

  void work(int worker) {
    const auto& fn = *job_;
    for (;;) {
      int64_t t = next_.fetch_add(1, std::memory_order_relaxed);
      if (t >= tasks_) break;
      try {
        fn(t, worker);
      } catch (...) {
        std::lock_guard<std::mutex> g(errorMutex_);
        if (!error_) error_ = std::current_exception();
        // Skip the remaining tasks.
        next_.store(tasks_, std::memory_order_relaxed);
      }
    }
  }

  void workerLoop() {
    tlsInParallel = true;
    flushDenormalsOnThisThread();  // workers run only engine code (see denormals.h)
    uint64_t seen = state_.load(std::memory_order_acquire) >> 32;
    for (;;) {
      uint64_t s = state_.load(std::memory_order_acquire);
      for (int i = 0; i < kSpinIterations && (s >> 32) == seen; i++) {
        CAPSNET_PAUSE();
        s = state_.load(std::memory_order_acquire);
      }
      if ((s >> 32) == seen) {
        std::unique_lock<std::mutex> g(mutex_);
        wake_.wait(g, [&] { return (state_.load(std::memory_order_acquire) >> 32) != seen; });
        s = state_.load(std::memory_order_acquire);
      }
      // Claim a slot of the current job, if one is left.
      bool claimed = false;
      while ((s & kSlotMask) != 0) {
        if (state_.compare_exchange_weak(s, s - 1 + kActiveUnit, std::memory_order_acq_rel)) {
          claimed = true;
          break;
        }
      }
      seen = s >> 32;
      if (!claimed) continue;
      work(nextWorker_.fetch_add(1, std::memory_order_relaxed));
      uint64_t prev = state_.fetch_sub(kActiveUnit, std::memory_order_acq_rel);
      if ((prev & kActiveMask) == kActiveUnit) {
        std::lock_guard<std::mutex> g(mutex_);
        done_.notify_all();
      }
    }
  }

  std::mutex dispatch_;  // one job at a time
  std::mutex mutex_;     // pairs with the condition variables
  std::mutex errorMutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::atomic<uint64_t> state_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int> nextWorker_{1};
  const std::function<void(int64_t, int)>* job_ = nullptr;
  int64_t tasks_ = 0;
  std::exception_ptr error_;
  int started_ = 0;
  std::atomic<int> wanted_{1};
};

Pool& pool() {
  // Never destroyed: detached workers may still reference it at exit.
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

int threadCount() { return pool().size(); }

void setThreadCount(int n) { pool().resize(n); }

bool inParallelRegion() { return tlsInParallel; }

void parallelTasks(int64_t tasks, const std::function<void(int64_t, int)>& fn, int maxWorkers) {
  pool().run(tasks, fn, maxWorkers);
}

void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (inParallelRegion()) {
    fn(0, n);
    return;
  }
  // A few parts per thread, handed out dynamically: a thread that the OS
  // preempts (the machine may be shared) then delays the loop by one small
  // part, not by a whole share. The split itself never depends on timing.
  int64_t parts = std::min<int64_t>(4 * static_cast<int64_t>(threadCount()), (n + grain - 1) / grain);
  if (parts <= 1) {
    fn(0, n);
    return;
  }
  parallelTasks(parts, [&](int64_t p, int) {
    int64_t begin = n * p / parts;
    int64_t end = n * (p + 1) / parts;
    if (begin < end) fn(begin, end);
  });
}

}  // namespace capsnet
