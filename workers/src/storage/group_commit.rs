//! Group commit: the writes of many orders in one transaction, each one still whole or
//! not at all.
//!
//! Written one by one, every decision is a transaction, and every transaction waits for
//! its own WAL flush (PostgreSQL: an fsync; SQLite: the write lock, taken in turn by each
//! pooled connection, whose waits sleep). Here every write that is queued while a batch
//! is being written goes into the next batch: one `BEGIN`, one `COMMIT`, one flush for all
//! of them. Nothing waits for a batch to fill: under light load a batch holds one write.
//!
//! What stays per write (DESIGN §2.1): a batch is first written plainly, the rows of all
//! its planned writes (decisions, reschedules) together, one statement per table
//! ([`super::apply`], which finds a decision whose order moved on before writing any of
//! its rows), then its other writes one after the other; if one of them fails (its order's version moved on, a UTR another
//! order holds), the whole transaction is rolled back and the batch is written again with
//! each write in a savepoint of its own, so that one is rolled back alone and reported to
//! its caller, and the others commit. (A write is a factory for that reason: it can run
//! twice, and only its last run's result counts.) The result of a write is reported only
//! once its batch is committed, so a caller never acts (acks a command, ends a lease) on
//! a write that could still be lost. If the batch's commit itself fails, or a write fails
//! in a way that ends the whole transaction, each of its writes is retried alone, in a
//! transaction of its own, so a bad batch-mate costs latency, never a write.
//!
//! Writes are spread over `writers` writer tasks (one on SQLite, which has one writer;
//! several on PostgreSQL), always by order, so one order's writes are never in two
//! batches at once.
//!
//! The outbox rows that a batch's plans queue are handed to the relay once the batch has
//! committed ([`super::handoff`]): written plainly, they are inserted leased and sent over
//! a channel; written again (savepoints, alone), they are inserted unleased and the relay
//! is woken to scan for them. The group commit owns that wake-up for its plans' rows.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::future::BoxFuture;

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, TransactionTrait};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::apply::apply;
use super::begin_write;
use super::entities::outbox;
use super::handoff::Handoff;
use super::plan::Plan;
use super::write_error::WriteError;

/// Writer tasks (and so connections writing at once) on PostgreSQL: while one batch
/// waits for its flush, the next ones are being written.
pub const POSTGRES_WRITERS: usize = 4;

/// Most writes in one transaction.
const MAX_BATCH: usize = 128;

/// One write of a batch. It may run up to three times (plainly in its batch, in a
/// savepoint of the batch written again, alone); only its last run counts, so it must do
/// all of its writing on the transaction it is given.
pub trait GroupWrite: Send + Sync + 'static {
    fn write<'t>(&'t self, txn: &'t DatabaseTransaction) -> BoxFuture<'t, Result<i64, WriteError>>;

    /// The write's rows as a [`Plan`], when it has them: the plans of a batch are
    /// written together, one statement per table ([`apply`]), before its other writes.
    /// Its `write` must write the same rows.
    fn plan(&self) -> Option<&Plan> {
        None
    }
}

struct Job {
    work: Arc<dyn GroupWrite>,
    /// The write's result and the number of writes its batch held.
    done: oneshot::Sender<(Result<i64, WriteError>, usize)>,
}

/// A handle to the batching writers; cheap to clone. The writers stop when the last
/// handle is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    writers: Vec<mpsc::UnboundedSender<Job>>,
    /// `db.system.name` of the database, for the write spans.
    system: &'static str,
}

impl GroupCommit {
    /// Start `writers` writer tasks (at least one) on the current runtime, with no relay
    /// to hand committed outbox rows to.
    pub fn start(db: DatabaseConnection, writers: usize) -> Self {
        Self::start_with(db, writers, Handoff::default())
    }

