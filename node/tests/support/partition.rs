//! The network between cluster members: one [`Link`] per ordered pair of members, and
//! partitions expressed as links cut.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::proxy::Link;
use super::proxy::LinkState;

/// How a cut link behaves (see [`LinkState`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    Blackhole,
    Refuse,
}

impl Cut {
    fn state(self) -> LinkState {
        match self {
            Cut::Blackhole => LinkState::Blackhole,
            Cut::Refuse => LinkState::Refuse,
        }
    }
}

/// Links between members by position: `links[(from, to)]` carries the connections `from`
/// opens to `to`.
pub struct Network {
    links: BTreeMap<(usize, usize), Link>,
}

impl Network {
    /// Links between every ordered pair of the members listening on `grpc`.
    pub async fn start(grpc: &[SocketAddr]) -> Network {
        let mut links = BTreeMap::new();
        for (from, _) in grpc.iter().enumerate() {
            for (to, target) in grpc.iter().enumerate() {
                if from != to {
                    links.insert((from, to), Link::start(*target).await);
                }
            }
        }
        Network { links }
    }

    /// Where member `from` reaches member `to`.
    pub fn route(&self, from: usize, to: usize) -> SocketAddr {
        self.links[&(from, to)].addr
    }

    /// Cuts the connections `from` opens to `to` (a one-way cut: `to` still reaches `from`).
    pub fn cut(&self, from: usize, to: usize, how: Cut) {
        self.links[&(from, to)].set(how.state());
    }

    /// Isolates member `i` from every other member, both ways.
    pub fn isolate(&self, i: usize, how: Cut) {
        for ((from, to), link) in &self.links {
            if *from == i || *to == i {
                link.set(how.state());
            }
        }
    }

    /// Opens every link.
    pub fn heal(&self) {
        for link in self.links.values() {
            link.set(LinkState::Open);
        }
    }

    /// Whether any link is cut.
    pub fn partitioned(&self) -> bool {
        self.links.values().any(|l| l.state() != LinkState::Open)
    }
}
