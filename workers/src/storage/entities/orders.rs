//! `orders`: one row per rampd order.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub tenant: String,
    #[sea_orm(column_type = "Text")]
    pub client_order_id: String,
    #[sea_orm(column_type = "Text")]
    pub direction: String,
    #[sea_orm(column_type = "Text")]
    pub state: String,
    /// JSON of the domain order.
    #[sea_orm(column_type = "Text")]
    pub data: String,
    /// State-machine version the order started with.
    pub sm_version: i32,
    /// Optimistic-concurrency version: every write is `… WHERE id = ? AND version = ?`.
    pub version: i64,
    #[sea_orm(column_type = "Text")]
    pub provider: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub provider_order_id: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub utr: Option<String>,
    /// Off-ramp: the user's deposit transaction hash (unique per provider).
    #[sea_orm(column_type = "Text", nullable)]
    pub deposit_tx_hash: Option<String>,
    pub flagged: bool,
    #[sea_orm(column_type = "Text", nullable)]
    pub trace_ctx: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The number of the order's last history row (`order_events.seq`): each write that
    /// adds history advances it in the same version-checked update, and numbers the new
    /// rows from it.
    pub history_seq: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
