//! A fault-injecting TCP proxy for one direction of a node pair: node A reaches node B only
//! through A's own [`Link`] to B (A's `--peers` names the link's address for B), so cutting it
//! cuts exactly the connections A opens to B; B's connections to A pass through another link.
//!
//! A link is open (bytes forwarded both ways), blackholed (connections accepted and then
//! ignored: every byte read and dropped, nothing forwarded, as in a partition where packets
//! vanish; the peer learns only from its own timeouts), or refusing (connections reset at once,
//! as when the peer's host answers with RST). Changing the state drops every connection
//! accepted before the change: open connections are cut when the link goes down, blackholed
//! ones are reset when it heals.

use std::net::SocketAddr;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Open,
    Blackhole,
    Refuse,
}

/// One directed proxy: listens on `addr`, forwards to `target`.
pub struct Link {
    pub addr: SocketAddr,
    pub target: SocketAddr,
    state: watch::Sender<LinkState>,
    accept: JoinHandle<()>,
}

impl Link {
    /// Starts an open link to `target` on a fresh loopback port.
    pub async fn start(target: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (state, rx) = watch::channel(LinkState::Open);
        let accept = tokio::spawn(accept_loop(listener, target, rx));
        Link {
            addr,
            target,
            state,
            accept,
        }
    }

    pub fn set(&self, state: LinkState) {
        self.state.send_replace(state);
    }

    pub fn state(&self) -> LinkState {
        *self.state.borrow()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, state: watch::Receiver<LinkState>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve(inbound, target, state.clone()));
    }
}

/// Closes with RST rather than FIN, as a host that lost the connection would.
// `set_linger` is deprecated because a positive linger blocks on drop; zero never blocks.
#[allow(deprecated)]
fn reset(conn: TcpStream) {
    let _ = conn.set_linger(Some(std::time::Duration::ZERO));
    drop(conn);
}

async fn serve(inbound: TcpStream, target: SocketAddr, mut state: watch::Receiver<LinkState>) {
    let now = *state.borrow_and_update();
    match now {
        LinkState::Refuse => reset(inbound),
        LinkState::Blackhole => swallow(inbound, &mut state).await,
        LinkState::Open => {
            let Ok(outbound) = TcpStream::connect(target).await else {
                reset(inbound);
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            forward(inbound, outbound, &mut state).await;
        }
    }
}

/// Reads and drops whatever arrives until the link changes state, then resets.
async fn swallow(mut conn: TcpStream, state: &mut watch::Receiver<LinkState>) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        tokio::select! {
            r = conn.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            _ = state.changed() => break,
        }
    }
    reset(conn);
}

/// Forwards both ways until either side closes or the link stops being open. A link that
/// becomes blackholed keeps both sockets and drops their bytes (the connection hangs, as in a
/// real partition); a refusing link resets both at once.
async fn forward(mut a: TcpStream, mut b: TcpStream, state: &mut watch::Receiver<LinkState>) {
    let cut = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut a, &mut b) => None,
        s = state.wait_for(|s| *s != LinkState::Open) => s.ok().map(|s| *s),
    };
    match cut {
        Some(LinkState::Blackhole) => {
            let (mut sa, mut sb) = (state.clone(), state.clone());
            tokio::join!(swallow(a, &mut sa), swallow(b, &mut sb));
        }
        _ => {
            reset(a);
            reset(b);
        }
    }
}
