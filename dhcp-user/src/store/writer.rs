//! The batching writer: one thread owns the writes, many tasks wait on them.
//!
//! Each fsync costs milliseconds, so commits that arrive together share one transaction (group
//! commit): the thread takes the first request, gathers what else arrives within `linger` (or
//! `submit_delay` while only unawaited reports are waiting) up to `max_batch` changes, commits
//! once, and then wakes every waiter. A caller's changes are never split across transactions.
//!
//! Waiters come in two kinds. [`StoreWriter::commit`] and [`StoreWriter::start_commit`] each get
//! their own answer (a oneshot: one wake-up per waiter). A caller with many commits in flight
//! (the server's socket loop) takes a [`Ticket`] per commit instead and watches
//! [`StoreWriter::progress`]: the writer moves it once per batch, so one wake-up answers every
//! ticket of the batch, and [`StoreWriter::outcome`] then says whether a ticket's batch failed.

use crate::log_throttled;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::{CommitReceipt, LeaseChange, LeaseKey, LeaseStore, StoreError};
use crate::clock::unix_now;

/// Tuning of the [`StoreWriter`].
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// A batch takes at most about this many changes (one request is never split); while someone
    /// awaits the batch, what arrives during `linger` is taken when it ends.
    pub max_batch: usize,
    /// How long an awaited commit waits for others to join its transaction.
    pub linger: Duration,
    /// How long unawaited `submit` reports wait for company; bounds their time to durability.
    pub submit_delay: Duration,
    /// Change history older than this is pruned; `None` keeps it all.
    pub history_retention: Option<Duration>,
    /// How often the history is pruned when a retention is set.
    pub prune_interval: Duration,
    /// `submit` refuses new reports while this many changes are queued (overload guard).
    pub max_queued_changes: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            max_batch: 2048,
            linger: Duration::from_millis(1),
            submit_delay: Duration::from_millis(200),
            history_retention: Some(Duration::from_secs(24 * 3600)),
            prune_interval: Duration::from_secs(60),
            max_queued_changes: 1_000_000,
        }
    }
}

/// Called by the writer thread with each batch's changes once they are durable, in commit order,
/// before any waiter of that batch is woken (the server keeps its in-memory lease copy with it),
/// with the versions the store gave them ([`super::CheckedCommit::versions`]: one per change,
/// or none for a store without versions).
pub type DurableHook = Box<dyn FnMut(&[LeaseChange], &[u64]) + Send>;

/// Failed batches remembered for [`StoreWriter::outcome`] (a ticket is asked about as soon as
/// progress passes it, so only the latest few failures matter).
const FAILED_BATCHES_KEPT: usize = 256;

/// Refused tickets remembered for [`StoreWriter::outcome`] (each is taken when asked about).
const REFUSED_TICKETS_KEPT: usize = 4096;

/// Who waits for a request's transaction.
enum Waiter {
    /// Nobody (a `submit`): failures are logged and counted.
    Nobody,
    /// One caller, answered on its own channel.
    Oneshot(oneshot::Sender<Result<CommitReceipt, StoreError>>),
    /// A ticket holder, answered through [`StoreWriter::progress`].
    Ticket(Ticket),
}

impl Waiter {
    fn awaited(&self) -> bool {
        !matches!(self, Waiter::Nobody)
    }
}

struct Request {
    changes: Vec<LeaseChange>,
    waiter: Waiter,
}

/// A commit queued by [`StoreWriter::commit_ticket`]: tickets are numbered from 1 in the order
/// they were queued, and a batch holds them in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

impl Ticket {
    /// Whether this ticket's transaction is over once progress reads `progress`.
    pub fn is_over(self, progress: u64) -> bool {
        self.0 <= progress
    }
}

/// What the writer thread shares with ticket holders.
struct Tickets {
    /// The last ticket handed out; held while the request is queued, so tickets reach the
    /// writer in their order.
    issued: Mutex<u64>,
    /// The last ticket whose batch has finished (committed or failed).
    progress: watch::Sender<u64>,
    /// Ticket ranges of the latest failed batches, with their error.
    failed: Mutex<VecDeque<(u64, u64, Arc<StoreError>)>>,
    /// Tickets of the latest batches whose changes were partly refused (a shared database:
    /// another server holds the lease), with the refused keys; the rest of the batch committed.
    refused: Mutex<BTreeMap<u64, Vec<LeaseKey>>>,
}

