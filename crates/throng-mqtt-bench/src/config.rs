//! What an MQTT run is told to do.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use throng_mqtt::{QoS, Version};

pub use throng_results::mqtt::Role;

/// How new connections arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrivals {
    Constant,
    Poisson,
}

impl Arrivals {
    /// When each of `count` connections opens, in seconds from the ramp's start, for `rate` a
    /// second: `i / rate`, or the running sum of exponential gaps of mean `1 / rate`.
    pub fn times(self, count: usize, rate: f64) -> Vec<f64> {
        match self {
            Arrivals::Constant => (0..count).map(|i| i as f64 / rate).collect(),
            Arrivals::Poisson => {
                let mut at = 0.0;
                (0..count)
                    .map(|i| {
                        if i > 0 {
                            // A uniform draw in (0, 1]: -ln(u) / rate is exponential.
                            let unit = (throng_net::random::up_to((1 << 53) - 1) + 1) as f64
                                / (1u64 << 53) as f64;
                            at += -unit.ln() / rate;
                        }
                        at
                    })
                    .collect()
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub role: Role,
    pub broker: SocketAddr,
    /// The broker as given (`-h` and `-p`): what parts of one run on different machines share
    /// even when the name resolves differently there.
    pub broker_name: String,
    /// The TLS server name (SNI and certificate check) when speaking TLS.
    pub server_name: String,
    pub tls: Option<throng_tls::config::ClientOptions>,
    pub version: Version,
    /// Clients of the role (`-c`).
    pub clients: usize,
    /// New connections per second (`-R`).
    pub connect_rate: f64,
    /// How the ramp's connections are spread: exactly `1 / connect_rate` apart, or as a
    /// Poisson process of that rate (independent arrivals, as many real clients make).
    pub arrivals: Arrivals,
    pub keep_alive: u16,
    pub qos: QoS,
    /// Topic template for publishing or subscribing: `%i` is the client's index.
    pub topic: String,
    /// With `Role::Pub`: subscribers in this run, and their filter template.
    pub subscribers: usize,
    pub sub_topic: String,
    /// Messages per second over all publishers (an open model: due times never wait).
    pub publish_rate: f64,
    /// Payload bytes (at least the 32 of throng's stamp).
    pub payload_size: usize,
    /// QoS 1 and 2 messages awaiting acknowledgement per connection, at most (and at most the
    /// broker's MQTT 5 Receive Maximum).
    pub inflight: u16,
    /// Client ids are `{prefix}-{role}-{index}`.
    pub prefix: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub clean_start: bool,
    pub sources: Vec<IpAddr>,
    /// How long the run lasts from its start; `None`: until Ctrl-C.
    pub duration: Option<Duration>,
    /// After publishing ends, how long subscribers wait for messages still on their way.
    pub drain: Duration,
    /// From the TCP connect to CONNACK (and SUBACK), at most.
    pub connect_timeout: Duration,
    /// Largest packet accepted from the broker.
    pub max_packet: usize,
    pub threads: usize,
    /// Reconnect a connection that ended, after this back-off (doubling, to 30 s); `None`: not.
    pub reconnect: Option<Duration>,
    /// The run's name in its results (`--name`).
    pub name: String,
    /// This process's share of a run over processes or machines: part I of N.
    pub part: Option<Part>,
    /// When the run starts (Unix ns), the same for every part; `None`: at once.
    pub start_unix_ns: Option<u64>,
    /// The machine's name in the results (`--host-name`); `None`: its host name.
    pub host_name: Option<String>,
}

/// Part `index` of `of` (0-based): the part opens every `of`-th of the run's connections,
/// starting with connection `index`, at the times the whole run's ramp gives them, and its
/// publishers keep the whole run's schedule. The parts together make the one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    pub index: usize,
    pub of: usize,
}

impl Config {
    pub fn client_id(&self, role: Role, index: usize) -> String {
        format!("{}-{}-{index}", self.prefix, role.name())
    }

    /// The run's shape, as its results carry it.
    pub fn plan(&self) -> throng_results::mqtt::Plan {
        throng_results::mqtt::Plan {
            role: self.role,
            version: self.version.name().into(),
            qos: self.qos as u8,
            tls: self.tls.is_some(),
            broker: self.broker_name.clone(),
            clients: self.clients as u64,
            subscribers: if self.role == Role::Pub {
                self.subscribers as u64
            } else {
                0
            },
            topic: self.topic.clone(),
            sub_topic: self.sub_topic.clone(),
            publish_rate: if self.role == Role::Pub {
                self.publish_rate
            } else {
                0.0
            },
            connect_rate: self.connect_rate,
            keep_alive: self.keep_alive,
            payload_size: self.payload_size as u64,
        }
    }

    /// A topic template with the client's index in place of `%i`.
    pub fn topic_of(template: &str, index: usize) -> String {
        throng_results::mqtt::Plan::topic_of(template, index as u64)
    }

    /// The filter subscribers use when not told: the publish template with `+` for `%i`.
    pub fn default_sub_topic(publish_template: &str) -> String {
        publish_template.replace("%i", "+")
    }
}

#[cfg(test)]
mod arrival_tests {
    use super::Arrivals;

    #[test]
    fn constant_arrivals_are_exactly_apart() {
        assert_eq!(Arrivals::Constant.times(4, 2.0), vec![0.0, 0.5, 1.0, 1.5]);
    }

    #[test]
    fn poisson_arrivals_have_the_rate_and_exponential_gaps() {
        let times = Arrivals::Poisson.times(20_001, 100.0);
        assert_eq!(times[0], 0.0);
        let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| g > 0.0));
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let variance = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        // 20,000 gaps: the mean's standard error is 0.7% of it; 5% is seven of those. An
        // exponential's standard deviation equals its mean (a constant ramp's is 0).
        assert!((mean - 0.01).abs() < 0.0005, "mean gap {mean}");
        let cv = variance.sqrt() / mean;
        assert!((0.9..1.1).contains(&cv), "coefficient of variation {cv}");
    }
}
