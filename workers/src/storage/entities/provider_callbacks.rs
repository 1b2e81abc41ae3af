//! `provider_callbacks`: verified provider webhooks, one row per distinct body.

use sea_orm::entity::prelude::*;

/// The callback changed the order.
pub const APPLIED: &str = "applied";
/// The callback told nothing the order did not already know (or was left to the polls).
pub const NO_CHANGE: &str = "no_change";
/// No order of ours has this provider order id: kept for a person.
pub const UNKNOWN_ORDER: &str = "unknown_order";
/// The order exists but is of the other direction than the callback's `eventType`.
pub const WRONG_DIRECTION: &str = "wrong_direction";

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_callbacks")]
pub struct Model {
    /// `"<provider>:<sha256 hex of the raw body>"`.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub provider: String,
    #[sea_orm(column_type = "Text")]
    pub provider_order_id: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub order_id: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub direction: String,
    #[sea_orm(column_type = "Text")]
    pub status: String,
    #[sea_orm(column_type = "Text")]
    pub outcome: String,
    pub received_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
