//! How a write of the decision path fails.

use sea_orm::DbErr;

use super::is_unique_violation;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Someone else wrote the order first (or created it): reload and decide again.
    #[error("concurrent write")]
    Conflict,
    /// The UTR is already recorded on another order.
    #[error("UTR already used by another order")]
    UtrInUse,
    /// The deposit transaction hash is already recorded on another order.
    #[error("transaction hash already used by another order")]
    TxHashInUse,
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl WriteError {
    /// For writes that can fail only in the database (reschedules, webhook outcomes),
    /// whose callers speak `DbErr`.
    pub fn into_db(self) -> DbErr {
        match self {
            WriteError::Db(e) => e,
            other => DbErr::Custom(other.to_string()),
        }
    }
}

/// Map a unique violation on the UTR or deposit-hash index to [`WriteError::UtrInUse`] /
/// [`WriteError::TxHashInUse`]; any other (the order's natural key, the inbox) means
/// another writer got there first: [`WriteError::Conflict`]. PostgreSQL names the index
/// in its message, SQLite the columns.
pub fn classify(e: DbErr) -> WriteError {
    if is_unique_violation(&e) {
        let text = e.to_string();
        if text.contains("ux_orders_provider_utr") || text.contains("orders.utr") {
            return WriteError::UtrInUse;
        }
        if text.contains("ux_orders_provider_deposit_tx_hash")
            || text.contains("orders.deposit_tx_hash")
        {
            return WriteError::TxHashInUse;
        }
        return WriteError::Conflict;
    }
    WriteError::Db(e)
}
