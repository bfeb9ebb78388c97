//! Which server takes the next request: roundrobin, leastconn, source, random (power of two
//! choices). A choice takes a slot on the server (under its `maxconn`) in the same step, so two
//! threads cannot both take the last one.

use crate::config::{Backend, Balance};
use crate::state::BackendState;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use throng_net::hash::fnv1a;

#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    /// This server, with a slot taken.
    Server(usize),
    /// Servers are up but each is at its `maxconn`: wait in the queue.
    AllFull,
    /// No server is up (or every one is excluded).
    NoneUp,
}

/// Who a connection is from, for the balances that keep a client on one server: its address
/// (`source`), and in mode mqtt its client id (`client-id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Affinity {
    pub addr: IpAddr,
    /// A stable hash of the CONNECT's client id; `None` when it was empty.
    pub client_id: Option<u64>,
}

impl Affinity {
    pub fn of(addr: IpAddr) -> Affinity {
        Affinity {
            addr,
            client_id: None,
        }
    }

    pub fn with_client_id(addr: IpAddr, client_id: &str) -> Affinity {
        Affinity {
            addr,
            client_id: (!client_id.is_empty()).then(|| fnv1a(client_id.as_bytes())),
        }
    }
}

/// Chooses a server for a request from `client`, never one in `exclude` (servers that already
/// failed this request) unless nothing else is up.
pub fn choose(
    backend: &Backend,
    state: &BackendState,
    client: Affinity,
    exclude: &[usize],
) -> Choice {
    let usable = |i: usize| state.servers[i].usable() && !exclude.contains(&i);
    if !(0..state.servers.len()).any(usable) {
        return Choice::NoneUp;
    }
    let take = |i: usize| state.servers[i].try_acquire(state.servers[i].maxconn());
    let balance = match (backend.balance, client.client_id) {
        (Balance::ClientId, None) => backend.balance_fallback,
        (balance, _) => balance,
    };
    let picked = match balance {
        Balance::RoundRobin => round_robin(state, &usable, &take),
        Balance::LeastConn => least_loaded(state, &usable, &take),
        Balance::Source => by_source(state, client.addr, &usable, &take),
        Balance::Random => two_choices(state, &usable, &take),
        Balance::ClientId => by_client_id(
            backend.hash_balance_factor,
            state,
            client.client_id.unwrap_or(0),
            &usable,
            &take,
        ),
    };
    picked.map_or(Choice::AllFull, Choice::Server)
}

fn round_robin(
    state: &BackendState,
    usable: &dyn Fn(usize) -> bool,
    take: &dyn Fn(usize) -> bool,
) -> Option<usize> {
    let rotation = state.rotation();
    let len = rotation.len();
    let start = state.next.fetch_add(1, Relaxed);
    (0..len)
        .filter_map(|step| rotation.get((start + step) % len).map(|&i| i as usize))
        .find(|&i| usable(i) && take(i))
}

fn least_loaded(
    state: &BackendState,
    usable: &dyn Fn(usize) -> bool,
    take: &dyn Fn(usize) -> bool,
) -> Option<usize> {
    // Ties go round: start the scan where the last choice left off.
    let n = state.servers.len();
    let start = state.next.fetch_add(1, Relaxed);
    let mut order: Vec<usize> = (0..n)
        .map(|k| (start + k) % n)
        .filter(|&i| usable(i))
        .collect();
    order.sort_by_key(|&i| state.servers[i].load(state.servers[i].weight()));
    order.into_iter().find(|&i| take(i))
}

fn by_source(
    state: &BackendState,
    client: IpAddr,
    usable: &dyn Fn(usize) -> bool,
    take: &dyn Fn(usize) -> bool,
) -> Option<usize> {
    let up: Vec<usize> = (0..state.servers.len()).filter(|&i| usable(i)).collect();
    let total: u64 = up.iter().map(|&i| state.servers[i].weight() as u64).sum();
    let mut point = hash_address(client) % total.max(1);
    for &i in &up {
        let weight = state.servers[i].weight() as u64;
        if point < weight {
            // The client's server, or the queue: another server would break the stickiness.
            return take(i).then_some(i);
        }
        point -= weight;
    }
    None
}

