//! Crash points: named places where the crash-torture test (`cli/tests/it/crash_torture.rs`)
//! stops `sdp local` as `kill -9` would, to prove that a crash at any of them loses nothing
//! acknowledged, counts nothing twice and leaves no file a query would misread.
//!
//! Compiled in only with the `crash-points` feature, which the test build turns on (a
//! dev-dependency of the CLI); in every other build [`point`] is an empty inline function. With
//! the feature, `SDP_CRASH_AT=<name>:<n>` in the environment kills the process with `SIGKILL` the
//! `n`-th time [`point`]`(<name>)` runs: no destructor, flush or answer runs after it, on any
//! thread, exactly as for an outside `kill -9`. Hand-written rather than the `fail` crate: that
//! one's actions panic or return, and a panic kills one thread, not the process.

/// Every crash point, by the step it interrupts.
pub const POINTS: &[&str] = &[
    // The local log: a group commit about to be made durable, and made durable but not yet
    // answered (the client sees its connection drop, not a 200).
    "log.before_commit",
    "log.after_commit",
    // The processor: a batch counted but not yet landed; landed but its offset not yet saved.
    "processor.after_count",
    "processor.after_landing",
    // Any object of the lake directory: its bytes written and synced to a temporary file, not
    // yet renamed into place.
    "objects.before_rename",
    // Compaction: a new generation's files written, its manifest not; the manifest written, the
    // previous generation not yet removed.
    "compaction.after_files",
    "compaction.after_manifest",
    // Model promotion: the version stored, not yet serving; serving, older versions not pruned.
    "promotion.after_version",
    "promotion.after_current",
];

#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn point(_name: &'static str) {}

#[cfg(feature = "crash-points")]
pub fn point(name: &'static str) {
    armed::point(name);
}

#[cfg(feature = "crash-points")]
mod armed {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    /// The armed point and the hit that kills, from `SDP_CRASH_AT`.
    fn armed() -> Option<&'static (String, u64)> {
        static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
        ARMED
            .get_or_init(|| {
                let setting = std::env::var("SDP_CRASH_AT").ok()?;
                // A setting that arms nothing would let a test wait out its deadline for nothing.
                let parsed = setting.rsplit_once(':').and_then(|(name, hit)| {
                    let hit: u64 = hit.parse().ok().filter(|&h| h > 0)?;
                    super::POINTS
                        .contains(&name)
                        .then(|| (name.to_owned(), hit))
                });
                assert!(
                    parsed.is_some(),
                    "SDP_CRASH_AT=`{setting}` is not <crash point>:<hit from 1>; the points: {:?}",
                    super::POINTS
                );
                parsed
            })
            .as_ref()
    }

    pub fn point(name: &'static str) {
        debug_assert!(super::POINTS.contains(&name), "`{name}` is not in POINTS");
        static HITS: AtomicU64 = AtomicU64::new(0);
        let Some((armed, kill_at)) = armed() else {
            return;
        };
        if armed != name || HITS.fetch_add(1, Ordering::SeqCst) + 1 != *kill_at {
            return;
        }
        eprintln!("crash point {name}: hit {kill_at}, killing this process");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
        // SIGKILL cannot be caught; should it not be delivered at once, nothing more runs here.
        loop {
            std::thread::park();
        }
    }
}