/// Async front of a [`LeaseStore`]: batched durable commits; clones share one writer thread.
///
/// The thread ends once every clone is dropped, after committing what was queued; call
/// [`StoreWriter::flush`] before exiting to know the queue is on disk.
#[derive(Clone)]
pub struct StoreWriter {
    requests: Sender<Request>,
    tickets: Arc<Tickets>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    store: Arc<dyn LeaseStore>,
}

impl StoreWriter {
    /// Starts the writer thread for `store`.
    pub fn spawn(store: Arc<dyn LeaseStore>, config: WriterConfig) -> std::io::Result<Self> {
        Self::spawn_with_hook(store, config, None)
    }

    /// Starts the writer thread for `store`; `hook` sees every durable batch (see [`DurableHook`]).
    pub fn spawn_with_hook(
        store: Arc<dyn LeaseStore>,
        config: WriterConfig,
        hook: Option<DurableHook>,
    ) -> std::io::Result<Self> {
        let (requests, inbox) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let max_queued = config.max_queued_changes;
        let tickets = Arc::new(Tickets {
            issued: Mutex::new(0),
            progress: watch::Sender::new(0),
            failed: Mutex::new(VecDeque::new()),
            refused: Mutex::new(BTreeMap::new()),
        });
        let thread_store = Arc::clone(&store);
        let thread_queued = Arc::clone(&queued);
        let thread_tickets = Arc::clone(&tickets);
        std::thread::Builder::new()
            .name("lease-writer".to_owned())
            .spawn(move || {
                run(
                    inbox,
                    thread_store,
                    config,
                    thread_queued,
                    thread_tickets,
                    hook,
                )
            })?;
        Ok(StoreWriter {
            requests,
            tickets,
            queued,
            max_queued,
            store,
        })
    }

    /// The store behind this writer, for reads.
    pub fn store(&self) -> &Arc<dyn LeaseStore> {
        &self.store
    }

    /// Commits `changes` atomically; returns once the transaction holding them is on disk.
    pub async fn commit(&self, changes: Vec<LeaseChange>) -> Result<CommitReceipt, StoreError> {
        self.start_commit(changes).wait().await
    }

    /// Queues `changes` now (so that commits started one after another are made durable in that
    /// order) and returns the wait for their transaction; [`StoreWriter::commit`] in two halves.
    pub fn start_commit(&self, changes: Vec<LeaseChange>) -> PendingCommit {
        let queued = (|| {
            for change in &changes {
                change.validate()?;
            }
            let (reply, answer) = oneshot::channel();
            self.enqueue(Request {
                changes,
                waiter: Waiter::Oneshot(reply),
            })?;
            Ok(answer)
        })();
        PendingCommit { queued }
    }

    /// Queues `changes` (durable in queue order, like [`StoreWriter::start_commit`]) and returns
    /// their ticket: the transaction holding them is over once [`StoreWriter::progress`] reaches
    /// it ([`Ticket::is_over`]), and [`StoreWriter::outcome`] then says how it went.
    pub fn commit_ticket(&self, changes: Vec<LeaseChange>) -> Result<Ticket, StoreError> {
        for change in &changes {
            change.validate()?;
        }
        let mut issued = lock(&self.tickets.issued);
        let ticket = Ticket(*issued + 1);
        self.enqueue(Request {
            changes,
            waiter: Waiter::Ticket(ticket),
        })?;
        *issued = ticket.0;
        Ok(ticket)
    }

    /// Watches the writer's progress: every ticket at or below the value has its outcome. It
    /// moves once per batch that holds tickets.
    pub fn progress(&self) -> watch::Receiver<u64> {
        self.tickets.progress.subscribe()
    }

