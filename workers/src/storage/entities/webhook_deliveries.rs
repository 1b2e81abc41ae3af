//! `webhook_deliveries`: one row per (event, endpoint) webhook delivery.

use sea_orm::entity::prelude::*;

/// `status`: waiting for an attempt (first or retry).
pub const PENDING: &str = "pending";
/// `status`: a receiver accepted it.
pub const DELIVERED: &str = "delivered";
/// `status`: every attempt failed; a dead letter, replayable.
pub const DEAD: &str = "dead";
/// `status`: not sent because its endpoint is disabled; replayable.
pub const SKIPPED: &str = "skipped";

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    /// The Standard Webhooks `webhook-id`.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub order_id: String,
    #[sea_orm(column_type = "Text")]
    pub tenant: String,
    #[sea_orm(column_type = "Text")]
    pub endpoint_id: String,
    #[sea_orm(column_type = "Text")]
    pub url: String,
    #[sea_orm(column_type = "Text")]
    pub event_type: String,
    /// The exact JSON body that is signed and sent.
    #[sea_orm(column_type = "Text")]
    pub body: String,
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub attempt: i32,
    pub run_at: i64,
    #[sea_orm(column_type = "Text", nullable)]
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    /// HTTP status of the last attempt, if a response came back.
    pub last_status: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub trace_ctx: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    /// When the delivery was dead-lettered.
    pub dead_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
