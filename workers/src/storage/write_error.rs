//! How a write of the decision path fails.

use sea_orm::DbErr;

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
