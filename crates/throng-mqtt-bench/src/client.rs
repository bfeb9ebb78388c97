//! One client's life: connect (TCP, TLS, CONNECT → CONNACK), subscribe when a subscriber, then
//! until the run stops: ping every keep-alive and time the answer, publish on the schedule when
//! a publisher, answer and measure what arrives; then DISCONNECT. A connection that ends early
//! is counted by its cause, and opened again after a back-off when `--reconnect` asks.
//!
//! A publisher's messages are due on the run's one open-model schedule whatever the broker does:
//! message `k` of publisher `p` of `P` is due at `(k * P + p) / rate` after publishing starts.
//! At QoS 1 and 2 a window bounds the messages awaiting acknowledgement (the broker's Receive
//! Maximum at most); a message due while it is full is counted as delayed, sent when a slot
//! frees, and still measured from when it was due.

use crate::alarms::{Armed, IDLE_LOOK};
use crate::config::{Config, Role};
use crate::connection::{Connection, Event, Failure};
use crate::run::ThreadCtx;
use crate::stamp::Stamp;
use std::collections::HashMap;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};
use throng_mqtt::write::{self, ConnectOptions};
use throng_mqtt::{kind, QoS, Version};
use throng_results::mqtt::stats::record;

/// MQTT 5's reason code for a session taken over by another connection with the same id.
const SESSION_TAKEN_OVER: u8 = 0x8E;

/// A publisher's place in the schedule, kept across reconnections.
pub(crate) struct Publisher {
    /// Its index among the run's publishers, and how many there are.
    pub index: u32,
    pub of: u32,
    /// The next message's number among this publisher's.
    pub next: u64,
    pub topic: String,
    /// The payload being written, kept from message to message (publishers only).
    pub payload: Vec<u8>,
    /// This connection's messages awaiting acknowledgement: here, not in every connection's
    /// future, since only publishers have any.
    pub flights: Flights,
}

/// A publisher's messages in flight on its current connection (QoS 1 and 2).
#[derive(Default)]
pub(crate) struct Flights {
    in_flight: HashMap<u16, InFlight>,
    next_packet_id: u16,
    /// A due message found the window full: counted once, sent when a slot frees.
    waiting_for_window: bool,
    /// When the window last opened after being full: a message due before then waited for the
    /// broker, not for the generator.
    window_opened: Option<Instant>,
}

impl Publisher {
    /// When message `k` is due, from the start of publishing.
    fn due(&self, k: u64, rate: f64) -> Duration {
        let global = k as f64 * f64::from(self.of) + f64::from(self.index);
        Duration::from_secs_f64(global / rate)
    }
}

/// How a session ended.
enum Ended {
    /// The run stopped it.
    Stopped,
    Failed(Failure),
}

/// A client's whole life, as a future: every held connection is one of these in its task, so
/// its size is the generator's memory per connection. An `async` block that moves its
/// arguments in, not an `async fn`, which would keep a second copy of each.
#[allow(clippy::manual_async_fn)] // on purpose: see above
pub(crate) fn client(
    ctx: Rc<ThreadCtx>,
    role: Role,
    index: usize,
    // Boxed: a connection that only holds or subscribes keeps a pointer's worth for it.
    mut publisher: Option<Box<Publisher>>,
) -> impl std::future::Future<Output = ()> {
    async move {
        // Counted as ended however the future ends: returned, or dropped with its thread.
        let _ended = Departure(&ctx);
        let mut backoff = ctx.config.reconnect;
        let mut first = true;
        let mut subscribed_once = false;
        loop {
            if !first {
                ctx.stats().reconnects += 1;
            }
            first = false;
            // One connection from its opening to its end, written out here rather than in a
            // function of its own: each level of nested futures keeps copies of its arguments, and
            // this future is what every held connection costs. The opening's result is taken
            // apart in a statement of its own with no wait in it, so that it takes no room while
            // the connection is held.
            let failure = 'connection: {
                let (mut connection, window) =
                    match opened(&ctx, role, index, &mut subscribed_once).await {
                        Ok(opened) => opened,
                        Err(failure) => break 'connection failure,
                    };
                let subscriber = (role == Role::Sub).then_some(index as u32);
                let ended = hold(
                    &ctx,
                    &mut connection,
                    publisher.as_deref_mut(),
                    subscriber,
                    window,
                )
                .await;
                closed(&ctx, &mut connection, &ended).await;
                match ended {
                    Ended::Stopped => return,
                    Ended::Failed(failure) => failure,
                }
            };
            // Boxed: only a connection that failed pays for the back-off's timer.
            if !Box::pin(again(&ctx, failure, &mut backoff)).await {
                return;
            }
        }
    }
}