fn two_choices(
    state: &BackendState,
    usable: &dyn Fn(usize) -> bool,
    take: &dyn Fn(usize) -> bool,
) -> Option<usize> {
    let up: Vec<usize> = (0..state.servers.len()).filter(|&i| usable(i)).collect();
    // Every usable server may have gone since `choose` looked (a check, a command).
    let fallback = *up.first()?;
    let weighted_pick = || {
        let total: u64 = up.iter().map(|&i| state.servers[i].weight() as u64).sum();
        let mut point = throng_net::random::up_to(total.saturating_sub(1));
        for &i in &up {
            let weight = state.servers[i].weight() as u64;
            if point < weight {
                return i;
            }
            point -= weight;
        }
        fallback
    };
    let (a, b) = (weighted_pick(), weighted_pick());
    let load = |i: usize| state.servers[i].load(state.servers[i].weight());
    let (first, second) = if load(b) < load(a) { (b, a) } else { (a, b) };
    if take(first) {
        return Some(first);
    }
    if take(second) {
        return Some(second);
    }
    up.into_iter().find(|&i| take(i))
}

/// Weighted rendezvous hashing: every server scores the client id (a hash of the id and the
/// server's name, weighted), the highest usable score wins. A server added or removed moves
/// only the ids it wins or won; the others keep their server. The chosen server or the queue,
/// as `source`: another server would break the stickiness.
///
/// With `hash_balance_factor` (bounded loads, as HAProxy's consistent hashing has it), ids aimed
/// at one server cannot pile onto it: a server past its share of the load is passed over for
/// the id's next-best server, so an attacker choosing ids cannot load one broker beyond the
/// factor. Off by default: a spilled id leaves its server.
fn by_client_id(
    hash_balance_factor: Option<u32>,
    state: &BackendState,
    client_id: u64,
    usable: &dyn Fn(usize) -> bool,
    take: &dyn Fn(usize) -> bool,
) -> Option<usize> {
    let score = |i: usize| {
        let name_hash = state.servers[i].name_hash.load(Relaxed);
        let mixed = splitmix64(client_id ^ name_hash);
        // A uniform draw in (0, 1]; -w / ln(u) is the weighted score (Schindelhauer & Schomaker).
        let unit = ((mixed >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        -(state.servers[i].weight() as f64) / unit.ln().min(-f64::MIN_POSITIVE)
    };
    let Some(factor) = hash_balance_factor else {
        let best = (0..state.servers.len())
            .filter(|&i| usable(i))
            .max_by(|&a, &b| score(a).total_cmp(&score(b)))?;
        return take(best).then_some(best);
    };
    let mut ranked: Vec<(usize, f64)> = (0..state.servers.len())
        .filter(|&i| usable(i))
        .map(|i| (i, score(i)))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let eligible = within_bound(state, &ranked, factor);
    ranked
        .iter()
        .map(|&(i, _)| i)
        .find(|&i| eligible(i))
        .and_then(|i| take(i).then_some(i))
}

/// Whether a server may take one more connection under bounded loads: HAProxy's
/// `chash_server_is_eligible`. The slots of all (`factor`% of the connections plus this one)
/// are shared by weight; a server is eligible while it holds fewer than its share.
fn within_bound<'a>(
    state: &'a BackendState,
    ranked: &[(usize, f64)],
    factor: u32,
) -> impl Fn(usize) -> bool + 'a {
    let used: u64 = ranked
        .iter()
        .map(|&(i, _)| u64::from(state.servers[i].active.load(Relaxed)))
        .sum();
    let weight: u64 = ranked
        .iter()
        .map(|&(i, _)| u64::from(state.servers[i].weight()))
        .sum::<u64>()
        .max(1);
    let slots = ((used + 1) * u64::from(factor)).div_ceil(100);
    let (per_weight, remainder) = (slots / weight, slots % weight);
    move |i| {
        let w = u64::from(state.servers[i].weight());
        let share = w * per_weight + w.min(remainder);
        u64::from(state.servers[i].active.load(Relaxed)) < share
    }
}

/// A stable hash of an address, the same on every thread and every run.
fn hash_address(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => fnv1a(&v4.octets()),
        IpAddr::V6(v6) => fnv1a(&v6.octets()),
    }
}

