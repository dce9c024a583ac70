//! What the server asks of glibc's allocator, so that a large fleet's memory stays what the
//! fleet needs: large blocks mapped on their own, and free pages given back after a tree
//! rebuild and every little while.

/// Keeps glibc's threshold for mapping large blocks at its default, 128 KiB. glibc otherwise
/// raises it to the size of any mapped block freed, up to 32 MiB: after one password hash
/// (argon2 works in 19 MiB), the live index's large vectors and the feeds' lists would come
/// from the heap instead, and the holes they leave there stay resident — at a million
/// scooters, 26 MiB more after the first password hash and 104 MiB more after four logins
/// at once. Call it first thing in `main`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_large_blocks_mapped() {
    // SAFETY: `mallopt` only sets a parameter of the allocator, which it reads under its lock.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_large_blocks_mapped() {}

/// Gives the free pages of every heap back to the system. glibc returns only what is free at
/// the top of a heap; the nodes of a replaced R-tree, or what a fleet-wide sweep allocated
/// and freed, leave free pages all through the heaps, which stay resident until reused (at
/// a million scooters, one heap held 71 MB with 1.3 MB in use after a tree rebuild). Takes
/// some milliseconds: call it from a blocking thread, after such a rebuild, and
/// [`keep_trimmed`] calls it every little while.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn give_back_free_pages() {
    // SAFETY: `malloc_trim` walks the allocator's own heaps under their locks.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn give_back_free_pages() {}

/// The memory this process holds resident (`VmRSS`), in bytes; `None` where the system
/// does not say (no `/proc`).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// How often the heaps' free pages are given back while the server runs.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Gives the free pages back every [`TRIM_EVERY`] until shutdown. Requests allocate and free
/// on whichever thread serves them, and glibc keeps what they free in that thread's heap,
/// scattered between live blocks: at a million scooters, after 100 s of telemetry from
/// every scooter, 185 MiB resident once `malloc_trim` had run against 200–205 MiB in runs
/// without it, while heaptrack counted 5 MB more live than before the telemetry.
pub async fn keep_trimmed(shutdown: tokio::sync::watch::Receiver<bool>) {
    crate::app::every(
        TRIM_EVERY,
        shutdown,
        "giving free heap pages back",
        || async {
            let started = std::time::Instant::now();
            tokio::task::spawn_blocking(give_back_free_pages).await?;
            tracing::debug!(
                took_ms = started.elapsed().as_secs_f64() * 1e3,
                "free heap pages given back"
            );
            Ok::<(), tokio::task::JoinError>(())
        },
    )
    .await
}