    /// [`start`](Self::start), handing the committed outbox rows over `handoff`.
    pub fn start_with(db: DatabaseConnection, writers: usize, handoff: Handoff) -> Self {
        let system = match db.get_database_backend() {
            DbBackend::Postgres => "postgresql",
            DbBackend::Sqlite => "sqlite",
            _ => "other_sql",
        };
        let writers = (0..writers.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(write_batches(db.clone(), rx, handoff.clone()));
                tx
            })
            .collect();
        GroupCommit { writers, system }
    }

    /// Run `work` for `order` in the next batch of the order's writer; returns its result
    /// once that batch has committed (or, for an error, once it is known the write did
    /// not happen).
    ///
    /// The wait is a database client span of the caller's trace (`db.write`), with the
    /// size of the batch the write went in.
    pub async fn write(&self, order: &str, work: Arc<dyn GroupWrite>) -> Result<i64, WriteError> {
        let span = tracing::info_span!(
            "db.write",
            otel.name = "group commit",
            otel.kind = "client",
            db.system.name = self.system,
            db.operation.name = "group commit",
            db.operation.batch.size = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let (done, result) = oneshot::channel();
        let writer = &self.writers[shard(order, self.writers.len())];
        let stopped = || WriteError::Db(DbErr::Custom("the group-commit writer stopped".into()));
        writer.send(Job { work, done }).map_err(|_| stopped())?;
        let (result, batch) = result
            .instrument(span.clone())
            .await
            .unwrap_or_else(|_| (Err(stopped()), 0));
        span.record("db.operation.batch.size", batch);
        if matches!(result, Err(WriteError::Db(_))) {
            span.record("otel.status_code", "error");
        }
        result
    }
}

fn shard(order: &str, n: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    order.hash(&mut h);
    (h.finish() % n as u64) as usize
}

async fn write_batches(
    db: DatabaseConnection,
    mut queue: mpsc::UnboundedReceiver<Job>,
    handoff: Handoff,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // First without savepoints (two statements fewer per write); only a batch in which
        // some write failed is written again with a savepoint for each.
        let written = match write_plain(&db, &batch, &handoff).await {
            Ok(Some(results)) => Ok(results),
            Ok(None) => {
                let results = write_batch(&db, &batch).await;
                if results.is_ok() && queued_events(&batch) {
                    handoff.wake();
                }
                results
            }
            Err(e) => Err(e),
        };
        match written {
            Ok(results) => {
                let size = batch.len();
                for (job, result) in batch.drain(..).zip(results) {
                    let _ = job.done.send((result, size));
                }
            }
            Err(e) => {
                if batch.len() > 1 {
                    tracing::warn!(writes = batch.len(), error = %e, "a group commit failed; writing each of its writes alone");
                }
                for job in batch.drain(..) {
                    let result = write_alone(&db, &job).await;
                    if result.is_ok() && queued_events(std::slice::from_ref(&job)) {
                        handoff.wake();
                    }
                    let _ = job.done.send((result, 1));
                }
            }
        }
    }
}

/// Every write of `batch` in one transaction, without savepoints: the plans together
/// ([`apply`]: one statement per table), then the other writes one by one. `Some` results
/// when every write succeeded, or failed alone without writing (a plan whose order moved
/// on), and the batch committed; `None` when a write failed in the database (a UTR held
/// elsewhere: it may have written part of its rows, and on PostgreSQL a failed statement
/// ends the transaction), after rolling everything back.
async fn write_plain(
    db: &DatabaseConnection,
    batch: &[Job],
    handoff: &Handoff,
) -> Result<Option<Vec<Result<i64, WriteError>>>, DbErr> {
    let lease = handoff.lease(chrono::Utc::now().timestamp_millis());
    let mut handed: Vec<outbox::Model> = Vec::new();
    let txn = begin_write(db).await?;
    let mut results: Vec<Option<Result<i64, WriteError>>> = Vec::new();
    results.resize_with(batch.len(), || None);
    let (planned, plans): (Vec<usize>, Vec<&Plan>) = batch
        .iter()
        .enumerate()
        .filter_map(|(i, job)| Some((i, job.work.plan()?)))
        .unzip();
    if !plans.is_empty() {
        match apply(&txn, &plans, lease.as_ref()).await {
            Ok(applied) => {
                for ((i, plan), r) in planned.into_iter().zip(&plans).zip(applied) {
                    // Only a plan that was written inserted its rows (leased, if `lease`).
                    if r.is_ok() {
                        handed.extend(plan.events.iter().map(|e| e.outbox.clone()));
                    }
                    results[i] = Some(r);
                }
            }
            Err(_) => {
                txn.rollback().await?;
                return Ok(None);
            }
        }
    }
    for (job, result) in batch.iter().zip(results.iter_mut()) {
        if result.is_some() {
            continue;
        }
        match job.work.write(&txn).await {
            Ok(v) => *result = Some(Ok(v)),
            Err(_) => {
                txn.rollback().await?;
                return Ok(None);
            }
        }
    }
    txn.commit().await?;
    handoff.hand(handed, lease.as_ref());
    Ok(Some(
        results
            .into_iter()
            .map(|r| r.expect("every write ran"))
            .collect(),
    ))
}