/// Spreads a hash's bits (FNV-1a's low bits mix poorly for short inputs).
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendTimeouts, Mode, Server};
    use std::time::Duration;

    fn backend(balance: Balance, weights: &[u32], maxconn: Option<u32>) -> (Backend, BackendState) {
        let backend = Backend {
            name: "b".into(),
            mode: Mode::Http,
            balance,
            balance_fallback: Balance::RoundRobin,
            hash_balance_factor: None,
            servers: weights
                .iter()
                .enumerate()
                .map(|(i, &weight)| Server {
                    name: format!("s{i}").into(),
                    address: format!("127.0.0.1:{}", 1000 + i).parse().unwrap(),
                    weight,
                    maxconn,
                    checked: true,
                    send_proxy: None,
                    tls: None,
                })
                .collect(),
            source: Vec::new(),
            check: None,
            timeouts: BackendTimeouts {
                connect: Duration::from_secs(1),
                server: Duration::from_secs(1),
                tunnel: None,
                queue: Duration::from_secs(1),
            },
            retries: 3,
            redispatch: true,
            max_idle_per_server: 1,
            tls: None,
        };
        let state = BackendState::new(&backend);
        (backend, state)
    }

    fn release(state: &BackendState, i: usize) {
        state.servers[i].active.fetch_sub(1, Relaxed);
    }

    const CLIENT: Affinity = Affinity {
        addr: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        client_id: None,
    };

    #[test]
    fn a_client_id_keeps_its_server_and_a_new_server_takes_only_its_share() {
        let (b, s) = backend(Balance::ClientId, &[1, 1, 1], None);
        let place = |b: &Backend, s: &BackendState, id: &str| {
            let client = Affinity::with_client_id(CLIENT.addr, id);
            let Choice::Server(i) = choose(b, s, client, &[]) else {
                panic!("no server for {id}")
            };
            release(s, i);
            b.servers[i].name.to_string()
        };
        let ids: Vec<String> = (0..3000).map(|i| format!("sensor-{i}")).collect();
        let before: Vec<String> = ids.iter().map(|id| place(&b, &s, id)).collect();
        let again: Vec<String> = ids.iter().map(|id| place(&b, &s, id)).collect();
        assert_eq!(before, again, "the same server every time");
        for name in ["s0", "s1", "s2"] {
            let share = before.iter().filter(|n| *n == name).count();
            assert!((800..1200).contains(&share), "{name}: {share} of 3000");
        }
        // A fourth server: about a quarter of the ids move, all of them to it.
        let (b4, s4) = backend(Balance::ClientId, &[1, 1, 1, 1], None);
        let after: Vec<String> = ids.iter().map(|id| place(&b4, &s4, id)).collect();
        let moved: Vec<&String> = before
            .iter()
            .zip(&after)
            .filter(|(x, y)| x != y)
            .map(|(_, y)| y)
            .collect();
        assert!((600..900).contains(&moved.len()), "{} moved", moved.len());
        assert!(moved.iter().all(|n| *n == "s3"), "only to the new server");
        // A server down: its ids go elsewhere, the others stay.
        s.servers[1].up.store(false, Relaxed);
        let down: Vec<String> = ids.iter().map(|id| place(&b, &s, id)).collect();
        for (x, y) in before.iter().zip(&down) {
            if x != "s1" {
                assert_eq!(x, y);
            }
        }
        // No client id: the fallback balance (round robin here) spreads them.
        s.servers[1].up.store(true, Relaxed);
        let spread: std::collections::HashSet<String> = (0..6).map(|_| place(&b, &s, "")).collect();
        assert_eq!(spread.len(), 3);
    }

    /// Ids chosen to land on one server (an attacker's) spill past the factor: with 125, no
    /// server holds more than 1.25 times the average (plus one); without it, all pile up.
    #[test]
    fn bounded_loads_spill_ids_aimed_at_one_server() {
        let (mut b, s) = backend(Balance::ClientId, &[1, 1, 1, 1], None);
        let target = |b: &Backend, s: &BackendState, id: &str| {
            let client = Affinity::with_client_id(CLIENT.addr, id);
            let Choice::Server(i) = choose(b, s, client, &[]) else {
                panic!("no server for {id}")
            };
            release(s, i);
            i
        };
        // 400 ids that all hash to server 0.
        let aimed: Vec<String> = (0..20_000)
            .map(|i| format!("evil-{i}"))
            .filter(|id| target(&b, &s, id) == 0)
            .take(400)
            .collect();
        assert_eq!(aimed.len(), 400);
        let hold = |b: &Backend, s: &BackendState| {
            for id in &aimed {
                let client = Affinity::with_client_id(CLIENT.addr, id);
                assert!(matches!(choose(b, s, client, &[]), Choice::Server(_)));
            }
            let loads: Vec<u32> = s.servers[..4]
                .iter()
                .map(|x| x.active.load(Relaxed))
                .collect();
            for x in &s.servers {
                x.active.store(0, Relaxed);
            }
            loads
        };
        assert_eq!(hold(&b, &s), vec![400, 0, 0, 0]);
        b.hash_balance_factor = Some(125);
        let loads = hold(&b, &s);
        assert!(loads.iter().all(|&l| l <= 126), "{loads:?}");
        assert_eq!(loads.iter().sum::<u32>(), 400);
        // Under the bound an id keeps its server.
        assert_eq!(target(&b, &s, &aimed[0]), 0);
    }

    #[test]
    fn round_robin_follows_weights_and_skips_down_servers() {
        let (b, s) = backend(Balance::RoundRobin, &[2, 1], None);
        let picks: Vec<_> = (0..6).map(|_| choose(&b, &s, CLIENT, &[])).collect();
        let first = picks.iter().filter(|c| **c == Choice::Server(0)).count();
        assert_eq!(first, 4);
        s.servers[0].up.store(false, Relaxed);
        assert_eq!(choose(&b, &s, CLIENT, &[]), Choice::Server(1));
        assert_eq!(choose(&b, &s, CLIENT, &[1]), Choice::NoneUp);
    }

    #[test]
    fn least_connections_picks_the_idlest() {
        let (b, s) = backend(Balance::LeastConn, &[1, 1, 1], None);
        for _ in 0..3 {
            assert!(matches!(choose(&b, &s, CLIENT, &[]), Choice::Server(_)));
        }
        release(&s, 1);
        assert_eq!(choose(&b, &s, CLIENT, &[]), Choice::Server(1));
    }

    #[test]
    fn source_is_sticky_and_queues_rather_than_moving() {
        let (b, s) = backend(Balance::Source, &[1, 1, 1, 1], Some(1));
        let Choice::Server(first) = choose(&b, &s, CLIENT, &[]) else {
            panic!()
        };
        assert_eq!(choose(&b, &s, CLIENT, &[]), Choice::AllFull);
        release(&s, first);
        assert_eq!(choose(&b, &s, CLIENT, &[]), Choice::Server(first));
    }

    #[test]
    fn full_servers_mean_the_queue() {
        for balance in [Balance::RoundRobin, Balance::LeastConn, Balance::Random] {
            let (b, s) = backend(balance, &[1, 1], Some(1));
            assert!(matches!(choose(&b, &s, CLIENT, &[]), Choice::Server(_)));
            assert!(matches!(choose(&b, &s, CLIENT, &[]), Choice::Server(_)));
            assert_eq!(choose(&b, &s, CLIENT, &[]), Choice::AllFull, "{balance:?}");
        }
    }

    /// Every server gone between `choose`'s look and the pick (a check, a command on another
    /// thread): no server, not a panic.
    #[test]
    fn two_choices_with_no_server_left_picks_none() {
        let (_, s) = backend(Balance::Random, &[1, 1], None);
        assert_eq!(two_choices(&s, &|_| false, &|_| true), None);
    }

    #[test]
    fn two_choices_spread_load_evenly() {
        let (b, s) = backend(Balance::Random, &[1, 1, 1, 1], None);
        for _ in 0..400 {
            let _ = choose(&b, &s, CLIENT, &[]);
        }
        let loads: Vec<u32> = s.servers[..4]
            .iter()
            .map(|x| x.active.load(Relaxed))
            .collect();
        // Power of two choices keeps every server within a few of the mean (100).
        assert!(loads.iter().all(|&l| (95..=105).contains(&l)), "{loads:?}");
    }
}
