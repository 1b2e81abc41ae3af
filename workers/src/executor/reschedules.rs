//! Group commit for quiet polls. A poll that saw nothing new only moves its task
//! (`write::reschedule`); written one by one, each such move is a commit and waits for its
//! own WAL flush. Here the moves of all the executor's tasks that arrive while one batch is
//! being written go into the next batch, one transaction, one flush.
//!
//! Each move keeps its own guard (the task row as claimed), so a batch where one task was
//! written meanwhile by a command still moves the others, and that one only loses its
//! lease. A batch that fails fails every caller; their leases then run out and the tasks
//! are retried, as for any failed step.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{mpsc, oneshot};

use crate::storage::begin_write;
use crate::storage::entities::scheduled_tasks as tasks;
use crate::storage::write::{reschedule, settle};

/// Most moves in one transaction.
const MAX_BATCH: usize = 256;

struct Move {
    task: tasks::Model,
    token: String,
    run_at: DateTime<Utc>,
    done: oneshot::Sender<Result<(), String>>,
}

/// A handle to the batching writer; cheap to clone. The writer stops when the last handle
/// is dropped.
#[derive(Clone)]
pub struct Reschedules {
    moves: mpsc::UnboundedSender<Move>,
}

impl Reschedules {
    /// Start the writer on the current runtime.
    pub fn start(db: DatabaseConnection) -> Self {
        let (moves, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(db, queue));
        Reschedules { moves }
    }

    /// Move the leased `task` to `run_at` and end the lease, in the next batch; returns once
    /// that batch is committed.
    pub async fn reschedule(
        &self,
        task: &tasks::Model,
        token: &str,
        run_at: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        let (done, committed) = oneshot::channel();
        let queued = self.moves.send(Move {
            task: task.clone(),
            token: token.to_string(),
            run_at,
            done,
        });
        if queued.is_err() {
            return Err(DbErr::Custom("the reschedule writer has stopped".into()));
        }
        match committed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(DbErr::Custom(e)),
            Err(_) => Err(DbErr::Custom("the reschedule writer has stopped".into())),
        }
    }
}

async fn write_batches(db: DatabaseConnection, mut queue: mpsc::UnboundedReceiver<Move>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let result = write(&db, &batch).await.map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::warn!(moves = batch.len(), error = %e, "rescheduling quiet polls failed; their tasks are retried after their leases");
        }
        for m in batch.drain(..) {
            let _ = m.done.send(result.clone());
        }
    }
}

async fn write(db: &DatabaseConnection, batch: &[Move]) -> Result<(), DbErr> {
    let txn = begin_write(db).await?;
    let mut result = Ok(());
    for m in batch {
        result = reschedule(&txn, &m.task, &m.token, m.run_at).await;
        if result.is_err() {
            break;
        }
    }
    settle(txn, result).await
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};

    use super::*;
    use crate::storage::lease::{TASKS, claim};
    use crate::storage::test_db::{storage_cases, task_row};

    /// Moves sent together commit together; a task a command wrote meanwhile keeps the
    /// command's run and only loses its lease; the others move.
    async fn one_batch_moves_each_task_by_its_own_guard(db: DatabaseConnection) {
        let now = 1_000_000;
        for id in ["a", "b", "c"] {
            tasks::Entity::insert(task_row(id, "ready", now))
                .exec(&db)
                .await
                .unwrap();
        }
        let due = Condition::all().add(tasks::Column::RunAt.lte(now));
        let claimed = claim::<tasks::Entity, _>(&db, &TASKS, due, "exec", now, 60_000, 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 3);
        // A command wants "b" driven now.
        tasks::Entity::update_many()
            .col_expr(tasks::Column::RunAt, Expr::value(now + 5))
            .col_expr(tasks::Column::UpdatedAt, Expr::value(now + 5))
            .filter(tasks::Column::Id.eq("b"))
            .exec(&db)
            .await
            .unwrap();
        let r = Reschedules::start(db.clone());
        let later = DateTime::from_timestamp_millis(now + 15_000).unwrap();
        let moves = claimed.iter().map(|t| {
            let r = r.clone();
            async move {
                r.reschedule(t, t.lease_owner.as_deref().unwrap(), later)
                    .await
            }
        });
        for result in futures::future::join_all(moves).await {
            result.unwrap();
        }
        for (id, run_at) in [("a", now + 15_000), ("b", now + 5), ("c", now + 15_000)] {
            let t = tasks::Entity::find_by_id(id)
                .one(&db)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(t.run_at, run_at, "{id}");
            assert_eq!((t.lease_owner, t.lease_until), (None, None), "{id}");
        }
    }

    storage_cases!(one_batch_moves_each_task_by_its_own_guard);
}
