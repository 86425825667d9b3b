//! What Runnel's tests share across crates: node tests, client tests and the e2e suite all
//! start real processes on loopback ports.

use std::net::TcpListener;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering;

const FIRST: u32 = 10_000;
const SPAN: u32 = 22_000;

/// A free loopback port below the kernel's ephemeral range (Linux: 32768 and up), so that no
/// outgoing connection of a running process (a node's replication, liveness pings and
/// forwarding; the API server's to etcd) can take it between this check and the bind of the
/// process it is meant for (seen in CI as "Address already in use"). Ports are handed out in
/// turn from a per-process starting point, so test processes running at once rarely try the
/// same ones. `None` when the whole range is taken.
pub fn free_port() -> Option<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    (0..SPAN).find_map(|_| {
        let port = u16::try_from(FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN).ok()?;
        TcpListener::bind(("127.0.0.1", port)).ok().map(|_| port)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_distinct() {
        let a = free_port();
        let b = free_port();
        assert!(a.is_some_and(|p| (10_000..32_000).contains(&p)));
        assert_ne!(a, b);
    }
}
