//! The tokio runtime `chinwag serve` runs on, and the size of its blocking pool.
//!
//! Store reads, file writes, link-preview parsing and push encryption run on tokio's blocking
//! pool. Left at tokio's default (up to 512 threads), a burst of reads (thousands of sockets
//! opening at once, each reading its session) starts a thread for every read that finds the
//! others busy. Each such thread keeps its own allocator pages and stack for its idle
//! lifetime, which measured as 1 MiB per thread and swung the memory of 5,000 idle sockets
//! between 5 and 10 KiB each from run to run. The reads are short and mostly CPU-bound, so a
//! pool a few times the core count serves them as fast; a read beyond it waits its turn.

/// Blocking threads per core.
const PER_CORE: usize = 4;
/// Never fewer than this, so a few slow jobs (a backup's archive, a large upload's hashing)
/// cannot hold every thread while reads wait on a small machine.
const AT_LEAST: usize = 8;
/// Never more than this, whatever the core count.
const AT_MOST: usize = 64;

/// The most blocking threads for a machine with `cores` cores.
#[must_use]
pub fn blocking_threads(cores: usize) -> usize {
    cores.saturating_mul(PER_CORE).clamp(AT_LEAST, AT_MOST)
}

/// The multi-threaded runtime with every driver and the blocking pool sized for this machine.
///
/// # Errors
/// When the operating system refuses the threads or the I/O driver.
pub fn build() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    tokio::runtime::Builder::new_multi_thread().enable_all().max_blocking_threads(blocking_threads(cores)).build()
}

#[cfg(test)]
mod tests {
    use super::blocking_threads;

    #[test]
    fn the_pool_grows_with_the_cores_within_its_bounds() {
        assert_eq!(blocking_threads(0), 8);
        assert_eq!(blocking_threads(1), 8);
        assert_eq!(blocking_threads(2), 8);
        assert_eq!(blocking_threads(4), 16);
        assert_eq!(blocking_threads(12), 48);
        assert_eq!(blocking_threads(64), 64);
        assert_eq!(blocking_threads(usize::MAX), 64);
    }
}
