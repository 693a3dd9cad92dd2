//! The local server's worker threads: one per core, each running its own single-threaded
//! runtime, its own listening socket and its own upstream connections, as nginx runs
//! its worker processes. A request then stays on one thread from the client's bytes to
//! OpenAI's answer: no hand-over between threads, no wake-ups across cores
//! (docs/benchmarks.md measured the difference). Under Lambda there is one worker, the
//! main thread, since each environment serves one request at a time.

use std::cell::Cell;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// How many workers the local server runs unless told (`PROXY_WORKER_THREADS`): one per
/// core the process may use.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Marks the current thread as worker `index` (the main thread is worker 0).
pub fn enter(index: usize) {
    INDEX.set(index);
}

/// The current thread's worker index.
pub fn index() -> usize {
    INDEX.get()
}