/// Tells the thread that a client ended, when dropped.
struct Departure<'a>(&'a ThreadCtx);

impl Drop for Departure<'_> {
    fn drop(&mut self) {
        self.0.clients.ended();
    }
}

/// A connection failed: counted by its cause; `true` when it is to be opened again (after the
/// back-off, which doubles up to 30 s), `false` when not (no `--reconnect`, or the run stopped).
async fn again(ctx: &ThreadCtx, failure: Failure, backoff: &mut Option<Duration>) -> bool {
    ctx.live
        .errors
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ctx.stats().error(failure.class, || failure.message.clone());
    let Some(wait) = *backoff else {
        return false;
    };
    if ctx.live.is_stopped() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = ctx.live.stopped() => return false,
    }
    *backoff = Some((wait * 2).min(Duration::from_secs(30)));
    true
}

/// A connection opened and counted, with its window of unacknowledged messages (the broker's
/// Receive Maximum at most). `subscribed_once`: this client has had a SUBACK already (in an
/// earlier connection), and is counted among the subscribers that are ready.
async fn opened(
    ctx: &ThreadCtx,
    role: Role,
    index: usize,
    subscribed_once: &mut bool,
) -> Result<(Connection, u16), Failure> {
    ctx.stats().connect_attempts += 1;
    let started = Instant::now();
    let (connection, receive_maximum) = open_in_time(ctx, role, index).await?;
    {
        let mut stats = ctx.stats();
        stats.connected += 1;
        record(&mut stats.connect_time, started.elapsed());
    }
    let live = &ctx.live;
    live.connected
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Counted once per subscriber: publishing waits for each one's first SUBACK.
    if role == Role::Sub && !*subscribed_once {
        *subscribed_once = true;
        live.subscribed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let window = receive_maximum
        .unwrap_or(u16::MAX)
        .min(ctx.config.inflight)
        .max(1);
    Ok((connection, window))
}

/// A connection's end counted; one the run stopped says DISCONNECT first.
async fn closed(ctx: &ThreadCtx, connection: &mut Connection, ended: &Ended) {
    ctx.live
        .connected
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    ctx.stats().disconnected += 1;
    if let Ended::Stopped = ended {
        let mut out = Vec::new();
        let _ = connection.send(write::disconnect(&mut out)).await;
    }
}

/// [`open`] within `--connect-timeout`. Boxed: the opening's state (TCP connect, TLS handshake)
/// is large and lives only until the connection is open; inline, every held connection would
/// keep room for it.
async fn open_in_time(
    ctx: &ThreadCtx,
    role: Role,
    index: usize,
) -> Result<(Connection, Option<u16>), Failure> {
    let config = &ctx.config;
    match Box::pin(tokio::time::timeout(
        config.connect_timeout,
        open(ctx, role, index),
    ))
    .await
    {
        Ok(opened) => opened,
        Err(_) => Err(Failure::new(
            "timeout",
            format!(
                "no CONNACK{} within {:?}",
                if role == Role::Sub { " and SUBACK" } else { "" },
                config.connect_timeout
            ),
        )),
    }
}

/// TCP, TLS, CONNECT → CONNACK, and SUBSCRIBE → SUBACK for a subscriber; the broker's Receive
/// Maximum (MQTT 5) when it gave one.
async fn open(
    ctx: &ThreadCtx,
    role: Role,
    index: usize,
) -> Result<(Connection, Option<u16>), Failure> {
    let config = &ctx.config;
    let (mut connection, times) = Connection::open(ctx).await?;
    {
        let mut stats = ctx.stats();
        record(&mut stats.tcp_time, times.tcp);
        if let Some(tls) = times.tls {
            record(&mut stats.tls_time, tls);
        }
    }
    let client_id = config.client_id(role, index);
    let mut out = Vec::new();
    let connect = write::connect(
        &mut out,
        &ConnectOptions {
            version: config.version,
            client_id: &client_id,
            keep_alive: config.keep_alive,
            clean_start: config.clean_start,
            username: config.username.as_deref(),
            password: config.password.as_deref().map(str::as_bytes),
            receive_maximum: None,
        },
    );
    connection.send(connect).await?;
    let receive_maximum = match next_event(ctx, &mut connection).await? {
        Event::ConnAck {
            code,
            receive_maximum,
        } => {
            *ctx.stats().connack_codes.entry(code).or_default() += 1;
            if code != 0 {
                return Err(Failure::new(
                    "connack-refused",
                    format!(
                        "CONNACK {code:#04x}: {}",
                        connack_reason(config.version, code)
                    ),
                ));
            }
            receive_maximum
        }
        other => {
            return Err(Failure::new(
                "protocol",
                format!("the broker answered CONNECT with {other:?}"),
            ))
        }
    };
    if role == Role::Sub {
        let filter = Config::topic_of(&config.sub_topic, index);
        let mut out = Vec::new();
        let subscribe = write::subscribe(&mut out, config.version, 1, &filter, config.qos);
        connection.send(subscribe).await?;
        match next_event(ctx, &mut connection).await? {
            Event::SubAck { refused: false } => {}
            Event::SubAck { refused: true } => {
                return Err(Failure::new(
                    "subscribe-refused",
                    format!("the broker refused the subscription to `{filter}`"),
                ))
            }
            other => {
                return Err(Failure::new(
                    "protocol",
                    format!("the broker answered SUBSCRIBE with {other:?}"),
                ))
            }
        }
    }
    Ok((connection, receive_maximum))
}

/// The next packet while opening (nothing else should come before it).
async fn next_event(ctx: &ThreadCtx, connection: &mut Connection) -> Result<Event, Failure> {
    loop {
        if let Some(event) = connection.take_event() {
            return Ok(event);
        }
        connection.readable().await?;
        if !connection.read_events(ctx)? {
            return Err(Failure::new(
                "closed",
                "the broker closed the connection while it opened",
            ));
        }
    }
}

/// A message sent at QoS 1 or 2 and not yet acknowledged.
struct InFlight {
    intended: Instant,
    sent: Instant,
}

/// The connection's steady state, until the run stops it or it fails.
#[allow(clippy::manual_async_fn)] // on purpose: see `client`
fn hold<'a>(
    ctx: &'a ThreadCtx,
    connection: &'a mut Connection,
    mut publisher: Option<&'a mut Publisher>,
    subscriber: Option<u32>,
    window: u16,
) -> impl std::future::Future<Output = Ended> + 'a {
    // An `async` block, as `client`'s: no second copy of the arguments.
    async move {
        let config = &ctx.config;
        // Computed where needed rather than kept: every byte kept here is kept per connection.
        let keep_alive = || Duration::from_secs(u64::from(config.keep_alive));
        let mut next_ping = (config.keep_alive > 0).then(|| Instant::now() + keep_alive());
        let mut ping_sent: Option<Instant> = None;
        let mut armed = Armed::default();
        if let Some(publisher) = publisher.as_deref_mut() {
            // A new connection: nothing of the last one is in flight any more (packet ids
            // start again; 0 is never one).
            publisher.flights = Flights::default();
        }
        let mut out = Vec::new();
        loop {
            let live = &ctx.live;
            // Read before the flags: a change of phase from here on shows in the wait below.
            let generation = live.generation();
            if live.is_stopped() {
                return Ended::Stopped;
            }
            // Publish what is due (and fits the window).
            if let Some(publisher) = publisher.as_deref_mut().filter(|_| live.is_publishing()) {
                let now = Instant::now();
                loop {
                    let due =
                        ctx.publish_start() + publisher.due(publisher.next, config.publish_rate);
                    if due > now || ctx.publishing_over(due) {
                        break;
                    }
                    let flights = &mut publisher.flights;
                    if config.qos != QoS::AtMostOnce
                        && flights.in_flight.len() >= usize::from(window)
                    {
                        if !flights.waiting_for_window {
                            flights.waiting_for_window = true;
                            ctx.stats().delayed_by_window += 1;
                        }
                        break;
                    }
                    if flights.waiting_for_window {
                        flights.waiting_for_window = false;
                        flights.window_opened = Some(now);
                    }
                    let held_by_window = flights.window_opened.is_some_and(|opened| due <= opened);
                    // Boxed: only publishers pay for the room a send takes.
                    if let Err(failure) = Box::pin(publish(
                        ctx,
                        connection,
                        publisher,
                        due,
                        held_by_window,
                        &mut out,
                    ))
                    .await
                    {
                        return Ended::Failed(failure);
                    }
                }
            }
            // Keep-alive: a ping not answered within a keep-alive ends the connection (§3.1.2.10).
            let now = Instant::now();
            if let Some(at) = next_ping.filter(|at| *at <= now) {
                if let Some(sent) = ping_sent {
                    return Ended::Failed(Failure::new(
                        "ping-timeout",
                        format!("no PINGRESP {:?} after PINGREQ", now - sent),
                    ));
                }
                out.clear();
                if let Err(failure) = connection.send(write::pingreq(&mut out)).await {
                    return Ended::Failed(failure);
                }
                ping_sent = Some(Instant::now());
                ctx.stats().pings_sent += 1;
                next_ping = Some(at + keep_alive());
            }
            if !connection.has_events() {
                connection.release_events();
                let wake = next_wake(ctx, publisher.as_deref(), next_ping);
                match wait(ctx, connection, wake, generation, &mut armed).await {
                    Ok(Woke::Readable) => {}
                    Ok(Woke::Time | Woke::PhaseChanged) => continue,
                    Err(failure) => return Ended::Failed(failure),
                }
                match connection.read_events(ctx) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Ended::Failed(Failure::new(
                            "closed",
                            "the broker closed the connection",
                        ))
                    }
                    Err(failure) => return Ended::Failed(failure),
                }
            }
            while let Some(event) = connection.take_event() {
                let answer = match event {
                    Event::PingResp => {
                        if let Some(sent) = ping_sent.take() {
                            let mut stats = ctx.stats();
                            stats.pings_answered += 1;
                            record(&mut stats.ping_time, sent.elapsed());
                        }
                        None
                    }
                    Event::Publish {
                        qos,
                        packet_id,
                        stamp,
                    } => {
                        ctx.received(subscriber, stamp);
                        match (qos, packet_id) {
                            (QoS::AtLeastOnce, Some(id)) => Some((kind::PUBACK, id)),
                            (QoS::ExactlyOnce, Some(id)) => Some((kind::PUBREC, id)),
                            _ => None,
                        }
                    }
                    Event::Ack {
                        kind: kind::PUBREL,
                        packet_id,
                        ..
                    } => Some((kind::PUBCOMP, packet_id)),
                    Event::Ack {
                        kind: kind::PUBREC,
                        packet_id,
                        code,
                    } if code < 0x80 => Some((kind::PUBREL, packet_id)),
                    Event::Ack {
                        kind: ack_kind,
                        packet_id,
                        code,
                    } => {
                        if code >= 0x80 {
                            ctx.stats().error("publish-refused", || {
                                format!("the broker refused a PUBLISH: reason {code:#04x}")
                            });
                        }
                        let flight = publisher
                            .as_deref_mut()
                            .and_then(|p| p.flights.in_flight.remove(&packet_id));
                        if let Some(flight) = flight {
                            if code < 0x80
                                && (ack_kind == kind::PUBACK || ack_kind == kind::PUBCOMP)
                            {
                                let mut stats = ctx.stats();
                                stats.acked += 1;
                                record(&mut stats.ack_time, flight.intended.elapsed());
                                record(&mut stats.ack_time_from_send, flight.sent.elapsed());
                            }
                        }
                        None
                    }
                    Event::Disconnect { code } => {
                        *ctx.stats().server_disconnects.entry(code).or_default() += 1;
                        let class = if code == SESSION_TAKEN_OVER {
                            "takeover"
                        } else {
                            "server-disconnect"
                        };
                        return Ended::Failed(Failure::new(
                            class,
                            format!("the broker sent DISCONNECT, reason {code:#04x}"),
                        ));
                    }
                    Event::ConnAck { .. } | Event::SubAck { .. } => {
                        return Ended::Failed(Failure::new(
                            "protocol",
                            format!("unexpected {event:?} from the broker"),
                        ))
                    }
                    Event::Other(kind) => {
                        return Ended::Failed(Failure::new(
                            "protocol",
                            format!("unexpected packet type {kind} from the broker"),
                        ))
                    }
                };
                if let Some((kind, id)) = answer {
                    out.clear();
                    if let Err(failure) = connection.send(write::ack(&mut out, kind, id)).await {
                        return Ended::Failed(failure);
                    }
                }
            }
        }
    }
}

