//! A container function's replicas and how they scale: each replica is a container, made
//! once when the function is loaded and then only started and stopped. A request takes the
//! ready replica with the fewest requests in flight below the route's `concurrency`; when none
//! has room, a stopped replica is started (one start at a time) and the request waits in a
//! bounded queue for room or for the start. A supervisor stops replicas idle past
//! `idle_timeout` (down to `min_instances`), starts replicas up to `min_instances`, and notices
//! replicas that died.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use berth_runtime::container::lifecycle;
use berth_runtime::store::Store;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::client::conn::http1::SendRequest;
use tokio::sync::Notify;

use super::netns::{self, Netns};
use super::start;
use crate::body::BoxError;
use crate::config::ContainerSettings;
use crate::executor::Failure;
use crate::metrics::RouteMetrics;

/// The body of a request on its way to a container.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// How often the supervisor looks at the replicas.
const SUPERVISE_EVERY: Duration = Duration::from_millis(100);

/// Where a replica is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Stopped,
    Starting,
    Ready,
    Stopping,
}

/// One replica: a container of the function.
struct Replica {
    id: String,
    name: String,
    phase: Phase,
    in_flight: usize,
    /// When its last response ended, or it became ready.
    last_active: Instant,
    netns: Option<Netns>,
    pid: Option<i32>,
    /// Open connections to it, not in use.
    idle: Vec<SendRequest<ProxyBody>>,
    /// Counts its starts: a lease or connection of an earlier run is not given back to this one.
    run: u64,
}

/// The replicas, and the failures of starts.
struct State {
    replicas: Vec<Replica>,
    /// Starts that failed so far; a request held for a start learns of its failure by it.
    failed_starts: u64,
    last_failure: String,
    /// When the last start failed: the supervisor waits [`RETRY_AFTER`] before it starts
    /// again for `min_instances` (an app that fails at once is not restarted in a loop).
    last_failed_at: Option<Instant>,
}

/// How long after a failed start the supervisor waits to start a replica again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// A function's replicas.
pub struct Pool {
    /// The route, for messages.
    pub route: String,
    settings: ContainerSettings,
    port: u16,
    store: Arc<Store>,
    log_level: String,
    state: Mutex<State>,
    changed: Notify,
    queued: AtomicUsize,
    max_queued: usize,
    metrics: Option<RouteMetrics>,
    /// The supervisor's runtime: starts and stops run there, never on a serving thread.
    tasks: tokio::runtime::Handle,
}

/// A container of the function, as made.
pub struct Made {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
}