    /// How `ticket`'s transaction went, once progress has reached it: `Ok` when it is on disk,
    /// `Conflict` when another server holds some of its leases (said once: the record is taken).
    pub fn outcome(&self, ticket: Ticket) -> Result<(), StoreError> {
        if !ticket.is_over(*self.tickets.progress.borrow()) {
            return Err(StoreError::WriterStopped);
        }
        let failed = lock(&self.tickets.failed);
        match failed
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&ticket.0))
        {
            Some((_, _, err)) => Err(StoreError::Batch(Arc::clone(err))),
            None => match lock(&self.tickets.refused).remove(&ticket.0) {
                // Another server holds some of these leases: the ticket's changes are not on
                // disk (the rest of its batch is).
                Some(keys) => Err(StoreError::Conflict(keys)),
                None => Ok(()),
            },
        }
    }

    /// Queues `changes` without waiting (fast-path renewals); durable within `submit_delay` plus one commit.
    pub fn submit(&self, changes: Vec<LeaseChange>) -> Result<(), StoreError> {
        for change in &changes {
            change.validate()?;
        }
        if self.queued.load(Ordering::Relaxed) >= self.max_queued {
            metrics::counter!("dhcp_store_submit_dropped_total").increment(changes.len() as u64);
            return Err(StoreError::Backlog);
        }
        self.enqueue(Request {
            changes,
            waiter: Waiter::Nobody,
        })
    }

    /// Returns once everything queued before the call is durable.
    pub async fn flush(&self) -> Result<CommitReceipt, StoreError> {
        self.commit(Vec::new()).await
    }

    fn enqueue(&self, request: Request) -> Result<(), StoreError> {
        let count = request.changes.len();
        self.queued.fetch_add(count, Ordering::Relaxed);
        self.requests.send(request).map_err(|_| {
            self.queued.fetch_sub(count, Ordering::Relaxed);
            StoreError::WriterStopped
        })
    }
}

/// A commit queued by [`StoreWriter::start_commit`].
#[must_use = "the changes are durable only once `wait` returns Ok"]
pub struct PendingCommit {
    queued: Result<oneshot::Receiver<Result<CommitReceipt, StoreError>>, StoreError>,
}