/// Sends the publisher's next message, due at `due`; `held_by_window`: it was due while the
/// window of unacknowledged messages was full (its lateness is the broker's).
async fn publish(
    ctx: &ThreadCtx,
    connection: &mut Connection,
    publisher: &mut Publisher,
    due: Instant,
    held_by_window: bool,
    out: &mut Vec<u8>,
) -> Result<(), Failure> {
    let config = &ctx.config;
    let Flights {
        in_flight,
        next_packet_id,
        ..
    } = &mut publisher.flights;
    let packet_id = if config.qos == QoS::AtMostOnce {
        None
    } else {
        // The next identifier not in flight (the window is far below 65,535).
        while in_flight.contains_key(next_packet_id) || *next_packet_id == 0 {
            *next_packet_id = next_packet_id.wrapping_add(1);
        }
        let id = *next_packet_id;
        *next_packet_id = next_packet_id.wrapping_add(1);
        Some(id)
    };
    let sent = Instant::now();
    let mut payload = std::mem::take(&mut publisher.payload);
    payload.clear();
    Stamp {
        run: ctx.run_tag,
        publisher: publisher.index,
        seq: publisher.next,
        intended_unix_ns: ctx.unix_ns(due),
        sent_unix_ns: ctx.unix_ns(sent),
    }
    .write(&mut payload, config.payload_size);
    out.clear();
    let packet = write::publish(
        out,
        config.version,
        &publisher.topic,
        config.qos,
        packet_id,
        &payload,
    );
    publisher.payload = payload;
    connection.send(packet).await?;
    if let Some(id) = packet_id {
        publisher.flights.in_flight.insert(
            id,
            InFlight {
                intended: due,
                sent,
            },
        );
    }
    publisher.next += 1;
    let mut stats = ctx.stats();
    stats.published += 1;
    // The generator's own lateness; a wait for the broker's acknowledgements is not its.
    if !held_by_window {
        record(&mut stats.lag, sent.saturating_duration_since(due));
    }
    drop(stats);
    *ctx.whole_run()
        .sent_by_publisher
        .entry(publisher.index)
        .or_default() += 1;
    ctx.live
        .published
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if out.capacity() > 64 * 1024 {
        *out = Vec::new();
    }
    Ok(())
}