impl Pool {
    /// A pool of the containers `made`, whose app listens on `port`; starts the supervisor.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        route: String,
        settings: ContainerSettings,
        port: u16,
        store: Arc<Store>,
        log_level: String,
        made: Vec<Made>,
        max_queued: usize,
        metrics: Option<RouteMetrics>,
    ) -> std::io::Result<Arc<Pool>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let now = Instant::now();
        let replicas = made
            .into_iter()
            .map(|m| Replica {
                id: m.id,
                name: m.name,
                phase: Phase::Stopped,
                in_flight: 0,
                last_active: now,
                netns: None,
                pid: None,
                idle: Vec::new(),
                run: 0,
            })
            .collect();
        let pool = Arc::new(Pool {
            route,
            settings,
            port,
            store,
            log_level,
            state: Mutex::new(State {
                replicas,
                failed_starts: 0,
                last_failure: String::new(),
                last_failed_at: None,
            }),
            changed: Notify::new(),
            queued: AtomicUsize::new(0),
            max_queued,
            metrics,
            tasks: runtime.handle().clone(),
        });
        let weak = Arc::downgrade(&pool);
        std::thread::Builder::new()
            .name("berth-serve-pool".into())
            .spawn(move || runtime.block_on(supervise(weak)))?;
        Ok(pool)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ids of its containers.
    pub fn container_ids(&self) -> Vec<String> {
        self.lock().replicas.iter().map(|r| r.id.clone()).collect()
    }

    /// A place on a replica for one request, waited for until `deadline`: on a ready replica
    /// with room, else after a start (the lease then says it was a cold start).
    pub async fn acquire(self: &Arc<Self>, deadline: Instant) -> Result<Lease, Failure> {
        let mut held_for_start = false;
        let mut failures_seen = None;
        let mut place: Option<Queued<'_>> = None;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                if let Some(i) = self.pick(&st) {
                    let r = &mut st.replicas[i];
                    r.in_flight += 1;
                    return Ok(Lease {
                        pool: self.clone(),
                        index: i,
                        run: r.run,
                        netns: r.netns.clone().expect("a ready replica has its namespace"),
                        cold: held_for_start,
                        sender: None,
                    });
                }
                let seen = *failures_seen.get_or_insert(st.failed_starts);
                if held_for_start && st.failed_starts > seen {
                    return Err(Failure::Unavailable(st.last_failure.clone()));
                }
                if st.replicas.iter().any(|r| r.phase == Phase::Starting) {
                    held_for_start = true;
                } else if let Some(i) = st.replicas.iter().position(|r| r.phase == Phase::Stopped) {
                    self.begin_start(&mut st, i);
                    held_for_start = true;
                }
            }
            if place.is_none() {
                place = Some(Queued::new(self).ok_or(Failure::Busy(
                    "every container of the route is busy and its wait queue is full",
                ))?);
            }
            if tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_err()
            {
                return Err(Failure::Unavailable(if held_for_start {
                    "no container of the route became ready before the request's deadline (--timeout)".into()
                } else {
                    "no container of the route had room for the request before its deadline (--timeout): raise concurrency or max_instances".into()
                }));
            }
        }
    }

    /// The ready replica with the fewest requests in flight, if one has room.
    fn pick(&self, st: &State) -> Option<usize> {
        st.replicas
            .iter()
            .enumerate()
            .filter(|(_, r)| r.phase == Phase::Ready && r.in_flight < self.settings.concurrency)
            .min_by_key(|(i, r)| (r.in_flight, *i))
            .map(|(i, _)| i)
    }

    /// Marks replica `i` starting and starts it in the background.
    fn begin_start(self: &Arc<Self>, st: &mut State, i: usize) {
        let r = &mut st.replicas[i];
        r.phase = Phase::Starting;
        r.run += 1;
        // The requests of its last run are not counted against this one.
        r.in_flight = 0;
        let (id, name, run) = (r.id.clone(), r.name.clone(), r.run);
        let me = self.clone();
        self.tasks.spawn(async move {
            let began = Instant::now();
            let outcome = start::start_and_wait(
                &me.store,
                &id,
                &me.log_level,
                me.port,
                me.settings.ready_path.as_deref(),
                me.settings.ready_timeout,
            )
            .await;
            match outcome {
                Ok((pid, netns)) => {
                    if let Some(m) = &me.metrics {
                        m.cold_start(began.elapsed());
                    }
                    let mut st = me.lock();
                    let r = &mut st.replicas[i];
                    if r.run == run {
                        r.phase = Phase::Ready;
                        r.pid = Some(pid);
                        r.netns = Some(netns);
                        r.last_active = Instant::now();
                    }
                    drop(st);
                    me.counted();
                }
                Err(why) => {
                    let why = format!(
                        "route {}: container {name} did not become ready: {why}",
                        me.route
                    );
                    eprintln!("berth serve: {why}");
                    {
                        let mut st = me.lock();
                        st.failed_starts += 1;
                        st.last_failure = why;
                        st.last_failed_at = Some(Instant::now());
                        st.replicas[i].phase = Phase::Stopping;
                    }
                    me.changed.notify_waiters();
                    me.stop_replica(i, run).await;
                }
            }
        });
    }

    /// Stops replica `i` (of run `run`) and marks it stopped.
    async fn stop_replica(self: &Arc<Self>, i: usize, run: u64) {
        let (store, id) = (self.store.clone(), self.lock().replicas[i].id.clone());
        let stopped = tokio::task::spawn_blocking(move || stop_container(&store, &id)).await;
        if let Ok(Err(e)) = stopped {
            eprintln!("berth serve: route {}: {e}", self.route);
        }
        {
            let mut st = self.lock();
            let r = &mut st.replicas[i];
            if r.run == run {
                r.phase = Phase::Stopped;
                r.netns = None;
                r.pid = None;
                r.idle.clear();
            }
        }
        self.counted();
    }

    /// Tells waiters something changed, and the metrics how many run.
    fn counted(&self) {
        if let Some(m) = &self.metrics {
            let running = self
                .lock()
                .replicas
                .iter()
                .filter(|r| matches!(r.phase, Phase::Ready | Phase::Starting))
                .count();
            m.set_instances(running);
        }
        self.changed.notify_waiters();
    }

    /// Replica `i` of run `run` died under a request: it is stopped, so the next request
    /// starts it again.
    pub fn lost(self: &Arc<Self>, i: usize, run: u64) {
        let alive = {
            let st = self.lock();
            let r = &st.replicas[i];
            r.run != run || r.phase != Phase::Ready || r.pid.is_some_and(process_runs)
        };
        if alive {
            return;
        }
        self.retire(i, run, "it ended");
    }

    /// Takes replica `i` out of service and stops it, saying why.
    fn retire(self: &Arc<Self>, i: usize, run: u64, why: &str) {
        {
            let mut st = self.lock();
            let r = &mut st.replicas[i];
            if r.run != run || r.phase != Phase::Ready {
                return;
            }
            r.phase = Phase::Stopping;
            r.idle.clear();
            eprintln!(
                "berth serve: route {}: container {} {why}",
                self.route, r.name
            );
        }
        let me = self.clone();
        self.tasks
            .spawn(async move { me.stop_replica(i, run).await });
    }

    /// One look at the replicas: the dead are noticed, the idle stopped, the minimum started.
    fn supervise_once(self: &Arc<Self>) {
        let now = Instant::now();
        let mut idle = Vec::new();
        let mut dead = Vec::new();
        {
            let mut st = self.lock();
            for (i, r) in st.replicas.iter().enumerate() {
                if r.phase != Phase::Ready {
                    continue;
                }
                if !r.pid.is_some_and(process_runs) {
                    dead.push((i, r.run));
                } else if r.in_flight == 0 {
                    idle.push((now.duration_since(r.last_active), i, r.run));
                }
            }
            let running = st
                .replicas
                .iter()
                .filter(|r| matches!(r.phase, Phase::Ready | Phase::Starting))
                .count()
                - dead.len();
            // The longest idle go first, down to the minimum.
            idle.sort_by_key(|b| std::cmp::Reverse(b.0));
            let spare = running.saturating_sub(self.settings.min_instances);
            idle.retain(|(for_, _, _)| *for_ >= self.settings.idle_timeout);
            idle.truncate(spare);
            let starting = st.replicas.iter().any(|r| r.phase == Phase::Starting);
            let backing_off = st
                .last_failed_at
                .is_some_and(|t| now.duration_since(t) < RETRY_AFTER);
            if running < self.settings.min_instances
                && !starting
                && !backing_off
                && let Some(i) = st.replicas.iter().position(|r| r.phase == Phase::Stopped)
            {
                self.begin_start(&mut st, i);
            }
        }
        for (i, run) in dead {
            self.retire(i, run, "ended: it is started again at the next request");
        }
        for (_, i, run) in idle {
            self.retire(i, run, "is idle: stopped (idle_timeout)");
        }
    }
}

