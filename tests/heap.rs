//! The server's heap upkeep (`scootfleet::heap`): free pages left between live blocks go
//! back to the system on the periodic trim, and the trim stops with the server. One test in
//! a binary of its own, so that no other test's allocations move the resident memory it
//! reads.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::time::Duration;

fn resident_mib() -> u64 {
    scootfleet::heap::resident_bytes().expect("VmRSS in /proc/self/status") / (1024 * 1024)
}

/// Fills about 200 MiB of heap with small blocks and frees all but one block in 64, so the
/// free space lies in holes between live blocks, where glibc keeps it resident. Each block
/// is boxed on purpose: its own small allocation, as a request's objects are.
#[allow(clippy::vec_box)]
fn scatter() -> Vec<Box<[u8; 256]>> {
    let blocks: Vec<Box<[u8; 256]>> = (0..800_000)
        .map(|i| Box::new([(i % 251) as u8; 256]))
        .collect();
    blocks.into_iter().step_by(64).collect()
}

#[test]
fn the_periodic_trim_gives_back_free_pages_between_live_blocks_and_stops_on_shutdown() {
    scootfleet::heap::keep_large_blocks_mapped();
    let start = resident_mib();
    let kept = scatter();
    let scattered = resident_mib();
    assert!(
        scattered >= start + 150,
        "the holes stay resident until trimmed: {start} MiB at first, {scattered} MiB after"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let trimmed = runtime.block_on(async {
        let upkeep = tokio::spawn(scootfleet::heap::keep_trimmed(shutdown));
        // The first trim comes at once (the next ones every 10 s): wait up to 5 s for it.
        let mut trimmed = resident_mib();
        for _ in 0..50 {
            if trimmed + 100 <= scattered {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            trimmed = resident_mib();
        }
        stop.send(true).expect("the upkeep listens");
        tokio::time::timeout(Duration::from_secs(1), upkeep)
            .await
            .expect("the upkeep stops on shutdown")
            .expect("the upkeep ends cleanly");
        trimmed
    });
    assert!(
        trimmed + 100 <= scattered,
        "at least 100 MiB of the holes given back: {scattered} MiB before the trim, {trimmed} MiB after"
    );
    assert_eq!(kept.len(), 12_500, "the live blocks are still there");
    assert!(kept.iter().all(|b| b[0] == b[255]));
}
