//! The simulated fleet: devices publishing over a pool of MQTT connections at the profile's
//! rate, with publish→PUBACK latency measured per message.
//!
//! Message `i` is device `i % devices`, sequence `i / devices`, so (device, seq) ↔ `i` and the
//! loss check is a bitmap. A rumqttc connection reports `Outgoing::Publish(pkid)` in publish
//! order: the send time and index queued per connection are matched to the pkid there, and to
//! the PUBACK of that pkid.

use super::payload::Template;
use super::profile::Stage;
use hdrhistogram::Histogram;
use rumqttc::{AsyncClient, Event, Outgoing, Packet, QoS};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counters and latencies shared with the progress display and the report.
pub struct PublishStats {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub errors: AtomicU64,
    /// publish → PUBACK, µs.
    pub puback: Mutex<Histogram<u64>>,
    /// Which message indexes the broker acknowledged (QoS 1).
    pub acked_set: Mutex<Vec<bool>>,
    /// Messages sent when each stage ended.
    pub sent_by_stage: Mutex<Vec<u64>>,
    pub stage: AtomicU64,
}

impl PublishStats {
    pub fn new(planned: usize) -> Self {
        PublishStats {
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            puback: Mutex::new(super::histogram()),
            acked_set: Mutex::new(vec![false; planned]),
            sent_by_stage: Mutex::new(vec![]),
            stage: AtomicU64::new(0),
        }
    }
}

pub struct Publisher {
    clients: Vec<(AsyncClient, Arc<Mutex<VecDeque<(Instant, usize)>>>)>,
    qos: QoS,
    template: Template,
    devices: usize,
    stats: Arc<PublishStats>,
    stop: Arc<AtomicBool>,
}

impl Publisher {
    /// Connects `connections` MQTT clients to `broker` (`host:port`).
    pub fn connect(
        broker: &str,
        connections: usize,
        qos: u8,
        template: Template,
        devices: usize,
        stats: Arc<PublishStats>,
    ) -> anyhow::Result<Publisher> {
        let qos = if qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for i in 0..connections.max(1) {
            let id = format!("sluice-loadtest-{}-{i}", std::process::id());
            let opts = crate::connect::options(broker, id, 1000)?;
            let (client, eventloop) = crate::connect::publishing_client(opts);
            let queue = Arc::new(Mutex::new(VecDeque::new()));
            tokio::spawn(drive(eventloop, queue.clone(), stats.clone(), stop.clone()));
            clients.push((client, queue));
        }
        Ok(Publisher {
            clients,
            qos,
            template,
            devices: devices.max(1),
            stats,
            stop,
        })
    }

    /// Publishes message `i`.
    async fn publish(&mut self, i: usize) {
        let device = i % self.devices;
        let seq = (i / self.devices) as u64;
        let (topic, payload) = self.template.render(device, seq);
        // A device that announces itself (Sparkplug) keeps one connection, so that its BIRTH
        // arrives before its DATA; the others spread over every connection.
        let birth = match seq {
            0 => self.template.birth(device),
            _ => None,
        };
        let sticky = matches!(self.template.encoding, super::encoding::Encoding::Sparkplug);
        let connection = if sticky { device } else { i } % self.clients.len();
        let (client, queue) = &self.clients[connection];
        if let Some((topic, payload)) = birth {
            // Not one of the counted messages: its PUBACK matches no index.
            queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_back((Instant::now(), usize::MAX));
            if client
                .publish(topic, self.qos, false, payload)
                .await
                .is_err()
            {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back((Instant::now(), i));
        match client.publish(topic, self.qos, false, payload).await {
            Ok(()) => {
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Runs every stage at its rate; returns when the last stage ends — on time: a stage
    /// whose publishes the pipeline does not take fast enough (PUBACKs too slow for the
    /// in-flight window) ends at its deadline with the rest unsent, so `sent ÷ secs` is the
    /// rate the fleet really got out. (Publishing every planned message however long it took
    /// once reported the target as achieved when the front door had pushed back.)
    pub async fn run(&mut self, stages: &[Stage]) {
        let mut next = 0usize;
        let mut before = 0.0;
        for (n, stage) in stages.iter().enumerate() {
            self.stats.stage.store(n as u64, Ordering::Relaxed);
            let started = Instant::now();
            // The last tick's messages may go out this much after the stage's end.
            let deadline = stage.secs + 0.1;
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            loop {
                tick.tick().await;
                let t = started.elapsed().as_secs_f64();
                let due = (before + stage.target_by(t)).floor() as usize;
                while next < due && started.elapsed().as_secs_f64() < deadline {
                    self.publish(next).await;
                    next += 1;
                }
                if t >= stage.secs || started.elapsed().as_secs_f64() >= deadline {
                    break;
                }
            }
            before += stage.total();
            // What this stage did not get out is skipped, not pushed into the next stage.
            next = next.max(before.floor() as usize);
            let sent = self.stats.sent.load(Ordering::Relaxed);
            self.stats
                .sent_by_stage
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(sent);
        }
    }

    pub async fn disconnect(self) {
        for (client, _) in &self.clients {
            let _ = client.disconnect().await;
        }
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Polls one connection: pairs pkids with send times, records PUBACK latencies.
async fn drive(
    mut eventloop: rumqttc::EventLoop,
    queue: Arc<Mutex<VecDeque<(Instant, usize)>>>,
    stats: Arc<PublishStats>,
    stop: Arc<AtomicBool>,
) {
    let mut inflight: HashMap<u16, (Instant, usize)> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        match eventloop.poll().await {
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let sent = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                if let (Some(s), true) = (sent, pkid != 0) {
                    inflight.insert(pkid, s);
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                // usize::MAX: a Sparkplug BIRTH, not a counted message.
                let counted = inflight.remove(&ack.pkid).filter(|(_, i)| *i != usize::MAX);
                if let Some((at, i)) = counted {
                    let us = at.elapsed().as_micros() as u64;
                    let _ = stats
                        .puback
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .record(us.max(1));
                    stats.acked.fetch_add(1, Ordering::Relaxed);
                    if let Some(slot) = stats
                        .acked_set
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(i)
                    {
                        *slot = true;
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "loadtest MQTT connection error; reconnecting");
                tokio::time::sleep(crate::connect::RECONNECT_DELAY).await;
            }
        }
    }
}