/// Every write of `batch` in its own savepoint of one transaction. `Err` when the
/// transaction as a whole failed: nothing of the batch is committed.
async fn write_batch(
    db: &DatabaseConnection,
    batch: &[Job],
) -> Result<Vec<Result<i64, WriteError>>, DbErr> {
    let txn = begin_write(db).await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let savepoint = txn.begin().await?;
        let result = job.work.write(&savepoint).await;
        match &result {
            Ok(_) => savepoint.commit().await?,
            // A database error may have ended the whole transaction (PostgreSQL aborts
            // it on any failed statement until the savepoint is rolled back; a lost
            // connection ends it for good): roll back to the savepoint, and if that
            // fails too, the batch fails.
            Err(_) => savepoint.rollback().await?,
        }
        results.push(result);
    }
    txn.commit().await?;
    Ok(results)
}

/// Whether a plan of `jobs` queues events (its outbox rows are written unleased when
/// the jobs are written one by one).
fn queued_events(jobs: &[Job]) -> bool {
    jobs.iter()
        .filter_map(|j| j.work.plan())
        .any(|p| !p.events.is_empty())
}

async fn write_alone(db: &DatabaseConnection, job: &Job) -> Result<i64, WriteError> {
    let txn = begin_write(db).await?;
    let result = job.work.write(&txn).await;
    super::connect::settle(txn, result).await
}

#[cfg(test)]
mod tests {
    use sea_orm::EntityTrait;

    use super::*;
    use crate::storage::entities::scheduled_tasks as tasks;
    use crate::storage::test_db::{storage_cases, task_row};

    /// Insert a task row with this id.
    struct Insert(&'static str);

    impl GroupWrite for Insert {
        fn write<'t>(
            &'t self,
            txn: &'t DatabaseTransaction,
        ) -> BoxFuture<'t, Result<i64, WriteError>> {
            Box::pin(async move {
                tasks::Entity::insert(task_row(self.0, "ready", 1))
                    .exec_without_returning(txn)
                    .await?;
                Ok(1)
            })
        }
    }

    /// Writes sent together commit together; one that fails (a duplicate key: a
    /// statement error, which on PostgreSQL aborts the transaction until its savepoint is
    /// rolled back) is reported to its caller alone and leaves nothing behind, and the
    /// others commit.
    async fn one_failing_write_leaves_its_batch_mates_committed(db: DatabaseConnection) {
        tasks::Entity::insert(task_row("taken", "ready", 1))
            .exec(&db)
            .await
            .unwrap();
        let g = GroupCommit::start(db.clone(), 1);
        let ids = ["a", "taken", "b", "c"];
        let writes = ids.iter().map(|id| g.write(id, Arc::new(Insert(id))));
        let results = futures::future::join_all(writes).await;
        assert!(results[0].is_ok() && results[2].is_ok() && results[3].is_ok());
        assert!(
            matches!(results[1], Err(WriteError::Db(_))),
            "{:?}",
            results[1]
        );
        let mut stored: Vec<String> = tasks::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        stored.sort();
        assert_eq!(stored, ["a", "b", "c", "taken"]);
    }

    storage_cases!(one_failing_write_leaves_its_batch_mates_committed);
}