impl PendingCommit {
    /// Returns once the transaction holding the changes is on disk.
    pub async fn wait(self) -> Result<CommitReceipt, StoreError> {
        self.queued?.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// The writer thread: gather a batch, commit it, answer it, prune now and then.
fn run(
    inbox: Receiver<Request>,
    store: Arc<dyn LeaseStore>,
    config: WriterConfig,
    queued: Arc<AtomicUsize>,
    tickets: Arc<Tickets>,
    mut hook: Option<DurableHook>,
) {
    let mut next_prune = Instant::now();
    loop {
        if let Some(retention) = config.history_retention {
            if Instant::now() >= next_prune {
                prune(store.as_ref(), retention);
                next_prune = Instant::now() + config.prune_interval;
            }
        }
        let first = match config.history_retention {
            Some(_) => {
                match inbox.recv_timeout(next_prune.saturating_duration_since(Instant::now())) {
                    Ok(request) => request,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            None => match inbox.recv() {
                Ok(request) => request,
                Err(_) => break,
            },
        };
        let (batch, senders_gone) = gather(&inbox, first, &config);
        let change_count: usize = batch.iter().map(|request| request.changes.len()).sum();
        commit_batch(store.as_ref(), batch, change_count, &tickets, &mut hook);
        queued.fetch_sub(change_count, Ordering::Relaxed);
        if senders_gone {
            break;
        }
    }
    tracing::debug!("lease writer stopped: every handle was dropped");
}

/// Collects requests after `first` until the deadline or `max_batch`; also says if the channel closed.
fn gather(
    inbox: &Receiver<Request>,
    first: Request,
    config: &WriterConfig,
) -> (Vec<Request>, bool) {
    let started = Instant::now();
    let mut deadline = started
        + if first.waiter.awaited() {
            config.linger
        } else {
            config.submit_delay
        };
    let mut awaited = first.waiter.awaited();
    let mut changes = first.changes.len();
    let mut batch = vec![first];
    while changes < config.max_batch {
        // Whatever is already queued joins at once (it arrived during the previous fsync).
        let next = match inbox.try_recv() {
            Ok(request) => request,
            Err(TryRecvError::Disconnected) => return (batch, true),
            Err(TryRecvError::Empty) => {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                if awaited {
                    // The deadline is at most `linger` away: sleep it out and take what arrived
                    // meanwhile in one go, rather than have every sender wake this thread (a
                    // futex wake and a context switch per commit under load).
                    std::thread::sleep(deadline - now);
                    continue;
                }
                match inbox.recv_timeout(deadline - now) {
                    Ok(request) => request,
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return (batch, true),
                }
            }
        };
        if next.waiter.awaited() {
            // Someone is waiting now: do not hold them for the slower submit deadline.
            deadline = deadline.min(Instant::now() + config.linger);
            awaited = true;
        }
        changes += next.changes.len();
        batch.push(next);
    }
    (batch, false)
}

fn commit_batch(
    store: &dyn LeaseStore,
    batch: Vec<Request>,
    change_count: usize,
    tickets: &Tickets,
    hook: &mut Option<DurableHook>,
) {
    let mut changes = Vec::with_capacity(change_count);
    // Each awaited request's waiter and where its changes are in `changes`.
    let mut replies = Vec::with_capacity(batch.len());
    let mut ticketed: Vec<(u64, std::ops::Range<usize>)> = Vec::new();
    let mut ticket_range: Option<(u64, u64)> = None;
    let mut unawaited = 0usize;
    for request in batch {
        let start = changes.len();
        changes.extend(request.changes);
        let range = start..changes.len();
        match request.waiter {
            Waiter::Oneshot(reply) => replies.push((reply, range)),
            Waiter::Ticket(Ticket(n)) => {
                ticket_range = Some(ticket_range.map_or((n, n), |(first, _)| (first, n)));
                ticketed.push((n, range));
            }
            Waiter::Nobody => unawaited += range.len(),
        }
    }
    let result = store.commit_checked(&changes, unix_now());
    metrics::counter!("dhcp_store_commits_total").increment(1);
    metrics::histogram!("dhcp_store_batch_changes").record(change_count as f64);
    match result {
        Ok(checked) if checked.refused.is_empty() => {
            if let Some(hook) = hook.as_mut() {
                hook(&changes, &checked.versions);
            }
            if let Some((_, last)) = ticket_range {
                // One wake-up for every ticket of the batch.
                tickets.progress.send_replace(last);
            }
            for (reply, _) in replies {
                // A waiter that gave up (dropped its future) needs no answer.
                let _ = reply.send(Ok(checked.receipt));
            }
        }
        Ok(checked) => {
            // Another server holds some of these leases (a shared database): the mirror learns
            // what was written, and each waiter with a refused change hears which.
            metrics::counter!("dhcp_store_conflicts_total").increment(checked.refused.len() as u64);
            let refused: std::collections::HashSet<usize> =
                checked.refused.iter().copied().collect();
            let applied: Vec<LeaseChange> = changes
                .iter()
                .enumerate()
                .filter(|(i, _)| !refused.contains(i))
                .map(|(_, change)| change.clone())
                .collect();
            let versions: Vec<u64> = checked
                .versions
                .iter()
                .enumerate()
                .filter(|(i, _)| !refused.contains(i))
                .map(|(_, version)| *version)
                .collect();
            if let Some(hook) = hook.as_mut() {
                hook(&applied, &versions);
            }
            let refused_keys = |range: std::ops::Range<usize>| -> Vec<LeaseKey> {
                range
                    .filter(|i| refused.contains(i))
                    .map(|i| changes[i].key())
                    .collect()
            };
            if let Some((_, last)) = ticket_range {
                {
                    // Recorded before progress moves, so `outcome` sees them.
                    let mut record = lock(&tickets.refused);
                    for (ticket, range) in ticketed {
                        let mine = refused_keys(range);
                        if !mine.is_empty() {
                            record.insert(ticket, mine);
                        }
                    }
                    while record.len() > REFUSED_TICKETS_KEPT {
                        record.pop_first();
                    }
                }
                tickets.progress.send_replace(last);
            }
            for (reply, range) in replies {
                let mine = refused_keys(range);
                let _ = reply.send(if mine.is_empty() {
                    Ok(checked.receipt)
                } else {
                    Err(StoreError::Conflict(mine))
                });
            }
        }
        Err(err) => {
            log_throttled!(
                error,
                error = %err,
                changes = change_count,
                "lease batch commit failed"
            );
            metrics::counter!("dhcp_store_commit_failures_total").increment(1);
            if unawaited > 0 {
                metrics::counter!("dhcp_store_submit_lost_total").increment(unawaited as u64);
            }
            let shared = Arc::new(err);
            if let Some((first, last)) = ticket_range {
                {
                    let mut failed = lock(&tickets.failed);
                    if failed.len() == FAILED_BATCHES_KEPT {
                        failed.pop_front();
                    }
                    failed.push_back((first, last, Arc::clone(&shared)));
                }
                tickets.progress.send_replace(last);
            }
            for (reply, _) in replies {
                let _ = reply.send(Err(StoreError::Batch(Arc::clone(&shared))));
            }
        }
    }
}

/// Locks a mutex, taking over a poisoned one.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn prune(store: &dyn LeaseStore, retention: Duration) {
    let cutoff = unix_now().saturating_sub(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX));
    match store.prune_changes(cutoff) {
        Ok(0) => {}
        Ok(removed) => tracing::debug!(removed, cutoff, "pruned lease change history"),
        Err(err) => tracing::warn!(error = %err, "pruning lease change history failed"),
    }
}
