//! The binary's allocator: jemalloc, with its background thread returning freed memory.
//!
//! A request allocates and frees its header maps, and a connection's buffers are freed when it
//! closes, often on another worker thread than the one that allocated them. glibc's allocator
//! keeps what such bursts free in its per-thread arenas: in `loadtest/soak.py` (ten rounds of
//! 10,000 pipelining connections and a fanout burst) the server still held baseline + 151 MiB a
//! minute after the last round. mimalloc gave memory back only while it was allocating, so an
//! idle server kept baseline + 63 MiB. jemalloc's background thread purges on a timer (dirty
//! pages decay over ~10 s) whether or not the server is busy: baseline + 6 MiB. Figures, and
//! the instructions per request each allocator costs, are in `loadtest/RESULTS.md`.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Starts jemalloc's background purging thread; without it freed memory is only returned
/// when the allocator is next busy. A server that cannot start it still runs, keeping more.
pub fn return_memory_in_background() {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "jemalloc cannot purge in the background: freed memory is kept longer");
    }
}