/// When the connection must act next without a packet arriving: its next message (unless
/// waiting for the window, which an acknowledgement ends), its next ping.
fn next_wake(
    ctx: &ThreadCtx,
    publisher: Option<&Publisher>,
    next_ping: Option<Instant>,
) -> Option<Instant> {
    let next_message = publisher
        .filter(|p| !p.flights.waiting_for_window && ctx.live.is_publishing())
        .map(|p| ctx.publish_start() + p.due(p.next, ctx.config.publish_rate))
        .filter(|due| !ctx.publishing_over(*due));
    match (next_message, next_ping) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What ended a held connection's wait.
enum Woke {
    Readable,
    /// Its next ping or message is due.
    Time,
    /// The run's phase changed (publishing began or ended, the stop).
    PhaseChanged,
}

/// Waits until the socket has something to read, `wake` comes, or the run's phase changes
/// from `generation`: a `poll_fn` that keeps only its references in the connection's future,
/// the deadline being kept by the thread's alarms (a `Sleep` and a `Notify` waiter here took
/// about 200 bytes of every held connection).
fn wait<'a>(
    ctx: &'a ThreadCtx,
    connection: &'a mut Connection,
    wake: Option<Instant>,
    generation: u64,
    armed: &'a mut Armed,
) -> impl std::future::Future<Output = Result<Woke, Failure>> + 'a {
    std::future::poll_fn(move |cx| {
        // The thread's alarms wake every connection at a change of phase; all of this runs on
        // that thread, so a change is either counted already or wakes the entry armed below.
        if ctx.live.generation() != generation {
            return Poll::Ready(Ok(Woke::PhaseChanged));
        }
        let now = Instant::now();
        if wake.is_some_and(|at| at <= now) {
            return Poll::Ready(Ok(Woke::Time));
        }
        ctx.alarms
            .arm(armed, wake.unwrap_or(now + IDLE_LOOK), now, cx);
        connection.poll_readable(cx).map_ok(|()| Woke::Readable)
    })
}

/// CONNACK's codes in words: 3.1.1's return codes (§3.2.2.3), 5's common reason codes (§3.2.2.2).
fn connack_reason(version: Version, code: u8) -> &'static str {
    match (version, code) {
        (Version::V5, 0x80) => "unspecified error",
        (Version::V5, 0x84) => "unsupported protocol version",
        (Version::V5, 0x85) => "client identifier not valid",
        (Version::V5, 0x86) => "bad user name or password",
        (Version::V5, 0x87) => "not authorized",
        (Version::V5, 0x88) => "server unavailable",
        (Version::V5, 0x89) => "server busy",
        (Version::V5, 0x8A) => "banned",
        (Version::V5, 0x9F) => "connection rate exceeded",
        (Version::V5, _) => "refused",
        (_, 1) => "unacceptable protocol version",
        (_, 2) => "identifier rejected",
        (_, 3) => "server unavailable",
        (_, 4) => "bad user name or password",
        (_, 5) => "not authorized",
        _ => "refused",
    }
}
