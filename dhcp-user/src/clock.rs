//! The wall clock, read in one place: lease times, leasequery times and the fast path's expiries
//! are all Unix seconds from [`unix_now`].

/// Current Unix time, seconds (0 before 1970; saturating far in the future).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}