/// Watches the pool until it is dropped.
async fn supervise(pool: Weak<Pool>) {
    let mut tick = tokio::time::interval(SUPERVISE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        pool.supervise_once();
    }
}

/// Whether process `pid` still runs (a zombie does not).
fn process_runs(pid: i32) -> bool {
    berth_runtime::container::state::process_start_time(pid).is_some()
}

/// Stops a container as `berth stop` does, with its own stop signal and grace period.
pub fn stop_container(store: &Store, id: &str) -> Result<(), String> {
    let c = store
        .load_container(id)
        .map_err(|e| format!("stopping container {id}: {e}"))?;
    lifecycle::stop(store, &c, Duration::from_secs(c.stop_timeout))
        .map_err(|e| format!("stopping container {}: {e}", c.name))
}

/// A request's place in the pool's wait queue, given back however the wait ends.
struct Queued<'a>(&'a Pool);

impl<'a> Queued<'a> {
    fn new(pool: &'a Pool) -> Option<Queued<'a>> {
        if pool.queued.fetch_add(1, Ordering::AcqRel) >= pool.max_queued {
            pool.queued.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        if let Some(m) = &pool.metrics {
            m.set_queued(pool.queued.load(Ordering::Relaxed));
        }
        Some(Queued(pool))
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        let left = self.0.queued.fetch_sub(1, Ordering::AcqRel) - 1;
        if let Some(m) = &self.0.metrics {
            m.set_queued(left);
        }
    }
}

/// A request's place on a replica, held until its response is sent.
pub struct Lease {
    pool: Arc<Pool>,
    index: usize,
    run: u64,
    netns: Netns,
    /// The request waited for a container to start.
    pub cold: bool,
    /// The connection in use, given back for the next request when this ends.
    sender: Option<SendRequest<ProxyBody>>,
}

impl Lease {
    /// A connection to the replica: an open one that is free, else a new one.
    pub async fn connection(&mut self) -> std::io::Result<SendRequest<ProxyBody>> {
        loop {
            let open = {
                let mut st = self.pool.lock();
                let r = &mut st.replicas[self.index];
                if r.run == self.run {
                    r.idle.pop()
                } else {
                    None
                }
            };
            let Some(mut sender) = open else {
                break;
            };
            if sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
        let stream = netns::connect(&self.netns, self.pool.port).await?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Gives `sender` back for the next request once this one's response has been sent.
    pub fn keep(&mut self, sender: SendRequest<ProxyBody>) {
        self.sender = Some(sender);
    }

    /// The replica died under this request, or its connection failed: see whether it lives.
    pub fn failed(&self) {
        self.pool.lost(self.index, self.run);
    }

    /// The replica's container name.
    pub fn container(&self) -> String {
        self.pool.lock().replicas[self.index].name.clone()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        {
            let mut st = self.pool.lock();
            let concurrency = self.pool.settings.concurrency;
            let r = &mut st.replicas[self.index];
            if r.run == self.run {
                r.in_flight = r.in_flight.saturating_sub(1);
                r.last_active = Instant::now();
                if let Some(s) = self.sender.take()
                    && r.phase == Phase::Ready
                    && !s.is_closed()
                    && r.idle.len() < concurrency
                {
                    r.idle.push(s);
                }
            }
        }
        self.pool.changed.notify_waiters();
    }
}
